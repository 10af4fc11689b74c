// Exponential backoff with jitter, for redelivering outbox events and retrying operations. Pure:
// the random source is a parameter.

export interface BackoffPolicy {
  /** Delay before the first retry. */
  baseMs: number;
  /** Largest delay, whatever the attempt. */
  maxMs: number;
  /** Fraction of the delay drawn at random (0 = none, 1 = anywhere in [0, delay]). */
  jitter: number;
}

/**
 * Delay before retry number `attempt` (1 = the first retry): baseMs·2^(attempt-1), capped at
 * maxMs, of which a `jitter` fraction is random so that failures at one moment spread out.
 */
export function backoffDelayMs(
  attempt: number,
  policy: BackoffPolicy,
  random: () => number = Math.random,
): number {
  const exponent = Math.max(0, Math.min(attempt - 1, 52));
  const delay = Math.min(policy.maxMs, policy.baseMs * 2 ** exponent);
  const jitter = Math.min(1, Math.max(0, policy.jitter));
  return Math.round(delay * (1 - jitter) + delay * jitter * random());
}
