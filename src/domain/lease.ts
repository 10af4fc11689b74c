// How long a holder may act on a lease by its own clock. The database grants a lease until its
// `now()` at the grant plus the lease's length; the holder cannot read that clock, but it knows
// when it sent the statement that granted or extended the lease, which was no later. So it stops
// acting a margin before that send time plus the length, whether or not it hears back: a holder
// cut off from the database (heartbeats failing, or hanging) stops before anyone else can be given
// what it holds, instead of learning afterwards that it was taken.

/**
 * The margin kept before a lease's end: a tenth of the lease, for the holder's timers firing late
 * and its handlers taking a moment to stop once told, between 10 ms and 5 s.
 */
export function leaseMarginMs(leaseMs: number): number {
  return Math.min(5_000, Math.max(10, Math.floor(leaseMs / 10)));
}

/**
 * The moment (on the clock `sentAt` was read from, e.g. `performance.now()`) after which the holder
 * of a lease granted or extended by a statement sent at `sentAt` must stop acting on it.
 */
export function localLeaseDeadline(sentAt: number, leaseMs: number): number {
  return sentAt + leaseMs - leaseMarginMs(leaseMs);
}
