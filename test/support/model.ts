// A reference model of the state machines in README.md ("State machines", "Workers", "Cancel, retry,
// failure policies"), for test/db/model.test.ts. Plain objects and plain rules, written from the
// README rather than from src/: it imports nothing from the module, so a wrong rule in src/ cannot
// hide behind the same wrong rule here.
//
// Each public method is one command. It returns what the caller should get back (ok, or a typed error
// with its code) and moves the model to the state the database should be in afterwards. Ids are not
// predicted: the module generates them, so submits are split into "what will happen" and "record
// what was created".

export type Status = "pending" | "processing" | "completed" | "failed" | "cancelled";
export type Terminal = "completed" | "failed" | "cancelled";
export type Policy = "wait_all" | "fail_fast";

export const isTerminal = (status: Status): status is Terminal =>
  status === "completed" || status === "failed" || status === "cancelled";

/** What a call answers: a value, or the typed error it throws and that error's `code`. */
export type Answer<T> =
  { ok: true; value: T } | { ok: false; error: "ConflictError" | "NotFoundError"; code: string };

const ok = <T>(value: T): Answer<T> => ({ ok: true, value });
const conflict = (code: string): Answer<never> => ({ ok: false, error: "ConflictError", code });
const notFound: Answer<never> = { ok: false, error: "NotFoundError", code: "not_found" };

export interface ModelOperation {
  /** Short name for traces: `B2.0` (child 0 of the second batch) or `O3` (third standalone). */
  label: string;
  id: string;
  tenantId: string;
  type: string;
  batch: ModelBatch | null;
  status: Status;
  attempts: number;
  maxAttempts: number;
  /** Pending and claimable now (run_at <= now()); false while waiting for run_at. */
  due: boolean;
  /** A cancel was asked for (cancel_requested_at): kept when it ends, cleared by a retry. */
  cancelRequested: boolean;
  /** The lock token of the claim it runs under (processing only). */
  claim: string | null;
  /** Tokens of earlier claims of this row: an outcome sent with one must change nothing. */
  superseded: string[];
}

export interface ModelBatch {
  label: string;
  id: string;
  tenantId: string;
  type: string;
  policy: Policy;
  children: ModelOperation[];
  status: Status;
  /** 1, and one more each time a retry re-opens the finished batch. */
  episode: number;
}

export interface Counters {
  completed: number;
  failed: number;
  cancelled: number;
}

/** How a worker ends a claim (README, "Workers": outcomes). */
export type FinishKind =
  | "completed" // the handler returned
  | "non_retryable" // NonRetryableError: failed at once
  | "retryable" // any other error: pending again at once (zero backoff), failed on the last attempt
  | "retryable_later" // the same with a long backoff: pending but not due
  | "handed_back"; // a snooze of 0 or a shutdown hand-back: pending, attempt refunded

export function counters(batch: ModelBatch): Counters {
  const count = (status: Status) => batch.children.filter((child) => child.status === status).length;
  return { completed: count("completed"), failed: count("failed"), cancelled: count("cancelled") };
}

/** The outcome rule: terminal exactly when every child is; failed > cancelled > completed. */
export function outcome(batch: ModelBatch): Terminal | null {
  const c = counters(batch);
  if (c.completed + c.failed + c.cancelled < batch.children.length) return null;
  return c.failed > 0 ? "failed" : c.cancelled > 0 ? "cancelled" : "completed";
}

export interface SubmitBatchInput {
  tenantId: string;
  type: string;
  policy: Policy;
  children: number;
  maxAttempts: number;
  /** False when submitted with a `runAt` in the future. */
  due: boolean;
  idempotencyKey?: string;
}

export interface SubmitOperationInput {
  tenantId: string;
  type: string;
  maxAttempts: number;
  due: boolean;
  idempotencyKey?: string;
}

export class Model {
  readonly operations: ModelOperation[] = [];
  readonly batches: ModelBatch[] = [];
  private readonly operationsById = new Map<string, ModelOperation>();
  private readonly batchesById = new Map<string, ModelBatch>();
  private readonly batchKeys = new Map<string, ModelBatch>();
  private readonly operationKeys = new Map<string, ModelOperation>();
  private standalone = 0;
  /** Outbox events expected so far, by aggregate id, then topic: how many. */
  readonly events = new Map<string, Map<string, number>>();

  operation(id: string): ModelOperation | undefined {
    return this.operationsById.get(id);
  }

  batch(id: string): ModelBatch | undefined {
    return this.batchesById.get(id);
  }

  claimed(): ModelOperation[] {
    return this.operations.filter((op) => op.claim !== null);
  }

  due(): ModelOperation[] {
    return this.operations.filter((op) => op.status === "pending" && op.due);
  }

  // --- submits ------------------------------------------------------------------------------------

  /**
   * A repeated key (same tenant) returns the first batch, or is a conflict when it was a submit of
   * another type; otherwise `"new"`: the caller submits, then records it with `addBatch`.
   */
  submitBatch(input: SubmitBatchInput): Answer<ModelBatch | "new"> {
    if (input.idempotencyKey === undefined) return ok("new");
    const existing = this.batchKeys.get(keyOf(input.tenantId, input.idempotencyKey));
    if (!existing) return ok("new");
    if (existing.type !== input.type) return conflict("idempotency_key_reused");
    return ok(existing);
  }

  addBatch(input: SubmitBatchInput, id: string, childIds: string[]): ModelBatch {
    const batch: ModelBatch = {
      label: `B${this.batches.length + 1}`,
      id,
      tenantId: input.tenantId,
      type: input.type,
      policy: input.policy,
      children: [],
      status: "pending",
      episode: 1,
    };
    childIds.forEach((childId, index) =>
      batch.children.push(
        this.addOperation({
          label: `${batch.label}.${index}`,
          id: childId,
          tenantId: input.tenantId,
          type: input.type,
          batch,
          maxAttempts: input.maxAttempts,
          due: input.due,
        }),
      ),
    );
    this.batches.push(batch);
    this.batchesById.set(id, batch);
    if (input.idempotencyKey !== undefined)
      this.batchKeys.set(keyOf(input.tenantId, input.idempotencyKey), batch);
    this.emit(id, "batch.submitted");
    return batch;
  }

  /** Standalone operations: idempotency keys work as for batches, in a key space of their own. */
  submitOperation(input: SubmitOperationInput): Answer<ModelOperation | "new"> {
    if (input.idempotencyKey === undefined) return ok("new");
    const existing = this.operationKeys.get(keyOf(input.tenantId, input.idempotencyKey));
    if (!existing) return ok("new");
    if (existing.type !== input.type) return conflict("idempotency_key_reused");
    return ok(existing);
  }

  addStandalone(input: SubmitOperationInput, id: string): ModelOperation {
    const { tenantId, type, maxAttempts, due } = input;
    const op = this.addOperation({
      label: `O${++this.standalone}`,
      id,
      tenantId,
      type,
      batch: null,
      maxAttempts,
      due,
    });
    if (input.idempotencyKey !== undefined)
      this.operationKeys.set(keyOf(input.tenantId, input.idempotencyKey), op);
    this.emit(id, "operation.submitted");
    return op;
  }

  // --- control plane ------------------------------------------------------------------------------

  /** Pending → cancelled at once; running → a cancel request (asked twice: the same answer); finished → conflict. */
  cancelOperation(tenantId: string, id: string): Answer<"cancelled" | "cancel_requested"> {
    const op = this.visibleOperation(tenantId, id);
    if (!op) return notFound;
    if (isTerminal(op.status)) return conflict("operation_finished");
    const state = op.status === "pending" ? "cancelled" : "cancel_requested";
    this.change(() => (this.cancelOne(op) ? [op] : []));
    return ok(state);
  }

  /** The same for every unfinished child; a finished batch is a conflict. */
  cancelBatch(tenantId: string, id: string): Answer<ModelBatch> {
    const batch = this.visibleBatch(tenantId, id);
    if (!batch) return notFound;
    if (isTerminal(batch.status)) return conflict("batch_finished");
    this.change(() => batch.children.filter((child) => this.cancelOne(child)));
    return ok(batch);
  }

  /** Failed or cancelled → pending with fresh attempts (its batch re-opened if finished); else a conflict. */
  retryOperation(tenantId: string, id: string): Answer<ModelOperation> {
    const op = this.visibleOperation(tenantId, id);
    if (!op) return notFound;
    if (op.status !== "failed" && op.status !== "cancelled") return conflict("not_retryable");
    this.change(() => [this.requeue(op)]);
    return ok(op);
  }

  /** Re-queues only the failed and cancelled children; none of them is a conflict. */
  retryBatch(tenantId: string, id: string): Answer<ModelBatch> {
    const batch = this.visibleBatch(tenantId, id);
    if (!batch) return notFound;
    const retried = batch.children.filter(
      (child) => child.status === "failed" || child.status === "cancelled",
    );
    if (retried.length === 0) return conflict("not_retryable");
    this.change(() => retried.map((child) => this.requeue(child)));
    this.emit(batch.id, "batch.retried");
    return ok(batch);
  }

  // --- workers ------------------------------------------------------------------------------------

  /**
   * Records a claim of up to `limit` due rows. Which due rows is the database's choice (oldest due
   * first; the model does not know run_at to the microsecond), so it checks the choice instead:
   * only due pending rows, as many as there are up to the limit. Returns a problem, or null.
   */
  claim(limit: number, rows: readonly { id: string; lockToken: string }[]): string | null {
    const due = this.due();
    if (rows.length !== Math.min(limit, due.length)) {
      return `claimed ${rows.length} rows, expected min(${limit}, ${due.length} due)`;
    }
    for (const row of rows) {
      const op = this.operationsById.get(row.id);
      if (!op || op.status !== "pending" || !op.due) {
        return `claimed ${op?.label ?? row.id}, which is ${op ? `${op.status}${op.due ? "" : ", not due"}` : "unknown"}`;
      }
      op.status = "processing";
      op.attempts += 1;
      op.claim = row.lockToken;
      if (op.batch?.status === "pending") op.batch.status = "processing";
    }
    return null;
  }

  /**
   * A worker's outcome for the current claim of `op` (processing). Finished work is recorded as
   * completed even when a cancel was asked for; any other outcome of a row asked to cancel ends it
   * cancelled. Returns the status it should end in.
   */
  finish(op: ModelOperation, kind: FinishKind): Status {
    if (op.status !== "processing" || op.claim === null) throw new Error(`model: ${op.label} is not claimed`);
    this.change(() => {
      this.release(op);
      const lastAttempt = op.attempts >= op.maxAttempts;
      // A hand-back gives its attempt back whatever the row becomes (the run did not count).
      if (kind === "handed_back") op.attempts -= 1;
      if (kind === "completed") op.status = "completed";
      else if (op.cancelRequested) op.status = "cancelled";
      else if (
        kind === "non_retryable" ||
        ((kind === "retryable" || kind === "retryable_later") && lastAttempt)
      ) {
        op.status = "failed";
      } else {
        op.status = "pending";
        op.due = kind !== "retryable_later";
      }
      return [op];
    });
    return op.status;
  }

  /**
   * The reaper takes back `op`, whose lease expired: cancelled when a cancel was asked, failed when
   * its attempts are used up, else due again with the attempt counted.
   */
  reap(op: ModelOperation): Status {
    if (op.status !== "processing" || op.claim === null) throw new Error(`model: ${op.label} is not claimed`);
    this.change(() => {
      this.release(op);
      op.status = op.cancelRequested ? "cancelled" : op.attempts >= op.maxAttempts ? "failed" : "pending";
      op.due = true;
      return [op];
    });
    return op.status;
  }

  /** Time passes: every pending row's run_at is reached. */
  timePasses(): void {
    for (const op of this.operations) if (op.status === "pending") op.due = true;
  }

  // --- the rules every change follows -------------------------------------------------------------

  /**
   * One statement's worth of change: `moves` changes some rows and returns them; then, as in the
   * same statement, fail_fast cascades from the rows that ended failed, every row that ended
   * terminal gets its `operation.<status>` event, and every batch whose counters moved is
   * re-decided: terminal by the outcome rule (with its `batch.<status>` event for this episode), or
   * processing again — a new episode — when it was terminal and no longer is.
   */
  private change(moves: () => ModelOperation[]): void {
    const before = new Map(this.batches.map((batch) => [batch, counters(batch)]));
    const wasTerminal = new Map(this.operations.map((op) => [op, isTerminal(op.status)]));
    const moved = moves();
    for (const op of moved) {
      if (op.status === "failed" && op.batch?.policy === "fail_fast") {
        for (const sibling of op.batch.children) if (!moved.includes(sibling)) this.cancelOne(sibling);
      }
    }
    for (const op of this.operations) {
      if (!wasTerminal.get(op) && isTerminal(op.status)) this.emit(op.id, `operation.${op.status}`);
    }
    for (const [batch, old] of before) {
      const now = counters(batch);
      if (now.completed === old.completed && now.failed === old.failed && now.cancelled === old.cancelled)
        continue;
      const ended = outcome(batch);
      if (ended) {
        batch.status = ended;
        this.emit(batch.id, `batch.${ended}#${batch.episode}`);
      } else if (isTerminal(batch.status)) {
        batch.status = "processing";
        batch.episode += 1;
      }
    }
  }

  /**
   * A cancel of one row: pending → cancelled; running and not asked yet → asked. Either way the
   * request is recorded (cancel_requested_at). Says whether it moved.
   */
  private cancelOne(op: ModelOperation): boolean {
    if (op.status === "pending") {
      op.status = "cancelled";
      op.cancelRequested = true;
      return true;
    }
    if (op.status === "processing" && !op.cancelRequested) {
      op.cancelRequested = true;
      return true;
    }
    return false;
  }

  private requeue(op: ModelOperation): ModelOperation {
    op.status = "pending";
    op.attempts = 0;
    op.due = true;
    op.cancelRequested = false;
    this.emit(op.id, "operation.retried");
    return op;
  }

  /** Ends the current claim: its token can never be current again. */
  private release(op: ModelOperation): void {
    op.superseded.push(op.claim!);
    op.claim = null;
  }

  private addOperation(
    fields: Pick<ModelOperation, "label" | "id" | "tenantId" | "type" | "batch" | "maxAttempts" | "due">,
  ): ModelOperation {
    const op: ModelOperation = {
      ...fields,
      status: "pending",
      attempts: 0,
      cancelRequested: false,
      claim: null,
      superseded: [],
    };
    this.operations.push(op);
    this.operationsById.set(op.id, op);
    return op;
  }

  /** Another tenant's row is not found, never revealed. */
  private visibleOperation(tenantId: string, id: string): ModelOperation | undefined {
    const op = this.operationsById.get(id);
    return op?.tenantId === tenantId ? op : undefined;
  }

  private visibleBatch(tenantId: string, id: string): ModelBatch | undefined {
    const batch = this.batchesById.get(id);
    return batch?.tenantId === tenantId ? batch : undefined;
  }

  /** Expects one more event; batch terminal events are keyed with their episode (`batch.failed#2`). */
  private emit(aggregateId: string, topic: string): void {
    const topics = this.events.get(aggregateId) ?? new Map<string, number>();
    topics.set(topic, (topics.get(topic) ?? 0) + 1);
    this.events.set(aggregateId, topics);
  }
}

function keyOf(tenantId: string, key: string): string {
  return `${tenantId}\u0000${key}`;
}
