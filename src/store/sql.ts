// Every raw statement the module issues, in one file (as pg-boss keeps its in plans.ts): the
// places where Prisma's query API cannot say it — SKIP LOCKED claims, counters updated with
// RETURNING, multi-row inserts by unnest, ON CONFLICT, NOTIFY. Each function returns a
// parameterized statement; nothing here runs it. Values are always bound parameters; the only
// text spliced in is fixed SQL from this file.
import { raw, sqltag as sql, type Sql } from "@prisma/client/runtime/client";
import type { BatchPlan, OperationPlan } from "../submit/plan";

/** An outbox row as written: the change it reports and where it goes. */
export interface NewOutboxEvent {
  tenantId: string;
  topic: string;
  aggregateId: string;
  payload: unknown;
}

/** An outbox row as read back, the shape every delivery gets. */
export interface OutboxRow {
  id: string;
  tenantId: string;
  topic: string;
  aggregateId: string;
  payload: unknown;
  attempts: number;
  createdAt: Date;
}

const OUTBOX_COLUMNS =
  raw(`id::text AS "id", tenant_id AS "tenantId", topic, aggregate_id::text AS "aggregateId",
  payload, attempts, created_at AS "createdAt"`);

const TERMINAL = raw(`('completed', 'failed', 'cancelled')`);

/** The channel cancel requests are notified on (at commit), for workers running those operations. */
export const CANCEL_CHANNEL = "prisma_operations_cancel";

/**
 * The channel that wakes listening workers when there is new work. Submits and retries notify it
 * from their own statement: PostgreSQL delivers a NOTIFY when its transaction commits, and never
 * for one that rolls back, so the wake-up is post-commit by construction and costs no round trip.
 */
export const WAKE_CHANNEL = "prisma_operations_wake";

function milliseconds(ms: number): Sql {
  return sql`make_interval(secs => ${ms / 1000}::double precision)`;
}

/** A batch row as an insert returns it (snake_case, as row_to_json gives it). */
export interface InsertedRow {
  inserted: Record<string, unknown> | null;
  events: OutboxRow[] | null;
}

/**
 * The whole submit of a batch in one statement: the parent, every child (one multi-row insert by
 * unnest, whatever the count) and the `batch.submitted` event. With an idempotency key the parent
 * is inserted ON CONFLICT DO NOTHING: a concurrent submit with the same key waits for the first to
 * commit and then inserts nothing at all (children and event hang on the parent's RETURNING), so
 * neither a lock nor a retry is needed.
 */
export function insertBatch(batch: BatchPlan, eventDelayMs: number): Sql {
  const onConflict =
    batch.idempotencyKey === undefined ? sql`` : sql`ON CONFLICT (tenant_id, idempotency_key) DO NOTHING`;
  return sql`
    WITH parent AS (
      INSERT INTO operation_batches (id, tenant_id, type, failure_policy, child_count, metadata, idempotency_key)
      VALUES (${batch.id}::uuid, ${batch.tenantId}, ${batch.type}, ${batch.failurePolicy}::failure_policy,
              ${batch.children.length}, ${batch.metadataJson ?? null}::jsonb,
              ${batch.idempotencyKey ?? null})
      ${onConflict}
      RETURNING *
    ), children AS (
      INSERT INTO operations (id, tenant_id, batch_id, type, payload, max_attempts, run_at)
      SELECT c.id, p.tenant_id, p.id, p.type, c.payload, ${batch.maxAttempts}, COALESCE(${batch.runAt ?? null}::timestamptz, now())
      FROM parent p, unnest(${batch.children.map((child) => child.id)}::uuid[],
                            ${batch.children.map((child) => child.payloadJson)}::jsonb[]) AS c(id, payload)
      RETURNING 1
    ), events AS (
      INSERT INTO operation_outbox (tenant_id, topic, aggregate_id, payload, available_at)
      SELECT p.tenant_id, 'batch.submitted', p.id,
             jsonb_build_object('batchId', p.id, 'type', p.type, 'childCount', p.child_count),
             now() + ${milliseconds(eventDelayMs)}
      FROM parent p
      RETURNING ${OUTBOX_COLUMNS}
    )
    SELECT (SELECT row_to_json(p) FROM parent p) AS "inserted",
           (SELECT json_agg(e) FROM events e) AS "events",
           (SELECT count(*) FROM children)::int AS "children",
           (SELECT count(pg_notify(${WAKE_CHANNEL}, p.type)) FROM parent p)::int AS "woke"`;
}

/** A standalone operation and its `operation.submitted` event in one statement; idempotent as above. */
export function insertOperation(operation: OperationPlan, eventDelayMs: number): Sql {
  const onConflict =
    operation.idempotencyKey === undefined
      ? sql``
      : sql`ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING`;
  return sql`
    WITH inserted AS (
      INSERT INTO operations (id, tenant_id, type, payload, max_attempts, run_at, idempotency_key)
      VALUES (${operation.id}::uuid, ${operation.tenantId}, ${operation.type}, ${operation.payloadJson}::jsonb,
              ${operation.maxAttempts}, COALESCE(${operation.runAt ?? null}::timestamptz, now()),
              ${operation.idempotencyKey ?? null})
      ${onConflict}
      RETURNING *
    ), events AS (
      INSERT INTO operation_outbox (tenant_id, topic, aggregate_id, payload, available_at)
      SELECT o.tenant_id, 'operation.submitted', o.id,
             jsonb_build_object('operationId', o.id, 'batchId', NULL, 'type', o.type), now() + ${milliseconds(eventDelayMs)}
      FROM inserted o
      RETURNING ${OUTBOX_COLUMNS}
    )
    SELECT (SELECT row_to_json(o) FROM inserted o) AS "inserted", (SELECT json_agg(e) FROM events e) AS "events",
           (SELECT count(pg_notify(${WAKE_CHANNEL}, o.type)) FROM inserted o)::int AS "woke"`;
}

/** Writes outbox events in one statement, available to the relay after `delayMs`. */
export function insertOutboxEvents(events: readonly NewOutboxEvent[], delayMs: number): Sql {
  return sql`
    INSERT INTO operation_outbox (tenant_id, topic, aggregate_id, payload, available_at)
    SELECT e.tenant_id, e.topic, e.aggregate_id, e.payload, now() + ${milliseconds(delayMs)}
    FROM unnest(${events.map((e) => e.tenantId)}::text[], ${events.map((e) => e.topic)}::text[],
                ${events.map((e) => e.aggregateId)}::uuid[], ${events.map((e) => JSON.stringify(e.payload))}::jsonb[])
      AS e(tenant_id, topic, aggregate_id, payload)
    RETURNING ${OUTBOX_COLUMNS}`;
}

/**
 * Takes up to `limit` due, undelivered events for one delivery attempt: counts the attempt and
 * pushes `available_at` past the lease, so a relay that dies mid-delivery hands them back.
 */
export function claimDueEvents(limit: number, leaseMs: number): Sql {
  return sql`
    UPDATE operation_outbox o
    SET attempts = o.attempts + 1, available_at = now() + ${milliseconds(leaseMs)}
    FROM operation_outbox_pick_due(${limit}::int) due
    WHERE o.id = due.picked_id
    RETURNING o.id::text AS "id", o.tenant_id AS "tenantId", o.topic, o.aggregate_id::text AS "aggregateId",
      o.payload, o.attempts, o.created_at AS "createdAt"`;
}

/** Records delivered events. `countAttempt` when the attempt was not counted at claim (inline dispatch). */
export function markEventsDispatched(ids: readonly string[], countAttempt: boolean): Sql {
  return sql`
    UPDATE operation_outbox
    SET dispatched_at = now(), last_error = NULL, attempts = attempts + ${countAttempt ? 1 : 0}
    WHERE id = ANY(${ids}::bigint[]) AND dispatched_at IS NULL AND dead_at IS NULL`;
}

/**
 * Records a failed delivery: due again after `retryDelayMs`, or dead when `retryDelayMs` is null.
 */
export function markEventFailed(
  id: string,
  error: string,
  retryDelayMs: number | null,
  countAttempt: boolean,
): Sql {
  return sql`
    UPDATE operation_outbox
    SET attempts = attempts + ${countAttempt ? 1 : 0},
        last_error = ${error},
        dead_at = ${retryDelayMs === null ? sql`now()` : sql`NULL`},
        available_at = ${retryDelayMs === null ? sql`available_at` : sql`now() + ${milliseconds(retryDelayMs)}`}
    WHERE id = ${id}::bigint AND dispatched_at IS NULL AND dead_at IS NULL`;
}

/** Ids of a batch's children that are waiting to run, in submission order. */
export function pendingChildIds(batchId: string): Sql {
  return sql`SELECT id::text AS "id" FROM operations WHERE batch_id = ${batchId}::uuid AND status = 'pending' ORDER BY id`;
}

/** A claimed operation: what a handler needs, and the lease it runs under. */
export interface ClaimedRow {
  id: string;
  tenantId: string;
  batchId: string | null;
  type: string;
  payload: unknown;
  attempts: number;
  maxAttempts: number;
}

const CLAIMED_COLUMNS =
  raw(`o.id::text AS "id", o.tenant_id AS "tenantId", o.batch_id::text AS "batchId", o.type,
  o.payload, o.attempts, o.max_attempts AS "maxAttempts"`);

/**
 * Marks the picked rows processing under a lease held by `workerId`, counting an attempt, and
 * marks their batches started — one statement. `picked` selects ids FOR UPDATE SKIP LOCKED, so
 * concurrent claimers never get the same row and never wait for each other.
 */
function claim(picked: Sql, workerId: string, leaseMs: number): Sql {
  return sql`
    WITH picked AS (${picked}), claimed AS (
      UPDATE operations o
      SET status = 'processing', locked_by = ${workerId}, locked_until = now() + ${milliseconds(leaseMs)},
          attempts = o.attempts + 1, started_at = COALESCE(o.started_at, now()), updated_at = now()
      FROM picked
      WHERE o.id = picked.picked_id
      RETURNING ${CLAIMED_COLUMNS}
    ), started AS (
      UPDATE operation_batches b
      SET status = 'processing', started_at = COALESCE(b.started_at, now()), updated_at = now()
      WHERE b.id IN (SELECT "batchId"::uuid FROM claimed) AND b.status = 'pending'
    )
    SELECT * FROM claimed ORDER BY id`;
}

/**
 * The claim query: up to `limit` due, pending operations (of `types`, when given), oldest due
 * first. It reads the operations table only — a batch (parent) cannot be returned, in any state.
 */
export function claimDue(limit: number, workerId: string, leaseMs: number, types?: readonly string[]): Sql {
  // The pick runs with bitmap scans off (migration 20261128000000_hot_path): see there for why.
  return claim(
    sql`SELECT picked_id FROM operations_pick_claimable(${limit}::int, ${types ?? null}::text[])`,
    workerId,
    leaseMs,
  );
}

/** Claims the named operations that are still pending, whatever their run_at (the sync backend). */
export function claimOperationsById(ids: readonly string[], workerId: string, leaseMs: number): Sql {
  return claim(
    sql`
      SELECT id AS picked_id FROM operations
      WHERE id = ANY(${ids}::uuid[]) AND status = 'pending'
      ORDER BY id
      FOR UPDATE SKIP LOCKED`,
    workerId,
    leaseMs,
  );
}

/** Operation columns a `changed` CTE returns, and the counter deltas of entering the new status. */
const ENTERED = raw(`id, tenant_id, batch_id, type, status, attempts,
  (status = 'completed')::int AS d_completed, (status = 'failed')::int AS d_failed,
  (status = 'cancelled')::int AS d_cancelled`);

/** The event topic of a row that ended terminal; none for a row that went back to pending. */
const TERMINAL_TOPIC = raw(
  `CASE WHEN status IN ('completed', 'failed', 'cancelled') THEN 'operation.' || status END AS topic`,
);

/**
 * The shared tail of every statement that moves operations into or out of a terminal state.
 * `changed` is a CTE of the moved rows with ENTERED's columns and a `topic` (null: no event).
 *
 * - fail_fast: a row that failed cancels its batch's pending siblings and asks its running ones
 *   to stop (their workers hear it on CANCEL_CHANNEL at commit);
 * - every batch's counters move by the sum of its rows' deltas — O(1) per batch, never a scan of
 *   the siblings — and the counters decide its status: terminal exactly when
 *   completed + failed + cancelled = child_count; then failed if any failed, else cancelled if any
 *   was cancelled, else completed (domain/status.ts has the same rule; a test holds them
 *   together). A terminal batch whose counters go back down (a retry) is processing again;
 * - the outbox gets each row's event, and `batch.<status>` for a batch this change finished.
 */
function aggregateAndRecord(eventDelayMs: number, canFail = true): Sql {
  const availableAt = sql`now() + ${milliseconds(eventDelayMs)}`;
  // A change in which no row can end failed cannot trigger fail_fast: the empty CTEs keep the
  // statement's shape and save the planner the two sibling updates (the hot path: completions).
  // One UPDATE takes every unfinished sibling: a pending one is cancelled, a running one is asked
  // to stop. One statement rather than two because a sibling claimed while this runs is re-read by
  // the UPDATE (PostgreSQL re-checks a row another transaction just changed) and lands in the
  // right branch; two UPDATEs would each see it in the other's state and both miss it.
  const failFast = canFail
    ? sql`
    siblings AS (
      UPDATE operations s
      SET status = CASE WHEN s.status = 'pending' THEN 'cancelled'::operation_status ELSE s.status END,
          cancel_requested_at = COALESCE(s.cancel_requested_at, now()),
          finished_at = CASE WHEN s.status = 'pending' THEN now() ELSE s.finished_at END,
          error = CASE WHEN s.status = 'pending'
                       THEN jsonb_build_object('name', 'Cancelled', 'message', 'cancelled by fail_fast: a sibling failed',
                              'retryable', false, 'attempt', s.attempts)
                       ELSE s.error END,
          updated_at = now()
      FROM changed c JOIN operation_batches b ON b.id = c.batch_id
      WHERE c.status = 'failed' AND b.failure_policy = 'fail_fast' AND s.batch_id = c.batch_id
        AND s.status IN ('pending', 'processing') AND s.id NOT IN (SELECT id FROM changed)
      RETURNING s.id, s.tenant_id, s.batch_id, s.type, s.status, s.attempts
    ), cascaded AS (
      SELECT * FROM siblings WHERE status = 'cancelled'
    ), requested AS (
      SELECT id FROM siblings WHERE status = 'processing'
    ),`
    : sql`
    cascaded AS (
      SELECT NULL::uuid AS id, NULL::text AS tenant_id, NULL::uuid AS batch_id, NULL::text AS type,
             NULL::operation_status AS status, NULL::int AS attempts WHERE false
    ), requested AS (SELECT NULL::uuid AS id WHERE false),`;
  return sql`
    ${failFast} deltas AS (
      SELECT batch_id, sum(dc)::int AS dc, sum(df)::int AS df, sum(dx)::int AS dx
      FROM (
        SELECT batch_id, d_completed AS dc, d_failed AS df, d_cancelled AS dx FROM changed
        UNION ALL SELECT batch_id, 0, 0, 1 FROM cascaded
      ) moved
      WHERE batch_id IS NOT NULL
      GROUP BY batch_id
    ), parent AS (
      UPDATE operation_batches b
      SET completed_count = b.completed_count + d.dc,
          failed_count = b.failed_count + d.df,
          cancelled_count = b.cancelled_count + d.dx,
          status = CASE
            WHEN b.completed_count + b.failed_count + b.cancelled_count + d.dc + d.df + d.dx = b.child_count THEN
              (CASE WHEN b.failed_count + d.df > 0 THEN 'failed'
                    WHEN b.cancelled_count + d.dx > 0 THEN 'cancelled'
                    ELSE 'completed' END)::batch_status
            WHEN b.status IN ${TERMINAL} THEN 'processing'::batch_status
            ELSE b.status END,
          finished_at = CASE
            WHEN b.completed_count + b.failed_count + b.cancelled_count + d.dc + d.df + d.dx = b.child_count
            THEN now() ELSE NULL END,
          updated_at = now()
      FROM deltas d
      WHERE b.id = d.batch_id
      RETURNING b.id, b.tenant_id, b.type, b.status, b.child_count, b.completed_count, b.failed_count,
        b.cancelled_count, (d.dc + d.df + d.dx) AS moved
    ), events AS (
      INSERT INTO operation_outbox (tenant_id, topic, aggregate_id, payload, available_at)
      SELECT tenant_id, topic, id, jsonb_build_object('operationId', id, 'batchId', batch_id, 'type', type,
          'status', status, 'attempts', attempts), ${availableAt}
      FROM (
        SELECT id, tenant_id, batch_id, type, status, attempts, topic FROM changed WHERE topic IS NOT NULL
        UNION ALL SELECT id, tenant_id, batch_id, type, status, attempts, 'operation.cancelled' FROM cascaded
      ) moved
      UNION ALL
      SELECT p.tenant_id, 'batch.' || p.status, p.id,
        jsonb_build_object('batchId', p.id, 'type', p.type, 'status', p.status, 'childCount', p.child_count,
          'completed', p.completed_count, 'failed', p.failed_count, 'cancelled', p.cancelled_count),
        ${availableAt}
      FROM parent p
      WHERE p.status IN ${TERMINAL} AND p.moved > 0
      RETURNING ${OUTBOX_COLUMNS}
    )`;
}

/** What a transition statement did: the rows it moved (with their new status) and the events it wrote. */
export interface TransitionRow {
  changed: number;
  rows: { id: string; status: string }[];
  events: OutboxRow[];
  /** Running siblings asked to stop (fail_fast). */
  cancelRequested: number;
}

const TRANSITION_RESULT = sql`
  SELECT (SELECT count(*) FROM changed)::int AS "changed",
         COALESCE((SELECT json_agg(json_build_object('id', id, 'status', status)) FROM changed), '[]'::json) AS "rows",
         COALESCE((SELECT json_agg(e ORDER BY e.id) FROM events e), '[]'::json) AS "events",
         (SELECT count(pg_notify(${CANCEL_CHANNEL}, r.id::text)) FROM requested r)::int AS "cancelRequested"`;

/** `wake`: notify WAKE_CHANNEL (at commit) for the types of rows that are pending again. */
function transition(changed: Sql, eventDelayMs: number, canFail = true, wake = false): Sql {
  const woke = wake
    ? sql`, (SELECT count(pg_notify(${WAKE_CHANNEL}, type))
             FROM (SELECT DISTINCT type FROM changed WHERE status = 'pending') t)::int AS "woke"`
    : sql``;
  return sql`WITH changed AS (${changed}), ${aggregateAndRecord(eventDelayMs, canFail)} ${TRANSITION_RESULT} ${woke}`;
}

/** How a worker ends its hold on an operation. */
export type Finish =
  | { to: "completed"; result: unknown }
  | { to: "failed"; error: unknown }
  /** Back to pending after `delayMs`: a retry (`error` set, attempt kept) or a snooze/hand-back (attempt refunded). */
  | { to: "pending"; error?: unknown; delayMs: number; refundAttempt: boolean };

/**
 * Ends `workerId`'s hold on each operation, in one statement however many there are — only
 * where it still holds the lease (fencing: a worker whose lease expired and was taken over
 * changes nothing). A cancel asked for meanwhile wins: the row ends cancelled whatever the handler
 * did. One statement for many outcomes is a group commit: one plan, one round trip and one update
 * of each batch row, however many of its children finished.
 */
export function finishOperations(
  outcomes: readonly { id: string; finish: Finish }[],
  workerId: string,
  eventDelayMs: number,
): Sql {
  const column = <T>(pick: (finish: Finish) => T) => outcomes.map((outcome) => pick(outcome.finish));
  const json = (value: unknown) => (value === undefined ? null : JSON.stringify(value ?? null));
  return transition(
    sql`
      UPDATE operations o
      SET status = CASE WHEN o.cancel_requested_at IS NOT NULL THEN 'cancelled'::operation_status
                        ELSE u.target::operation_status END,
          result = CASE WHEN u.target = 'completed' THEN u.result ELSE o.result END,
          error = CASE WHEN u.target = 'completed' THEN NULL ELSE COALESCE(u.error, o.error) END,
          run_at = CASE WHEN u.target = 'pending' THEN now() + make_interval(secs => u.delay_s) ELSE o.run_at END,
          attempts = o.attempts - u.refund,
          locked_by = NULL, locked_until = NULL, updated_at = now(),
          finished_at = CASE WHEN o.cancel_requested_at IS NOT NULL OR u.target <> 'pending' THEN now() END
      FROM unnest(${outcomes.map((outcome) => outcome.id)}::uuid[], ${column((f) => f.to)}::text[],
                  ${column((f) => (f.to === "completed" ? json(f.result) : null))}::jsonb[],
                  ${column((f) => (f.to === "completed" ? null : json(f.error)))}::jsonb[],
                  ${column((f) => (f.to === "pending" ? f.delayMs / 1000 : 0))}::float8[],
                  ${column((f) => (f.to === "pending" && f.refundAttempt ? 1 : 0))}::int[])
        AS u(id, target, result, error, delay_s, refund)
      WHERE o.id = u.id AND o.locked_by = ${workerId} AND o.status = 'processing'
      RETURNING o.id, o.tenant_id, o.batch_id, o.type, o.status, o.attempts,
        (o.status = 'completed')::int AS d_completed, (o.status = 'failed')::int AS d_failed,
        (o.status = 'cancelled')::int AS d_cancelled,
        CASE WHEN o.status IN ('completed', 'failed', 'cancelled') THEN 'operation.' || o.status END AS topic`,
    eventDelayMs,
    outcomes.some((outcome) => outcome.finish.to === "failed"),
  );
}

/**
 * Takes back operations whose lease expired (their worker died or stalled): due again at once
 * with the attempt counted, failed when attempts are exhausted, cancelled when a cancel was asked.
 */
export function reapExpiredLeases(limit: number, eventDelayMs: number): Sql {
  return transition(
    sql`
      UPDATE operations o
      SET status = (CASE WHEN o.cancel_requested_at IS NOT NULL THEN 'cancelled'
                         WHEN o.attempts >= o.max_attempts THEN 'failed'
                         ELSE 'pending' END)::operation_status,
          error = jsonb_build_object('name', 'LeaseExpired', 'message', 'the lease of ' || o.locked_by || ' expired',
            'retryable', o.attempts < o.max_attempts, 'attempt', o.attempts),
          run_at = now(), locked_by = NULL, locked_until = NULL, updated_at = now(),
          finished_at = CASE WHEN o.cancel_requested_at IS NOT NULL OR o.attempts >= o.max_attempts THEN now() END
      FROM (
        SELECT id AS picked_id FROM operations
        WHERE status = 'processing' AND locked_until < now()
        ORDER BY locked_until
        LIMIT ${limit}
        FOR UPDATE SKIP LOCKED
      ) picked
      WHERE o.id = picked.picked_id
      RETURNING ${ENTERED}, ${TERMINAL_TOPIC}`,
    eventDelayMs,
    true,
    true,
  );
}

/** Extends the leases this worker still holds; says which of them were asked to cancel. */
export function heartbeat(ids: readonly string[], workerId: string, leaseMs: number): Sql {
  return sql`
    UPDATE operations
    SET locked_until = now() + ${milliseconds(leaseMs)}
    WHERE id = ANY(${ids}::uuid[]) AND locked_by = ${workerId} AND status = 'processing'
    RETURNING id::text AS "id", cancel_requested_at IS NOT NULL AS "cancelRequested"`;
}

/** A tenant's operation, or a tenant's batch's children: the rows a cancel or retry acts on. */
export type Target = { operationId: string; tenantId: string } | { batchId: string; tenantId: string };

function targetRows(target: Target): Sql {
  return "operationId" in target
    ? sql`id = ${target.operationId}::uuid AND tenant_id = ${target.tenantId}`
    : sql`batch_id = ${target.batchId}::uuid AND tenant_id = ${target.tenantId}`;
}

/** pending → cancelled, at once, for the target's pending rows. */
export function cancelPending(target: Target, eventDelayMs: number): Sql {
  return transition(
    sql`
      UPDATE operations
      SET status = 'cancelled', cancel_requested_at = now(), finished_at = now(), updated_at = now(),
          error = jsonb_build_object('name', 'Cancelled', 'message', 'cancelled on request', 'retryable', false,
            'attempt', attempts)
      WHERE ${targetRows(target)} AND status = 'pending'
      RETURNING ${ENTERED}, 'operation.cancelled'::text AS topic`,
    eventDelayMs,
    false,
  );
}

/** Asks the target's running rows to stop: their handlers' AbortSignals fire when the workers hear it. */
export function requestCancel(target: Target): Sql {
  return sql`
    WITH requested AS (
      UPDATE operations SET cancel_requested_at = now(), updated_at = now()
      WHERE ${targetRows(target)} AND status = 'processing' AND cancel_requested_at IS NULL
      RETURNING id
    )
    SELECT count(pg_notify(${CANCEL_CHANNEL}, id::text))::int AS "requested" FROM requested`;
}

/**
 * failed | cancelled → pending with fresh attempts, for the target's failed and cancelled rows;
 * their batches' counters go back down and a finished batch is processing again. Each re-queued
 * row gets an `operation.retried` event.
 */
export function requeueFinished(target: Target, eventDelayMs: number): Sql {
  return transition(
    sql`
      UPDATE operations o
      SET status = 'pending', attempts = 0, run_at = now(), result = NULL, error = NULL,
          cancel_requested_at = NULL, started_at = NULL, finished_at = NULL, updated_at = now()
      FROM (SELECT id AS old_id, status AS old_status FROM operations
            WHERE ${targetRows(target)} AND status IN ('failed', 'cancelled')) old
      WHERE o.id = old.old_id
      RETURNING o.id, o.tenant_id, o.batch_id, o.type, o.status, o.attempts, 0 AS d_completed,
        -(old.old_status = 'failed')::int AS d_failed, -(old.old_status = 'cancelled')::int AS d_cancelled,
        'operation.retried'::text AS topic`,
    eventDelayMs,
    false,
    true,
  );
}

/** Locks a tenant's operation for a cancel or retry decision and says its state. */
export function lockOperation(tenantId: string, id: string): Sql {
  return sql`SELECT status::text AS "status" FROM operations WHERE id = ${id}::uuid AND tenant_id = ${tenantId} FOR UPDATE`;
}

/**
 * Repairs batches still in flight although none of their children is (possible only through rows
 * changed outside this module, e.g. children deleted): counters are recounted from the children,
 * a missing child counts as failed, and the batch gets its terminal status and event. Batches
 * touched in the last `minAgeMs` are left alone; they are moving.
 */
export function reconcileBatches(limit: number, minAgeMs: number, eventDelayMs: number): Sql {
  const availableAt = sql`now() + ${milliseconds(eventDelayMs)}`;
  return sql`
    WITH candidates AS (
      SELECT b.id FROM operation_batches b
      WHERE b.status IN ('pending', 'processing') AND b.updated_at < now() - ${milliseconds(minAgeMs)}
        AND NOT EXISTS (SELECT 1 FROM operations o WHERE o.batch_id = b.id AND o.status IN ('pending', 'processing'))
      ORDER BY b.updated_at
      LIMIT ${limit}
      FOR UPDATE OF b SKIP LOCKED
    ), actual AS (
      SELECT c.id, count(o.id)::int AS present,
             count(o.id) FILTER (WHERE o.status = 'completed')::int AS completed,
             count(o.id) FILTER (WHERE o.status = 'cancelled')::int AS cancelled
      FROM candidates c LEFT JOIN operations o ON o.batch_id = c.id
      GROUP BY c.id
    ), fixed AS (
      UPDATE operation_batches b
      SET completed_count = a.completed, cancelled_count = a.cancelled,
          failed_count = b.child_count - a.completed - a.cancelled,
          status = (CASE WHEN b.child_count - a.completed - a.cancelled > 0 THEN 'failed'
                         WHEN a.cancelled > 0 THEN 'cancelled' ELSE 'completed' END)::batch_status,
          error = CASE WHEN a.present < b.child_count
                       THEN jsonb_build_object('name', 'MissingChildren', 'message',
                         (b.child_count - a.present) || ' of ' || b.child_count || ' children are missing')
                       ELSE b.error END,
          finished_at = now(), updated_at = now()
      FROM actual a
      WHERE b.id = a.id
      RETURNING b.id, b.tenant_id, b.type, b.status, b.child_count, b.completed_count, b.failed_count, b.cancelled_count
    ), events AS (
      INSERT INTO operation_outbox (tenant_id, topic, aggregate_id, payload, available_at)
      SELECT f.tenant_id, 'batch.' || f.status, f.id,
        jsonb_build_object('batchId', f.id, 'type', f.type, 'status', f.status, 'childCount', f.child_count,
          'completed', f.completed_count, 'failed', f.failed_count, 'cancelled', f.cancelled_count,
          'reconciled', true),
        ${availableAt}
      FROM fixed f
      RETURNING ${OUTBOX_COLUMNS}
    )
    SELECT (SELECT count(*) FROM fixed)::int AS "fixed",
           COALESCE((SELECT json_agg(e ORDER BY e.id) FROM events e), '[]'::json) AS "events"`;
}

/** Work waiting and running, per type and tenant — operations only, never a batch. */
export function operationStats(): Sql {
  return sql`
    SELECT type, tenant_id AS "tenantId",
           count(*) FILTER (WHERE status = 'pending' AND run_at <= now())::int AS "claimable",
           count(*) FILTER (WHERE status = 'pending' AND run_at > now())::int AS "scheduled",
           count(*) FILTER (WHERE status = 'processing')::int AS "processing",
           COALESCE(extract(epoch FROM now() - min(run_at) FILTER (WHERE status = 'pending' AND run_at <= now())), 0)::float8
             AS "oldestClaimableAgeSeconds"
    FROM operations
    WHERE status IN ('pending', 'processing')
    GROUP BY type, tenant_id`;
}

/** Batches not yet terminal, per type and tenant. */
export function batchStats(): Sql {
  return sql`
    SELECT type, tenant_id AS "tenantId", count(*)::int AS "inFlight"
    FROM operation_batches WHERE status IN ('pending', 'processing')
    GROUP BY type, tenant_id`;
}

/** Undelivered and dead outbox events, per tenant. */
export function outboxStats(): Sql {
  return sql`
    SELECT tenant_id AS "tenantId",
           count(*) FILTER (WHERE dead_at IS NULL)::int AS "backlog",
           count(*) FILTER (WHERE dead_at IS NOT NULL)::int AS "dead"
    FROM operation_outbox
    WHERE dispatched_at IS NULL
    GROUP BY tenant_id`;
}
