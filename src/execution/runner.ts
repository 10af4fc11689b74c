// Runs one claimed operation: validates its stored payload, calls the handler, and records the
// outcome with a fenced transition (only while this worker still holds the lease).
import { backoffDelayMs, type BackoffPolicy } from "../domain/backoff";
import { inspectJson } from "../domain/json";
import { errorMessage } from "../errors";
import type { Logger } from "../logger";
import type { OperationTypes } from "../operation-types";
import { completeOperation, failOperation, scheduleRetry, type Db } from "../store/repository";
import type { ClaimedRow, OutboxRow } from "../store/sql";
import { NonRetryableError, type Handlers, type OperationHandler } from "./handlers";

export interface RunnerDeps {
  db: Db;
  types: OperationTypes;
  handlers: Handlers<OperationTypes>;
  workerId: string;
  retryBackoff: BackoffPolicy;
  /** Delay before the relay may take the events this transition writes (see OutboxPolicy). */
  eventDelayMs: number;
  maxResultBytes: number;
  maxJsonDepth: number;
  logger: Logger;
}

export type RunStatus = "completed" | "failed" | "retrying" | "lost";

export interface RunOutcome {
  status: RunStatus;
  /** Outbox events the transition wrote, for the caller to dispatch after this returns. */
  events: OutboxRow[];
}

/** What is stored in an operation's `error` column: the message, never the payload. */
export interface StoredError {
  name: string;
  message: string;
  retryable: boolean;
  attempt: number;
}

function storedError(error: unknown, retryable: boolean, attempt: number): StoredError {
  return {
    name: error instanceof Error ? error.name : "Error",
    message: errorMessage(error),
    retryable,
    attempt,
  };
}

async function fail(deps: RunnerDeps, row: ClaimedRow, error: StoredError): Promise<RunOutcome> {
  const transition = await failOperation(deps.db, row.id, deps.workerId, error, deps.eventDelayMs);
  return { status: transition.changed ? "failed" : "lost", events: transition.events };
}

export async function runClaimed(
  deps: RunnerDeps,
  row: ClaimedRow,
  signal: AbortSignal,
): Promise<RunOutcome> {
  const type = deps.types[row.type];
  const handler = deps.handlers[row.type] as OperationHandler<never> | undefined;
  if (!type || !handler) {
    const reason = new NonRetryableError(
      `no ${type ? "handler" : "operation type"} registered for "${row.type}"`,
    );
    return fail(deps, row, storedError(reason, false, row.attempts));
  }
  const payload = type.payload.safeParse(row.payload);
  if (!payload.success) {
    const reason = new NonRetryableError(`stored payload no longer matches the "${row.type}" schema`);
    return fail(deps, row, storedError(reason, false, row.attempts));
  }

  let result: unknown;
  try {
    result = await handler(payload.data as never, {
      operationId: row.id,
      batchId: row.batchId,
      tenantId: row.tenantId,
      type: row.type,
      attempt: row.attempts,
      maxAttempts: row.maxAttempts,
      signal,
    });
  } catch (error) {
    const retryable = !(error instanceof NonRetryableError) && row.attempts < row.maxAttempts;
    if (!retryable) return fail(deps, row, storedError(error, false, row.attempts));
    const delayMs = backoffDelayMs(row.attempts, deps.retryBackoff);
    const held = await scheduleRetry(
      deps.db,
      row.id,
      deps.workerId,
      storedError(error, true, row.attempts),
      delayMs,
    );
    return { status: held ? "retrying" : "lost", events: [] };
  }

  const stored = result === undefined ? null : result;
  const inspection = inspectJson(stored, { maxBytes: deps.maxResultBytes, maxDepth: deps.maxJsonDepth });
  if (!inspection.ok) {
    const reason = new NonRetryableError(`handler result cannot be stored: ${inspection.problem.message}`);
    return fail(deps, row, storedError(reason, false, row.attempts));
  }
  const transition = await completeOperation(deps.db, row.id, deps.workerId, stored, deps.eventDelayMs);
  return { status: transition.changed ? "completed" : "lost", events: transition.events };
}
