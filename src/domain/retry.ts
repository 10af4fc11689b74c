// What becomes of an operation after its handler ran: the rules for failures, retries and
// snoozes. Pure: the worker records whatever this decides.
import { backoffDelayMs, type BackoffPolicy } from "./backoff";

/** Thrown by a handler: the operation fails at once, whatever attempts remain. */
export class NonRetryableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "NonRetryableError";
  }
}

/** Thrown (use {@link snooze}) to run the operation again after a delay without using an attempt. */
export class Snooze extends Error {
  constructor(readonly delayMs: number) {
    super(`snoozed for ${delayMs} ms`);
    this.name = "Snooze";
  }
}

/** `throw snooze(30_000)`: try again in 30 s; the attempt does not count. */
export function snooze(delayMs: number): Snooze {
  if (!Number.isFinite(delayMs) || delayMs < 0)
    throw new RangeError(`snooze delay must be >= 0 ms, got ${delayMs}`);
  return new Snooze(delayMs);
}

/** The handler ran past its type's `timeoutMs`; its AbortSignal was aborted with this. */
export class HandlerTimeoutError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`handler timed out after ${timeoutMs} ms`);
    this.name = "HandlerTimeoutError";
  }
}

/** What is stored in an operation's `error` column: name and message, never the payload. */
export interface StoredError {
  name: string;
  message: string;
  retryable: boolean;
  attempt: number;
}

export type HandlerOutcome =
  | { kind: "completed"; result: unknown }
  | { kind: "failed"; error: StoredError }
  | { kind: "retry"; error: StoredError; delayMs: number }
  | { kind: "snoozed"; delayMs: number };

export function storedError(error: unknown, retryable: boolean, attempt: number): StoredError {
  return {
    name: error instanceof Error ? error.name : "Error",
    message: error instanceof Error ? error.message : String(error),
    retryable,
    attempt,
  };
}

/**
 * The outcome of a handler that threw on attempt `attempt` of `maxAttempts`: a snooze runs again
 * later without using the attempt; a NonRetryableError or the last attempt fails for good;
 * anything else retries after the backoff delay.
 */
export function outcomeOfError(
  error: unknown,
  attempt: number,
  maxAttempts: number,
  backoff: BackoffPolicy,
  random: () => number = Math.random,
): HandlerOutcome {
  if (error instanceof Snooze) return { kind: "snoozed", delayMs: error.delayMs };
  if (error instanceof NonRetryableError || attempt >= maxAttempts) {
    return { kind: "failed", error: storedError(error, false, attempt) };
  }
  return {
    kind: "retry",
    error: storedError(error, true, attempt),
    delayMs: backoffDelayMs(attempt, backoff, random),
  };
}
