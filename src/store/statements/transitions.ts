// Every statement that changes an operation's status, built on one rule (`move`): the rows to change
// are picked and locked in one order (by id), and everything that decides the change — its
// conditions, the new status, the batch counter deltas — is computed from the row as it is when
// it is updated (`o`), never from the picked copy (`p`). Under READ COMMITTED a row changed by a
// concurrent transaction is re-read where it is updated, but a copy carried in from a sub-select
// can be the older version (the racing-clients soak caught a cancel deciding "pending" for a row
// just claimed). So a concurrent change makes a row move from its real status, or fall out.
// A worker's outcomes follow the same rule in a function (operations_finish in the migrations),
// whose plans do not depend on the statistics; what follows from any move is built here.
//
// The lock order, kept by every statement here and by every operator action and retention: each
// kind of row is locked in key order, and no transaction takes a kind above one it holds.
//   1. operations, by id — a move's rows, with fail_fast's siblings in the same pass
//      (operations_lock_with_siblings); a retry locks its rows in a statement of its own first
//      (lockFinished), then moves them;
//   2. batches, by id (`batches_locked` below);
//   3. subscribers: FOR KEY SHARE by every statement that writes delivery rows or holds for them
//      (outbox.ts: recordEvents, replayEvents), deleted by a removal (operation_subscribers_remove),
//      which holds nothing else yet; registrations update them without touching the key, which
//      conflicts with neither;
//   4. holds, by id (a removal; a settle and a relay's takeover, each of its own holds);
//   5. delivery rows, by (event_id, subscriber): a relay's claims and records, redeliverDead, a
//      removal.
// Events are locked FOR UPDATE by retention only, and retention takes all of its locks — children,
// batches, events, delivery rows, in this order — SKIP LOCKED: it never waits, so it is never in a
// deadlock. Everyone else holds an event FOR KEY SHARE at most (redeliverDead, and a new delivery
// row's foreign key), which conflicts with retention alone. So: cancel, retry, a group commit and
// the reaper take 1, 2, 3; retryBatch 1, 2, 3 and 3 again (its event); a removal 3, 4, 5;
// replayEvents 3, then events, 5; redeliverDead events, 5; retention 1, 2, events, 5, skipping.
// (Retention used to lock a batch, then delete its children: a retry holding the children and
// waiting for the batch deadlocked with it, test/db/retention.test.ts.)
import type { OperationStatus } from "../../domain/status";
import type { Tables } from "../tables";
import { recordEvents, WRITTEN_EVENTS, type Inline, type WrittenEvent } from "./outbox";
import {
  CANCEL_CHANNEL,
  dueAt,
  lockedById,
  milliseconds,
  raw,
  sql,
  TERMINAL,
  wakeQueue,
  type Sql,
} from "./shared";

/** A change of some operations' status: which rows, from which statuses, to what. */
interface Move {
  /**
   * The rows named by id: a relation aliased `u` with an `id` column (a retry: the rows it locked;
   * fail_fast: the siblings, read once locked).
   * Each is looked up and locked by primary key (see `lockedById`); without it, the rows are
   * found by `where` over the table.
   */
  byId?: Sql;
  /** Which rows, over `c` (and `u`, with `byId`). */
  where: Sql;
  /**
   * The statuses a row may leave: checked where the row is picked and again where it is updated.
   * Either only unfinished ones (pending, processing: they count in no counter), or rows whose
   * status was read under their lock by an earlier statement of the same transaction and carried
   * in as `old_status` (then the update requires the row to still have it).
   */
  from: readonly OperationStatus[];
  /** Columns of the picked rows the assignments use, as `p.<name>` (start with a comma). */
  carry?: Sql;
  /**
   * Conditions re-checked on the row as it is updated (`o`, and `p`), beside its status; with
   * `byId`, the pick checked them on the row as it locked it, and they are not repeated.
   */
  guard?: Sql;
  /** Assignments over `o` (the row as it is) and the carried columns of `p`. */
  set: Sql;
  /** The event topic of a moved row, over `o` as updated; NULL for no event. */
  topic: Sql;
}

const UNFINISHED: readonly OperationStatus[] = ["pending", "processing"];

function statusList(statuses: readonly OperationStatus[]): Sql {
  return raw(`(${statuses.map((status) => `'${status}'`).join(", ")})`);
}

/**
 * The UPDATE of a move, returning each moved row with its counter deltas — for each terminal
 * status, (new status is it) − (old status was it) — and whether it was just asked to cancel.
 */
function move(t: Tables, m: Move): Sql {
  const from = statusList(m.from);
  const carriesOld = !m.from.every((status) => UNFINISHED.includes(status));
  const left = (status: string) => (carriesOld ? sql`(p.old_status = ${status})::int` : sql`0`);
  const picked = m.byId
    ? sql`
      SELECT c.id ${m.carry ?? sql``}
      FROM ${lockedById(t, m.byId)}
      WHERE (${m.where}) AND c.status IN ${from}`
    : sql`
      SELECT c.id ${m.carry ?? sql``}
      FROM ${t.operations} c
      WHERE (${m.where}) AND c.status IN ${from}
      ORDER BY c.id
      FOR UPDATE OF c`;
  return sql`
    UPDATE ${t.operations} o
    SET ${m.set}, updated_at = now()
    FROM (${picked}) p
    WHERE o.id = p.id
      -- A row picked by id was locked as it is now, and its status checked, by this statement; a
      -- status condition here would let the planner find o through the partial index of processing
      -- rows again (with the generic plan of a prepared statement: 500 outcomes × 2,000 held).
      ${m.byId ? sql`` : sql`AND o.status IN ${from}`}
      ${carriesOld ? sql`AND o.status::text = p.old_status` : sql``}
      -- Nor the guard: the pick checked it on the row as locked, and the lock holds. Here it would
      -- be checked first on the row as this statement's snapshot shows it, and a row a concurrent
      -- commit changed (a fail_fast sibling retried meanwhile) would fall out unseen.
      ${m.guard && !m.byId ? sql`AND (${m.guard})` : sql``}
    RETURNING o.id, o.tenant_id, o.batch_id, o.type, o.status, o.attempts,
      (o.status = 'completed')::int - ${left("completed")} AS d_completed,
      (o.status = 'failed')::int - ${left("failed")} AS d_failed,
      (o.status = 'cancelled')::int - ${left("cancelled")} AS d_cancelled,
      -- Moves that ask running rows to stop take only rows not asked yet: a processing row they
      -- leave with a request was asked by them.
      (o.status = 'processing' AND o.cancel_requested_at IS NOT NULL) AS cancel_requested,
      ${m.topic} AS topic`;
}

/**
 * The move that cancels unfinished rows (a cancel request, or fail_fast): a pending row is
 * cancelled at once, a running one is asked to stop (its worker hears it on CANCEL_CHANNEL at
 * commit, or at its next heartbeat). Which branch a row takes is decided on the row as it is
 * updated, so one claimed while this runs is asked to stop rather than missed.
 */
function cancelling(t: Tables, which: Sql, message: string): Move {
  return {
    where: sql`${which} AND (c.status = 'pending' OR c.cancel_requested_at IS NULL)`,
    from: UNFINISHED,
    guard: sql`o.status = 'pending' OR o.cancel_requested_at IS NULL`,
    set: sql`
      status = CASE WHEN o.status = 'pending' THEN 'cancelled'::${t.operationStatus} ELSE o.status END,
      cancel_requested_at = COALESCE(o.cancel_requested_at, now()),
      finished_at = CASE WHEN o.status = 'pending' THEN now() ELSE o.finished_at END,
      error = CASE WHEN o.status = 'pending'
                   THEN jsonb_build_object('name', 'Cancelled', 'message', ${message}::text, 'retryable', false,
                          'attempt', o.attempts)
                   ELSE o.error END`,
    topic: sql`CASE WHEN o.status = 'cancelled' THEN 'operation.cancelled' END`,
  };
}

/**
 * fail_fast: a child that failed cancels its batch's pending siblings and asks its running ones to
 * stop. The siblings are read when the function that changed the rows has locked them (see
 * operations_fail_fast_siblings in the migrations), not as this statement's snapshot shows them: a
 * sibling retried while the statement waited for a lock is pending, and is cancelled.
 */
function failFastSiblings(t: Tables): Sql {
  return move(t, {
    ...cancelling(t, sql`c.id NOT IN (SELECT id FROM changed)`, "cancelled by fail_fast: a sibling failed"),
    byId: sql`${t.failFastSiblings}(
      ARRAY(SELECT ch.batch_id FROM changed ch WHERE ch.status = 'failed' AND ch.batch_id IS NOT NULL)) AS u(id)`,
  });
}

/** The same columns as a move returns, and no rows: for statements where nothing can fail. */
const NO_CASCADE = sql`
  SELECT NULL::uuid AS id, NULL::text AS tenant_id, NULL::uuid AS batch_id, NULL::text AS type,
         NULL::text AS status, NULL::int AS attempts, 0 AS d_completed, 0 AS d_failed, 0 AS d_cancelled,
         false AS cancel_requested, NULL::text AS topic
  WHERE false`;

/** What a transition statement did: the rows it moved (with their new status) and the events it wrote. */
export interface TransitionRow {
  changed: number;
  rows: { id: string; status: OperationStatus }[];
  events: WrittenEvent[];
  /** Running operations asked to stop (a cancel, or fail_fast). */
  cancelRequested: number;
}

/**
 * A move, and what follows from it in the same statement: fail_fast cascades (when a row can end
 * failed), each batch's counters moved by the sum of its rows' deltas — O(1) per batch, never a
 * scan of the siblings — and its status decided by them (terminal exactly when completed + failed
 * + cancelled = child_count: failed if any failed, else cancelled if any was, else completed;
 * domain/status.ts has the same rule and a test holds them together; a terminal batch whose
 * counters go back down is processing again), each moved row's event, `batch.<status>` for a batch
 * this change finished, the cancel notifications and, with `wake`, a wake-up for rows pending again.
 */
function transition(
  t: Tables,
  /** The move, or a statement that changes the rows and returns what a move returns (see `changedBy`). */
  changed: Move | Sql,
  inline: Inline,
  options: { canFail: boolean; wake?: boolean },
): Sql {
  const woke = options.wake
    ? sql`, (SELECT count(${wakeQueue(raw("type"), raw("tenant_id"))})
             FROM (SELECT DISTINCT type, tenant_id FROM changed WHERE status = 'pending') w)::int AS "woke"`
    : sql``;
  return sql`
    WITH changed AS (${"set" in changed ? move(t, changed) : changed}),
    cascaded AS (${options.canFail ? failFastSiblings(t) : NO_CASCADE}),
    moved AS (
      SELECT id, tenant_id, batch_id, type, status::text AS status, attempts, d_completed, d_failed, d_cancelled,
             cancel_requested, topic FROM changed
      UNION ALL
      SELECT id, tenant_id, batch_id, type, status::text, attempts, d_completed, d_failed, d_cancelled,
             cancel_requested, topic FROM cascaded
    ), deltas AS (
      SELECT batch_id, sum(d_completed)::int AS dc, sum(d_failed)::int AS df, sum(d_cancelled)::int AS dx
      FROM moved
      WHERE batch_id IS NOT NULL
      GROUP BY batch_id
      HAVING bool_or(d_completed <> 0 OR d_failed <> 0 OR d_cancelled <> 0)
    ), batches_locked AS MATERIALIZED (
      -- The batch rows, locked in id order before any is updated: the UPDATE below takes them in
      -- the order of its plan (a scan of the table: the order rows were last written), and two
      -- group commits over the same batches then deadlocked on 1 statement in 4 (races.test.ts).
      -- The new counters are computed from the rows as locked here (the latest versions), not as
      -- the UPDATE first finds them (this statement's snapshot): PostgreSQL checks a new row's
      -- constraints before it finds that a concurrent commit changed the old one, so counters
      -- from the snapshot's version could fail a CHECK that the latest version passes (a sibling
      -- retried after the snapshot and cancelled by fail_fast: counted twice).
      SELECT b.id, b.child_count, b.completed_count, b.failed_count, b.cancelled_count, b.status, b.episode
      FROM ${t.batches} b
      WHERE b.id = ANY (ARRAY(SELECT batch_id FROM deltas))
      ORDER BY b.id
      FOR UPDATE OF b
    ), parent AS (
      UPDATE ${t.batches} b
      SET completed_count = l.completed_count + d.dc,
          failed_count = l.failed_count + d.df,
          cancelled_count = l.cancelled_count + d.dx,
          status = CASE
            WHEN l.completed_count + l.failed_count + l.cancelled_count + d.dc + d.df + d.dx = l.child_count THEN
              (CASE WHEN l.failed_count + d.df > 0 THEN 'failed'
                    WHEN l.cancelled_count + d.dx > 0 THEN 'cancelled'
                    ELSE 'completed' END)::${t.batchStatus}
            WHEN l.status IN ${TERMINAL} THEN 'processing'::${t.batchStatus}
            ELSE l.status END,
          finished_at = CASE
            WHEN l.completed_count + l.failed_count + l.cancelled_count + d.dc + d.df + d.dx = l.child_count
            THEN now() ELSE NULL END,
          episode = CASE
            WHEN l.status IN ${TERMINAL}
             AND l.completed_count + l.failed_count + l.cancelled_count + d.dc + d.df + d.dx < l.child_count
            THEN l.episode + 1 ELSE l.episode END,
          updated_at = now()
      FROM deltas d JOIN batches_locked l ON l.id = d.batch_id
      WHERE b.id = d.batch_id
      RETURNING b.id, b.tenant_id, b.type, b.status, b.child_count, b.completed_count, b.failed_count,
        b.cancelled_count, b.episode, (d.dc + d.df + d.dx) AS moved
    ), ${recordEvents(
      t,
      sql`
        SELECT tenant_id, topic, id, jsonb_build_object('operationId', id, 'batchId', batch_id, 'type', type,
            'status', status, 'attempts', attempts)
        FROM moved WHERE topic IS NOT NULL
        UNION ALL
        SELECT p.tenant_id, 'batch.' || p.status, p.id,
          jsonb_build_object('batchId', p.id, 'type', p.type, 'status', p.status, 'childCount', p.child_count,
            'completed', p.completed_count, 'failed', p.failed_count, 'cancelled', p.cancelled_count,
            'episode', p.episode)
        FROM parent p
        WHERE p.status IN ${TERMINAL} AND p.moved > 0`,
      inline,
    )}
    SELECT (SELECT count(*) FROM changed)::int AS "changed",
           COALESCE((SELECT json_agg(json_build_object('id', id, 'status', status)) FROM changed), '[]'::json) AS "rows",
           ${WRITTEN_EVENTS} AS "events",
           (SELECT count(pg_notify(${CANCEL_CHANNEL}, m.id::text)) FROM moved m WHERE m.cancel_requested)::int
             AS "cancelRequested"
           ${woke}`;
}

/**
 * The rows a function of the migrations changed (operations_finish, operations_reap: each returns
 * them in `finished_*` columns, as they are now, all of them out of `processing`), as a move
 * returns them. Their plans never depend on the statistics, which a statement's here can.
 */
function changedBy(call: Sql): Sql {
  return sql`
    SELECT f.finished_id AS id, f.finished_tenant_id AS tenant_id, f.finished_batch_id AS batch_id,
           f.finished_type AS type, f.finished_status AS status, f.finished_attempts AS attempts,
           (f.finished_status = 'completed')::int AS d_completed, (f.finished_status = 'failed')::int AS d_failed,
           (f.finished_status = 'cancelled')::int AS d_cancelled, false AS cancel_requested,
           CASE WHEN f.finished_status IN ${TERMINAL} THEN 'operation.' || f.finished_status END AS topic
    FROM ${call} f`;
}

/** How a worker ends its claim on an operation. */
export type Finish =
  | { to: "completed"; result: unknown }
  | { to: "failed"; error: unknown }
  /** Back to pending after `delayMs`: a retry (`error` set, attempt kept) or a snooze/hand-back (attempt refunded). */
  | { to: "pending"; error?: unknown; delayMs: number; refundAttempt: boolean };

/** One outcome, for the claim (`lockToken`) it belongs to. */
export interface Outcome {
  id: string;
  lockToken: string;
  finish: Finish;
}

/**
 * Ends claims, in one statement however many there are — each only if the row still has the claim
 * it names (fencing: a run whose lease expired and was taken over, even by the same worker, changes
 * nothing). Work that finished is recorded completed even if a cancel was asked for meanwhile (as
 * River and Oban do: the work is done, and retrying it would do it twice); any other outcome of a
 * row asked to cancel ends it cancelled. One statement for many outcomes is a group commit: one
 * plan, one round trip and one update of each batch row, however many of its children finished.
 */
export function finishOperations(t: Tables, outcomes: readonly Outcome[], inline: Inline): Sql {
  const column = <T>(pick: (finish: Finish) => T) => outcomes.map((outcome) => pick(outcome.finish));
  const json = (value: unknown) => (value === undefined ? null : JSON.stringify(value ?? null));
  return transition(
    t,
    // The rows are changed in a function whose plans do not follow the statistics (see
    // operations_finish in the migrations); what follows from the change is this statement's.
    changedBy(sql`${t.finish}(
        ${outcomes.map((o) => o.id)}::uuid[], ${outcomes.map((o) => o.lockToken)}::uuid[],
        ${column((f) => f.to)}::text[],
        ${column((f) => (f.to === "completed" ? json(f.result) : null))}::jsonb[],
        ${column((f) => (f.to === "completed" ? null : json(f.error)))}::jsonb[],
        ${column((f) => (f.to === "pending" ? f.delayMs / 1000 : 0))}::float8[],
        ${column((f) => (f.to === "pending" && f.refundAttempt ? 1 : 0))}::int[])`),
    inline,
    {
      canFail: outcomes.some((outcome) => outcome.finish.to === "failed"),
      // Rows handed back due at once (a worker shutting down, a cancel-free hand-back) wake the
      // other workers, whose last claim may have found nothing.
      wake: outcomes.some((outcome) => outcome.finish.to === "pending" && outcome.finish.delayMs === 0),
    },
  );
}

/**
 * Takes back operations whose lease expired (their worker died or stalled): due again at once
 * with the attempt counted, failed when attempts are exhausted, cancelled when a cancel was asked.
 */
export function reapExpiredLeases(t: Tables, limit: number, inline: Inline): Sql {
  // In a function whose plans do not follow the statistics (operations_reap in the migrations).
  return transition(t, changedBy(sql`${t.reap}(${limit}::int)`), inline, { canFail: true, wake: true });
}

/** A tenant's operation, or a tenant's batch's children: the rows a cancel or retry acts on. */
export type Target = { operationId: string; tenantId: string } | { batchId: string; tenantId: string };

export function targetRows(target: Target): Sql {
  return "operationId" in target
    ? sql`c.id = ${target.operationId}::uuid AND c.tenant_id = ${target.tenantId}`
    : sql`c.batch_id = ${target.batchId}::uuid AND c.tenant_id = ${target.tenantId}`;
}

/** Cancels the target's unfinished rows in one move (see `cancelling`). */
export function cancelTarget(t: Tables, target: Target, inline: Inline): Sql {
  return transition(t, cancelling(t, targetRows(target), "cancelled on request"), inline, { canFail: false });
}

/**
 * Locks the target's failed and cancelled rows (in id order) and reads their status: the first
 * statement of a re-queue, whose counter deltas depend on each row's old status.
 */
export function lockFinished(t: Tables, target: Target): Sql {
  return sql`
    SELECT c.id::text AS "id", c.status::text AS "status" FROM ${t.operations} c
    WHERE ${targetRows(target)} AND c.status IN ('failed', 'cancelled')
    ORDER BY c.id
    FOR UPDATE OF c`;
}

/**
 * failed | cancelled → pending with fresh attempts, for rows locked by `lockFinished` in the same
 * transaction (with the status it read); their batches' counters go back down and a finished batch
 * is processing again. Each re-queued row gets an `operation.retried` event; listening workers are
 * woken.
 */
export function requeueLocked(
  t: Tables,
  locked: readonly { id: string; status: string }[],
  inline: Inline,
): Sql {
  return transition(
    t,
    {
      byId: sql`unnest(${locked.map((row) => row.id)}::uuid[], ${locked.map((row) => row.status)}::text[])
        AS u(id, old_status)`,
      where: sql`true`,
      carry: sql`, u.old_status`,
      from: ["failed", "cancelled"],
      set: sql`
        status = 'pending', attempts = 0, run_at = ${dueAt()}, result = NULL, error = NULL,
        cancel_requested_at = NULL, started_at = NULL, finished_at = NULL`,
      topic: sql`'operation.retried'::text`,
    },
    inline,
    { canFail: false, wake: true },
  );
}

/**
 * Repairs batches still in flight although none of their children is (possible only through rows
 * changed outside this module, e.g. children deleted): counters are recounted from the children,
 * a missing child counts as failed, and the batch gets its terminal status and event. Batches
 * touched in the last `minAgeMs` are left alone; they are moving.
 */
export function reconcileBatches(t: Tables, limit: number, minAgeMs: number, inline: Inline): Sql {
  return sql`
    WITH candidates AS (
      SELECT b.id FROM ${t.batches} b
      WHERE b.status IN ('pending', 'processing') AND b.updated_at < now() - ${milliseconds(minAgeMs)}
        AND NOT EXISTS (SELECT 1 FROM ${t.operations} o
                        WHERE o.batch_id = b.id AND o.status IN ('pending', 'processing'))
      ORDER BY b.updated_at
      LIMIT ${limit}
      FOR UPDATE OF b SKIP LOCKED
    ), actual AS (
      SELECT c.id, count(o.id)::int AS present,
             count(o.id) FILTER (WHERE o.status = 'completed')::int AS completed,
             count(o.id) FILTER (WHERE o.status = 'cancelled')::int AS cancelled
      FROM candidates c LEFT JOIN ${t.operations} o ON o.batch_id = c.id
      GROUP BY c.id
    ), fixed AS (
      UPDATE ${t.batches} b
      SET completed_count = a.completed, cancelled_count = a.cancelled,
          failed_count = b.child_count - a.completed - a.cancelled,
          status = (CASE WHEN b.child_count - a.completed - a.cancelled > 0 THEN 'failed'
                         WHEN a.cancelled > 0 THEN 'cancelled' ELSE 'completed' END)::${t.batchStatus},
          error = CASE WHEN a.present < b.child_count
                       THEN jsonb_build_object('name', 'MissingChildren', 'message',
                         (b.child_count - a.present) || ' of ' || b.child_count || ' children are missing')
                       ELSE b.error END,
          finished_at = now(), updated_at = now()
      FROM actual a
      WHERE b.id = a.id
      RETURNING b.id, b.tenant_id, b.type, b.status, b.child_count, b.completed_count, b.failed_count,
        b.cancelled_count, b.episode
    ), ${recordEvents(
      t,
      sql`
        SELECT f.tenant_id, 'batch.' || f.status, f.id,
          jsonb_build_object('batchId', f.id, 'type', f.type, 'status', f.status, 'childCount', f.child_count,
            'completed', f.completed_count, 'failed', f.failed_count, 'cancelled', f.cancelled_count,
            'episode', f.episode, 'reconciled', true)
        FROM fixed f`,
      inline,
    )}
    SELECT (SELECT count(*) FROM fixed)::int AS "fixed", ${WRITTEN_EVENTS} AS "events"`;
}
