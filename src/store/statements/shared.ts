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

/**
 * The channel that wakes relays when a statement wrote deliveries due at once — for subscribers
 * the writing process does not deliver inline (only other processes have them). The payload is the
 * subscriber's name; like the wake-up, it is sent at commit and never for a rollback.
 */
export const OUTBOX_CHANNEL = "prisma_operations_outbox";

/**
 * A wake-up's payload, the queue with new work: `["<type>", "<tenantId>"]` as JSON (type and tenant
 * are at most 255 characters, far below NOTIFY's 8,000 bytes). One per queue a statement filled:
 * PostgreSQL folds identical notifications of a transaction into one.
 */
export function wakeQueue(type: Sql, tenantId: Sql): Sql {
  return sql`pg_notify(${WAKE_CHANNEL}, json_build_array(${type}, ${tenantId})::text)`;
}

/** The queue a wake-up names, or undefined for a payload this version does not write. */
export function parseWakePayload(payload: string): { type: string; tenantId: string } | undefined {
  try {
    const value: unknown = JSON.parse(payload);
    if (
      Array.isArray(value) &&
      value.length === 2 &&
      typeof value[0] === "string" &&
      typeof value[1] === "string"
    )
      return { type: value[0], tenantId: value[1] };
  } catch {
    // not JSON: an older version's bare type name
  }
  return undefined;
}

export const TERMINAL = raw(`('completed', 'failed', 'cancelled')`);

/**
 * A due time `after` from now (now itself when omitted), as `run_at` and `available_at` store it:
 * truncated to the column's milliseconds. timestamptz(3) rounds, so a plain now() could be stored
 * up to half a millisecond in the future, and a worker (or relay) woken by the commit could claim
 * within that half millisecond, find the row not yet due and leave it to its next poll (seen: a
 * 0.9 s outlier).
 */
export function dueAt(after?: Sql): Sql {
  return after ? sql`date_trunc('milliseconds', now() + ${after})` : sql`date_trunc('milliseconds', now())`;
}

export function milliseconds(ms: number): Sql {
  return sql`make_interval(secs => ${ms / 1000}::double precision)`;
}

/**
 * The operations that `named` (a relation aliased `u` with an `id` column) names, as `c`, each
 * looked up by primary key and locked, in id order, as it is after any wait for the lock (a
 * retry's rows). The lookup is a LATERAL subquery that takes its own lock, so the planner cannot
 * turn it into a join: a join let it walk a partial index once per named row when the statistics,
 * taken before the rows were there, said that index was empty (200–500 ms for a group commit of 500
 * outcomes with 2,000 held, when group commits were built this way). Its plan still follows the
 * statistics otherwise; the hot paths' moves are functions of the migrations, whose plans do not.
 */
export function lockedById(t: Tables, named: Sql): Sql {
  return sql`(SELECT * FROM ${named} ORDER BY id) u
    CROSS JOIN LATERAL (SELECT * FROM ${t.operations} l WHERE l.id = u.id OFFSET 0 FOR UPDATE) c`;
}

export { raw, sql, type Sql };
