// Retention: deleting finished history once it has been kept long enough. Each statement looks at
// one bounded window of the oldest candidates (in index order, from a cursor the caller carries),
// deletes those that have expired and returns where it stopped, so no statement ever reads or
// locks more than its window whatever the history holds, and rows kept longer (a failed batch, an
// event still owed to a subscriber) are stepped over rather than read again by every pass.
//
// What is never deleted: a batch not finished (its status, and none of its children unfinished),
// a batch or operation with an event still owed to a subscriber (a delivery row or a hold) or dead
// for less than the policy's time, an event not yet delivered to every subscriber. A batch goes in
// one statement with all of its children and all of their events (deliveries go with their events).
//
// Each statement locks what it may delete in the one lock order (transitions.ts): children, then
// batches, then events, then their delivery rows — every lock SKIP LOCKED, so retention never waits
// for a row and so is never part of a deadlock; a row another transaction holds keeps its batch
// (or operation, or event) for a later pass. What decides is checked on the rows as locked: a
// batch's and its children's status by the locks themselves (a locked row is read as it is now),
// the events' deliveries and holds by operation_outbox_prune in the migrations, whose snapshot is
// taken after the events are locked (one taken before would miss a delivery revived or written
// in between, and delete it with its event).
import type { RetentionPolicy } from "../../domain/retention";
import type { Tables } from "../tables";
import { raw, sql, TERMINAL, type Sql } from "./shared";

/** Where the previous window of a walk stopped; undefined starts from the oldest. */
export interface FinishedCursor {
  finishedAt: Date;
  id: string;
}

/** What one statement did: rows deleted per table, and where the walk goes on. */
export interface PruneStep<C> {
  batches: number;
  operations: number;
  events: number;
  /** Rows looked at. */
  scanned: number;
  /** The window reached the end of the candidates: the next walk starts from the oldest again. */
  reachedEnd: boolean;
  /** Where the next window starts. */
  next: C | undefined;
}

function seconds(value: number): Sql {
  return sql`make_interval(secs => ${value}::double precision)`;
}

/** The policy's per-type keeping times as a relation `keep(type, completed_s, failed_s)`. */
function keepTable(policy: RetentionPolicy): Sql {
  return sql`SELECT * FROM unnest(${policy.types.map((t) => t.type)}::text[],
      ${policy.types.map((t) => t.completedSeconds)}::float8[],
      ${policy.types.map((t) => t.failedSeconds)}::float8[]) AS k(type, completed_s, failed_s)`;
}

/**
 * Whether row `r` (with type, status and finished_at), joined to `keep k` on its type, has been
 * kept long enough. A null keeping time compares as null: kept for ever.
 */
function expired(policy: RetentionPolicy, r: string): Sql {
  const row = (column: string) => raw(`${r}.${column}`);
  return sql`${row("finished_at")} < now() - make_interval(secs => CASE
      WHEN k.type IS NOT NULL AND ${row("status")} = 'completed' THEN k.completed_s
      WHEN k.type IS NOT NULL THEN k.failed_s
      WHEN ${row("status")} = 'completed' THEN ${policy.completedSeconds}::float8
      ELSE ${policy.failedSeconds}::float8 END)`;
}

/**
 * No event about any of `aggregates` (a relation with one column, `aggregate_id`) is still owed
 * to a subscriber, or dead and still kept for redelivery. Driven from the aggregates, so it reads
 * their events by the aggregate index and their deliveries by the primary key (holds, a handful of
 * rows that live as long as an inline delivery, are read whole).
 */
function eventsSettled(t: Tables, policy: RetentionPolicy, aggregates: Sql): Sql {
  return sql`NOT EXISTS (
      SELECT 1 FROM (${aggregates}) a
      JOIN ${t.outbox} e ON e.aggregate_id = a.aggregate_id
      WHERE EXISTS (SELECT 1 FROM ${t.deliveries} d WHERE d.event_id = e.id
                    AND ((d.delivered_at IS NULL AND d.dead_at IS NULL) OR ${deadKept(policy)}))
         OR ${held(t)})`;
}

/** The event `e` is named by a hold (still being delivered inline, or left for a relay to take over). */
function held(t: Tables): Sql {
  return sql`EXISTS (SELECT 1 FROM ${t.holds} h WHERE e.id = ANY(h.event_ids))`;
}

/** A delivery that died recently enough to be kept for redelivery. */
function deadKept(policy: RetentionPolicy): Sql {
  return policy.deadEventSeconds === null
    ? sql`d.dead_at IS NOT NULL`
    : sql`d.dead_at >= now() - ${seconds(policy.deadEventSeconds)}`;
}

/** What a finished-row pruning step returns (its CTEs: looked_at, window_rows, pruned and the gone_*). */
const stepColumns = (chunkSize: number) => sql`
  (SELECT count(*) FROM gone_batches)::int AS "batches",
  (SELECT count(*) FROM gone_operations)::int AS "operations",
  (SELECT COALESCE(sum(events), 0) FROM pruned)::int AS "events",
  (SELECT count(*) FROM window_rows)::int AS "scanned",
  (SELECT count(*) FROM window_rows) = (SELECT count(*) FROM looked_at)
    AND (SELECT count(*) FROM looked_at) < ${chunkSize} AS "reachedEnd",
  (SELECT json_build_object('finishedAt', w.finished_at, 'id', w.id::text) FROM window_rows w
   ORDER BY w.finished_at DESC, w.id DESC LIMIT 1) AS "next"`;

/**
 * CTEs `members` (the relation `members` selects: `aggregate_id`, and `grp`, the group it belongs
 * to — a batch, or an operation), `member_events` (their events, locked in id order, skipping any
 * another transaction holds), `whole` (the groups all of whose events were locked) and `pruned`:
 * the groups whose events operation_outbox_prune deleted — `id`, and `events`, how many — having
 * decided with a snapshot taken after those locks.
 */
function pruneEventsOf(t: Tables, policy: RetentionPolicy, members: Sql): Sql {
  return sql`
    members AS MATERIALIZED (${members}),
    member_events AS MATERIALIZED (
      SELECT e.id, m.grp FROM ${t.outbox} e JOIN members m ON m.aggregate_id = e.aggregate_id
      WHERE e.aggregate_id = ANY (ARRAY(SELECT aggregate_id FROM members))
      ORDER BY e.id
      FOR UPDATE OF e SKIP LOCKED
    ), whole AS (
      SELECT DISTINCT m.grp FROM members m
      WHERE NOT EXISTS (
        SELECT 1 FROM members n JOIN ${t.outbox} e ON e.aggregate_id = n.aggregate_id
        WHERE n.grp = m.grp AND e.id NOT IN (SELECT x.id FROM member_events x))
    ), pruned AS MATERIALIZED (
      SELECT p.pruned_group::uuid AS id, p.pruned_events AS events
      FROM ${t.pruneOutbox}(
        ARRAY(SELECT w.grp::text FROM whole w),
        ARRAY(SELECT x.id FROM member_events x WHERE x.grp IN (SELECT w.grp FROM whole w) ORDER BY x.id),
        ARRAY(SELECT x.grp::text FROM member_events x WHERE x.grp IN (SELECT w.grp FROM whole w) ORDER BY x.id),
        ${policy.deadEventSeconds}::float8, NULL::float8) p
    )`;
}

/**
 * Deletes expired finished batches with their children and events, from the oldest: looks at
 * batches after `after` until their children add up to `chunkSize` (at least one batch, however
 * large: a batch is never split). Batches another transaction holds — or any of their children,
 * events or delivery rows — are skipped.
 */
export function pruneBatches(
  t: Tables,
  policy: RetentionPolicy,
  shortest: number,
  after: FinishedCursor | undefined,
): Sql {
  return sql`
    WITH looked_at AS (
      SELECT b.id, b.finished_at, b.child_count,
             sum(b.child_count) OVER (ORDER BY b.finished_at, b.id) AS upto
      FROM ${t.batches} b
      WHERE b.finished_at IS NOT NULL AND b.finished_at < now() - ${seconds(shortest)}
        ${after ? sql`AND (b.finished_at, b.id) > (${after.finishedAt}::timestamptz, ${after.id}::uuid)` : sql``}
      ORDER BY b.finished_at, b.id
      LIMIT ${policy.chunkSize}
    ), window_rows AS (
      -- Batches until their children add up to the chunk size (the first one whatever its size).
      SELECT id, finished_at FROM looked_at WHERE upto - child_count < ${policy.chunkSize}
    ), candidates AS MATERIALIZED (
      -- As this statement's snapshot shows them; each is checked again below on its rows as locked.
      SELECT b.id FROM ${t.batches} b
      LEFT JOIN (${keepTable(policy)}) k ON k.type = b.type
      WHERE b.id IN (SELECT id FROM window_rows)
        AND b.status IN ${TERMINAL} AND ${expired(policy, "b")}
        AND NOT EXISTS (SELECT 1 FROM ${t.operations} o
                        WHERE o.batch_id = b.id AND o.status NOT IN ${TERMINAL})
        AND ${eventsSettled(
          t,
          policy,
          sql`SELECT b.id AS aggregate_id UNION ALL SELECT o.id FROM ${t.operations} o WHERE o.batch_id = b.id`,
        )}
    ), children AS MATERIALIZED (
      SELECT o.id, o.batch_id, o.status FROM ${t.operations} o
      WHERE o.batch_id = ANY (ARRAY(SELECT id FROM candidates))
      ORDER BY o.id
      FOR UPDATE OF o SKIP LOCKED
    ), chosen AS MATERIALIZED (
      -- Batches all of whose children are locked, and finished as they are now.
      SELECT b.id FROM ${t.batches} b
      LEFT JOIN (${keepTable(policy)}) k ON k.type = b.type
      WHERE b.id = ANY (ARRAY(
          SELECT c.id FROM candidates c
          WHERE NOT EXISTS (SELECT 1 FROM ${t.operations} o
                            WHERE o.batch_id = c.id AND o.id NOT IN (SELECT ch.id FROM children ch))
            AND NOT EXISTS (SELECT 1 FROM children ch WHERE ch.batch_id = c.id AND ch.status NOT IN ${TERMINAL})))
        AND b.status IN ${TERMINAL} AND ${expired(policy, "b")}
      ORDER BY b.id
      FOR UPDATE OF b SKIP LOCKED
    ), ${pruneEventsOf(
      t,
      policy,
      sql`SELECT c.id AS aggregate_id, c.id AS grp FROM chosen c
          UNION ALL SELECT ch.id, ch.batch_id FROM children ch WHERE ch.batch_id IN (SELECT id FROM chosen)`,
    )}, gone_operations AS (
      DELETE FROM ${t.operations} o WHERE o.batch_id IN (SELECT id FROM pruned) RETURNING 1
    ), gone_batches AS (
      DELETE FROM ${t.batches} b WHERE b.id IN (SELECT id FROM pruned) RETURNING 1
    )
    SELECT ${stepColumns(policy.chunkSize)}`;
}

/** Deletes expired finished standalone operations with their events, `chunkSize` looked at from `after`. */
export function pruneOperations(
  t: Tables,
  policy: RetentionPolicy,
  shortest: number,
  after: FinishedCursor | undefined,
): Sql {
  return sql`
    WITH looked_at AS (
      SELECT o.id, o.finished_at FROM ${t.operations} o
      WHERE o.finished_at IS NOT NULL AND o.batch_id IS NULL AND o.finished_at < now() - ${seconds(shortest)}
        ${after ? sql`AND (o.finished_at, o.id) > (${after.finishedAt}::timestamptz, ${after.id}::uuid)` : sql``}
      ORDER BY o.finished_at, o.id
      LIMIT ${policy.chunkSize}
    ), window_rows AS (SELECT * FROM looked_at), chosen AS MATERIALIZED (
      SELECT o.id FROM ${t.operations} o
      LEFT JOIN (${keepTable(policy)}) k ON k.type = o.type
      WHERE o.id IN (SELECT id FROM window_rows) AND o.batch_id IS NULL
        AND o.status IN ${TERMINAL} AND ${expired(policy, "o")}
        AND ${eventsSettled(t, policy, sql`SELECT o.id AS aggregate_id`)}
      ORDER BY o.id
      FOR UPDATE OF o SKIP LOCKED
    ), ${pruneEventsOf(t, policy, sql`SELECT c.id AS aggregate_id, c.id AS grp FROM chosen c`)},
    gone_operations AS (
      DELETE FROM ${t.operations} o WHERE o.id IN (SELECT id FROM pruned) RETURNING 1
    ), gone_batches AS (SELECT 1 WHERE false)
    SELECT ${stepColumns(policy.chunkSize)}`;
}

/** Where the previous window of the event walk stopped. */
export interface EventCursor {
  createdAt: Date;
  id: string;
}

/**
 * Deletes outbox events every subscriber has had for `deliveredEventSeconds` (events nobody
 * subscribed to, and events delivered inline, which keep no row, count from when they were written), and events whose dead deliveries are past
 * `deadEventSeconds` — never one still owed to anyone. Looks at `chunkSize` events written before
 * the cut-off, from `after`, in the order they were written.
 */
export function pruneEvents(t: Tables, policy: RetentionPolicy, after: EventCursor | undefined): Sql {
  const keptDelivered = seconds(policy.deliveredEventSeconds!);
  return sql`
    WITH looked_at AS (
      SELECT e.id, e.created_at FROM ${t.outbox} e
      WHERE e.created_at < now() - ${keptDelivered}
        ${after ? sql`AND (e.created_at, e.id) > (${after.createdAt}::timestamptz, ${after.id}::bigint)` : sql``}
      ORDER BY e.created_at, e.id
      LIMIT ${policy.chunkSize}
    ), chosen AS MATERIALIZED (
      -- As this statement's snapshot shows them; operation_outbox_prune checks again once locked.
      SELECT e.id FROM ${t.outbox} e
      WHERE e.id IN (SELECT id FROM looked_at)
        AND NOT EXISTS (
          SELECT 1 FROM ${t.deliveries} d WHERE d.event_id = e.id
            AND ((d.delivered_at IS NULL AND d.dead_at IS NULL)
                 OR d.delivered_at >= now() - ${keptDelivered}
                 OR ${deadKept(policy)}))
        AND NOT ${held(t)}
      ORDER BY e.id
      FOR UPDATE OF e SKIP LOCKED
    ), gone_events AS (
      SELECT p.pruned_events FROM ${t.pruneOutbox}(
        ARRAY(SELECT c.id::text FROM chosen c ORDER BY c.id), ARRAY(SELECT c.id FROM chosen c ORDER BY c.id),
        ARRAY(SELECT c.id::text FROM chosen c ORDER BY c.id),
        ${policy.deadEventSeconds}::float8, ${policy.deliveredEventSeconds}::float8) p
    )
    SELECT (SELECT COALESCE(sum(pruned_events), 0) FROM gone_events)::int AS "events",
           (SELECT count(*) FROM looked_at)::int AS "scanned",
           (SELECT count(*) FROM looked_at) < ${policy.chunkSize} AS "reachedEnd",
           (SELECT json_build_object('createdAt', l.created_at, 'id', l.id::text) FROM looked_at l
            ORDER BY l.created_at DESC, l.id DESC LIMIT 1) AS "next"`;
}

/** Deletes registry rows of workers stopped, or not seen, for longer than `workerSeconds`. */
export function pruneWorkers(t: Tables, policy: RetentionPolicy): Sql {
  return sql`
    WITH gone AS (
      DELETE FROM ${t.workers}
      WHERE COALESCE(stopped_at, seen_at) < now() - ${seconds(policy.workerSeconds!)}
      RETURNING 1)
    SELECT count(*)::int AS "workers" FROM gone`;
}
