// Pieces every statement uses. The statements themselves are in this folder, one file per area;
// each function returns a parameterized statement and nothing here runs it. Values are always
// bound parameters; the only text spliced in is fixed SQL and the table names of `Tables`.
import { raw, sqltag as sql, type Sql } from "@prisma/client/runtime/client";
import type { Tables } from "../tables";

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

/**
 * The rows `named` (a relation `u` with an `id` column) as `c`, each looked up by primary key and
 * locked, in id order, as it is after any wait for the lock (with `skipLocked`, rows another
 * transaction holds are left out). The lookup is a LATERAL subquery that takes its own lock, so
 * the planner cannot turn it into a join: a join let it scan the partial index of processing rows once per
 * outcome (its statistics, taken when nothing was processing, say that index is empty), which
 * made a group commit O(rows held × outcomes) — 200–500 ms for 500 outcomes with 2,000 held.
 */
export function lockedById(t: Tables, named: Sql, options: { skipLocked?: boolean } = {}): Sql {
  return sql`(SELECT * FROM ${named} ORDER BY id) u
    CROSS JOIN LATERAL (SELECT * FROM ${t.operations} l WHERE l.id = u.id
                        OFFSET 0 FOR UPDATE ${options.skipLocked ? sql`SKIP LOCKED` : sql``}) c`;
}

export { raw, sql, type Sql };
