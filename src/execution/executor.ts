// Runs one claimed operation's handler and says how it ended: the executor of the worker runtime,
// shared by the workers and the sync backend. It never records anything (see completer.ts).
import type { BackoffPolicy } from "../domain/backoff";
import { inspectJson } from "../domain/json";
import {
  HandlerTimeoutError,
  NonRetryableError,
  outcomeOfError,
  storedError,
  type HandlerOutcome,
} from "../domain/retry";
import type { OperationTypes } from "../operation-types";
import type { ClaimedRow } from "../store/statements/claims";
import type { Finish } from "../store/statements/transitions";
import { WorkerShutdown, type Handlers, type OperationHandler } from "./handlers";
import type { LazyAbortController } from "./lazy-abort";

export interface ExecutionConfig {
  types: OperationTypes;
  handlers: Handlers<OperationTypes>;
  /** Used for types that set no `retryBackoff` of their own. */
  retryBackoff: BackoffPolicy;
  maxResultBytes: number;
  maxJsonDepth: number;
}

/** Handed back without running: the attempt is refunded (a cancel asked for meanwhile ends it cancelled). */
export const HANDED_BACK: HandlerOutcome = { kind: "snoozed", delayMs: 0 };

function failNow(row: ClaimedRow, message: string): HandlerOutcome {
  return { kind: "failed", error: storedError(new NonRetryableError(message), false, row.attempts) };
}

/**
 * Resolves with the handler's result, or rejects with HandlerTimeoutError after `timeoutMs`.
 * `run` gets the handler's signal as a function, so that it is made only if the handler reads it.
 */
function withTimeout<R>(
  run: (signal: () => AbortSignal) => Promise<R>,
  stop: LazyAbortController,
  timeoutMs?: number,
): Promise<R> {
  if (!timeoutMs) return run(() => stop.signal);
  const outer = stop.signal;
  const controller = new AbortController();
  const forward = () => controller.abort(outer.reason);
  if (outer.aborted) forward();
  else outer.addEventListener("abort", forward, { once: true });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = new HandlerTimeoutError(timeoutMs);
      controller.abort(error);
      reject(error);
    }, timeoutMs);
  });
  return Promise.race([run(() => controller.signal), timeout]).finally(() => {
    clearTimeout(timer);
    outer.removeEventListener("abort", forward);
  });
}

/**
 * Runs the handler of a claimed row and says how it ended. Never throws: a missing handler, a
 * payload that no longer matches its schema, a thrown error, a timeout and an unstorable result
 * are all outcomes. A row whose signal fired before its turn (cancelled, lease lost, shutdown
 * while it waited as prefetch) is handed back without running.
 */
export async function executeHandler(
  config: ExecutionConfig,
  row: ClaimedRow,
  stop: LazyAbortController,
): Promise<HandlerOutcome> {
  if (stop.aborted) return HANDED_BACK;
  const type = config.types[row.type];
  const handler = config.handlers[row.type] as OperationHandler<never> | undefined;
  if (!type || !handler)
    return failNow(row, `no ${type ? "handler" : "operation type"} registered for "${row.type}"`);
  const payload = type.payload.safeParse(row.payload);
  if (!payload.success) return failNow(row, `stored payload no longer matches the "${row.type}" schema`);

  let result: unknown;
  try {
    result = await withTimeout(
      async (handlerSignal) =>
        handler(payload.data as never, {
          operationId: row.id,
          batchId: row.batchId,
          tenantId: row.tenantId,
          type: row.type,
          attempt: row.attempts,
          maxAttempts: row.maxAttempts,
          get signal() {
            return handlerSignal();
          },
        }),
      stop,
      type.timeoutMs,
    );
  } catch (error) {
    // Stopped by our own shutdown: hand the row back without using its attempt.
    if (stop.aborted && stop.reason instanceof WorkerShutdown) return HANDED_BACK;
    return outcomeOfError(error, row.attempts, row.maxAttempts, type.retryBackoff ?? config.retryBackoff);
  }
  const stored = result === undefined ? null : result;
  const inspection = inspectJson(stored, { maxBytes: config.maxResultBytes, maxDepth: config.maxJsonDepth });
  if (!inspection.ok) return failNow(row, `handler result cannot be stored: ${inspection.problem.message}`);
  return { kind: "completed", result: stored };
}

/** How an outcome is recorded. */
export function toFinish(outcome: HandlerOutcome): Finish {
  switch (outcome.kind) {
    case "completed":
      return { to: "completed", result: outcome.result };
    case "failed":
      return { to: "failed", error: outcome.error };
    case "retry":
      return { to: "pending", error: outcome.error, delayMs: outcome.delayMs, refundAttempt: false };
    case "snoozed":
      return { to: "pending", delayMs: outcome.delayMs, refundAttempt: true };
  }
}
