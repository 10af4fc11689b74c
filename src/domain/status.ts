// The state machines of DESIGN.md as data, and the rule that decides a batch's outcome from its
// counters. Pure: the SQL in store/sql.ts applies the same rule, and a test holds them together.

export const OPERATION_STATUSES = ["pending", "processing", "completed", "failed", "cancelled"] as const;
export type OperationStatus = (typeof OPERATION_STATUSES)[number];

export const BATCH_STATUSES = OPERATION_STATUSES;
export type BatchStatus = OperationStatus;

export type TerminalStatus = "completed" | "failed" | "cancelled";

export const FAILURE_POLICIES = ["wait_all", "fail_fast"] as const;
export type FailurePolicy = (typeof FAILURE_POLICIES)[number];

export function isTerminal(status: OperationStatus): status is TerminalStatus {
  return status === "completed" || status === "failed" || status === "cancelled";
}

/** Every transition an operation may take (DESIGN.md, "State machines"). */
export const OPERATION_TRANSITIONS: Readonly<Record<OperationStatus, readonly OperationStatus[]>> = {
  pending: ["processing", "cancelled"],
  processing: ["completed", "failed", "pending", "cancelled"],
  completed: [],
  failed: ["pending"],
  cancelled: ["pending"],
};

export function canTransition(from: OperationStatus, to: OperationStatus): boolean {
  return OPERATION_TRANSITIONS[from].includes(to);
}

/** A batch's counters, as stored on its row. */
export interface BatchCounters {
  childCount: number;
  completed: number;
  failed: number;
  cancelled: number;
}

/**
 * The batch's terminal status, or null while any child is not terminal: terminal exactly when
 * completed + failed + cancelled = childCount; failed if any child failed, else cancelled if any
 * was cancelled, else completed.
 */
export function batchOutcome(counters: BatchCounters): TerminalStatus | null {
  const done = counters.completed + counters.failed + counters.cancelled;
  if (done < counters.childCount) return null;
  if (counters.failed > 0) return "failed";
  if (counters.cancelled > 0) return "cancelled";
  return "completed";
}
