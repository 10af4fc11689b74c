// What becomes of an operation after its handler ran: the rules for failures, retries and
// snoozes. Pure: the worker records whatever this decides.
import { backoffDelayMs, type BackoffPolicy } from "./backoff";
import { storableText } from "./json";

/** Thrown by a handler: the operation fails at once, whatever attempts remain. */
export class NonRetryableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "NonRetryableError";
  }
}

/** Longest snooze: 100 years. PostgreSQL refuses a time past its range (year 294276). */
export const MAX_SNOOZE_MS = 100 * 365 * 24 * 60 * 60 * 1000;

/** Thrown (use {@link snooze}) to run the operation again after a delay without using an attempt. */
export class Snooze extends Error {
  /** @throws RangeError unless 0 <= delayMs <= {@link MAX_SNOOZE_MS}. */
  constructor(readonly delayMs: number) {
    if (!(Number.isFinite(delayMs) && delayMs >= 0 && delayMs <= MAX_SNOOZE_MS))
      throw new RangeError(`snooze delay must be 0 to ${MAX_SNOOZE_MS} ms (100 years), got ${delayMs}`);
    super(`snoozed for ${delayMs} ms`);
    this.name = "Snooze";
  }
}

/** `throw snooze(30_000)`: try again in 30 s (at most 100 years); the attempt does not count. */
export function snooze(delayMs: number): Snooze {
  return new Snooze(delayMs);
}

/** The handler ran past its type's `timeoutMs`; its AbortSignal was aborted with this. */
export class HandlerTimeoutError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`handler timed out after ${timeoutMs} ms`);
    this.name = "HandlerTimeoutError";
  }
}

/**
 * What is stored in an operation's `error` column: name and message, never the payload. Both are
 * made storable (`storableText`: NUL and lone surrogates become U+FFFD; a name is cut at 200
 * characters, a message at 8,192).
 */
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

const MAX_ERROR_NAME = 200;

/** A thrown value's text, whatever it is: `String()` itself throws for some objects. */
function asText(value: unknown): string {
  if (typeof value === "string") return value;
  try {
    return String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

export function storedError(error: unknown, retryable: boolean, attempt: number): StoredError {
  return {
    name: storableText(error instanceof Error ? asText(error.name) : "Error", MAX_ERROR_NAME),
    message: storableText(asText(error instanceof Error ? error.message : error)),
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
