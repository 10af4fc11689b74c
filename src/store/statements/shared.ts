// Pieces every statement uses. The statements themselves are in this folder, one file per area;
// each function returns a parameterized statement and nothing here runs it. Values are always
// bound parameters; the only text spliced in is fixed SQL and the table names of `Tables`.
import { raw, sqltag as sql, type Sql } from "@prisma/client/runtime/client";

/** The channel cancel requests are notified on (at commit), for workers running those operations. */
export const CANCEL_CHANNEL = "prisma_operations_cancel";

/**
 * The channel that wakes listening workers when there is new work. Submits and retries notify it
 * from their own statement: PostgreSQL delivers a NOTIFY when its transaction commits, and never
 * for one that rolls back, so the wake-up is post-commit by construction and costs no round trip.
 */
export const WAKE_CHANNEL = "prisma_operations_wake";

export const TERMINAL = raw(`('completed', 'failed', 'cancelled')`);

export function milliseconds(ms: number): Sql {
  return sql`make_interval(secs => ${ms / 1000}::double precision)`;
}

export { raw, sql, type Sql };
