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
 * The rows of `table` that `named` (a relation aliased `u` with the `key` columns) names, as `c`,
 * each looked up by its key and locked, in key order, as it is after any wait for the lock (with
 * `skipLocked`, rows another transaction holds are left out). The lookup is a LATERAL subquery
 * that takes its own lock, so the planner cannot turn it into a join: a join let it walk a partial
 * index once per named row when the statistics, taken before the rows were there, said that index
 * was empty — a group commit's outcomes against the index of processing rows (200–500 ms for 500
 * outcomes with 2,000 held), a relay's marks against the index of undelivered rows (684 ms for 100
 * marks beside 30,000 owed).
 */
export function lockedByKey(
  table: Sql,
  named: Sql,
  key: readonly string[],
  options: { skipLocked?: boolean } = {},
): Sql {
  const order = raw(key.join(", "));
  const matches = raw(key.map((column) => `l.${column} = u.${column}`).join(" AND "));
  return sql`(SELECT * FROM ${named} ORDER BY ${order}) u
    CROSS JOIN LATERAL (SELECT * FROM ${table} l WHERE ${matches}
                        OFFSET 0 FOR UPDATE ${options.skipLocked ? sql`SKIP LOCKED` : sql``}) c`;
}

/** Operations named by `id` (see lockedByKey). */
export function lockedById(t: Tables, named: Sql, options: { skipLocked?: boolean } = {}): Sql {
  return lockedByKey(t.operations, named, ["id"], options);
}

export { raw, sql, type Sql };
