// Every raw statement the module issues, in one file (as pg-boss keeps its in plans.ts): the
// places where Prisma's query API cannot say it — SKIP LOCKED claims, counters updated with
// RETURNING, multi-row inserts by unnest, advisory locks, NOTIFY. Each function returns a
// parameterized statement; nothing here runs it. Values are always bound parameters; the only
// text spliced in is fixed SQL from this file.
import { raw, sqltag as sql, type Sql } from "@prisma/client/runtime/client";

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

const TERMINAL_BATCH = raw(`('completed', 'failed', 'cancelled')`);

function milliseconds(ms: number): Sql {
  return sql`make_interval(secs => ${ms / 1000}::double precision)`;
}

/**
 * Serializes submits that share a tenant and idempotency key until the transaction ends, so the
 * second one finds the first one's rows instead of racing it into the unique index.
 */
export function lockIdempotencyKey(scope: "batch" | "operation", tenantId: string, key: string): Sql {
  return sql`SELECT pg_advisory_xact_lock(hashtextextended(jsonb_build_array(${scope}::text, ${tenantId}::text, ${key}::text)::text, 0))::text AS "locked"`;
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
    FROM (
      SELECT id FROM operation_outbox
      WHERE dispatched_at IS NULL AND dead_at IS NULL AND available_at <= now()
      ORDER BY available_at, id
      LIMIT ${limit}
      FOR UPDATE SKIP LOCKED
    ) due
    WHERE o.id = due.id
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
      WHERE o.id = picked.id
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
  return claim(
    sql`
      SELECT id FROM operations
      WHERE status = 'pending' AND run_at <= now() ${types ? sql`AND type = ANY(${types}::text[])` : sql``}
      ORDER BY run_at, id
      LIMIT ${limit}
      FOR UPDATE SKIP LOCKED`,
    workerId,
    leaseMs,
  );
}

/** Claims the named operations that are still pending, whatever their run_at (the sync backend). */
export function claimOperationsById(ids: readonly string[], workerId: string, leaseMs: number): Sql {
  return claim(
    sql`
      SELECT id FROM operations
      WHERE id = ANY(${ids}::uuid[]) AND status = 'pending'
      ORDER BY id
      FOR UPDATE SKIP LOCKED`,
    workerId,
    leaseMs,
  );
}

/**
 * The shared tail of every statement that moves operations into or out of a terminal state: add
 * the changed rows' deltas to their batches' counters (O(1) per batch, never a sibling scan), let
 * the counters decide the batch's status, and write the outbox events — the operation's own, and
 * the batch's when this change finished it. `changed` must be a CTE returning id, tenant_id,
 * batch_id, type, status, attempts, d_completed, d_failed, d_cancelled.
 *
 * The status rule (kept in step with domain/outcome.ts; a test compares them):
 * terminal exactly when completed + failed + cancelled = child_count; then failed if any failed,
 * else cancelled if any cancelled, else completed. A terminal batch whose counters go back down
 * (a retry) is processing again.
 */
function aggregateAndRecord(eventDelayMs: number): Sql {
  return sql`
    deltas AS (
      SELECT batch_id, sum(d_completed)::int AS dc, sum(d_failed)::int AS df, sum(d_cancelled)::int AS dx
      FROM changed WHERE batch_id IS NOT NULL GROUP BY batch_id
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
            WHEN b.status IN ${TERMINAL_BATCH} THEN 'processing'::batch_status
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
      SELECT c.tenant_id, 'operation.' || c.status, c.id,
        jsonb_build_object('operationId', c.id, 'batchId', c.batch_id, 'type', c.type, 'status', c.status,
          'attempts', c.attempts),
        now() + ${milliseconds(eventDelayMs)}
      FROM changed c
      UNION ALL
      SELECT p.tenant_id, 'batch.' || p.status, p.id,
        jsonb_build_object('batchId', p.id, 'type', p.type, 'status', p.status, 'childCount', p.child_count,
          'completed', p.completed_count, 'failed', p.failed_count, 'cancelled', p.cancelled_count),
        now() + ${milliseconds(eventDelayMs)}
      FROM parent p
      WHERE p.status IN ${TERMINAL_BATCH} AND p.moved > 0
      RETURNING ${OUTBOX_COLUMNS}
    )`;
}

/** The result of a fenced transition: how many rows it changed and the events it wrote. */
export interface TransitionRow {
  changed: number;
  events: OutboxRow[];
}

const TRANSITION_RESULT = sql`
  SELECT (SELECT count(*) FROM changed)::int AS "changed",
         COALESCE((SELECT json_agg(e ORDER BY e.id) FROM events e), '[]'::json) AS "events"`;

const LEASE_HELD = (id: string, workerId: string) =>
  sql`id = ${id}::uuid AND locked_by = ${workerId} AND status = 'processing'`;

/**
 * processing → completed, only while `workerId` still holds the lease; aggregates the batch and
 * writes the events in the same statement.
 */
export function completeOperation(id: string, workerId: string, result: unknown, eventDelayMs: number): Sql {
  return sql`
    WITH changed AS (
      UPDATE operations
      SET status = 'completed', result = ${JSON.stringify(result ?? null)}::jsonb, error = NULL,
          locked_by = NULL, locked_until = NULL, finished_at = now(), updated_at = now()
      WHERE ${LEASE_HELD(id, workerId)}
      RETURNING id, tenant_id, batch_id, type, status, attempts, 1 AS d_completed, 0 AS d_failed, 0 AS d_cancelled
    ), ${aggregateAndRecord(eventDelayMs)}
    ${TRANSITION_RESULT}`;
}

/** processing → failed for good (attempts exhausted or not retryable), fenced like completion. */
export function failOperation(id: string, workerId: string, error: unknown, eventDelayMs: number): Sql {
  return sql`
    WITH changed AS (
      UPDATE operations
      SET status = 'failed', error = ${JSON.stringify(error)}::jsonb,
          locked_by = NULL, locked_until = NULL, finished_at = now(), updated_at = now()
      WHERE ${LEASE_HELD(id, workerId)}
      RETURNING id, tenant_id, batch_id, type, status, attempts, 0 AS d_completed, 1 AS d_failed, 0 AS d_cancelled
    ), ${aggregateAndRecord(eventDelayMs)}
    ${TRANSITION_RESULT}`;
}

/** processing → pending, due again after `delayMs` (a retry; the attempt stays counted). Fenced. */
export function scheduleRetry(id: string, workerId: string, error: unknown, delayMs: number): Sql {
  return sql`
    UPDATE operations
    SET status = 'pending', error = ${JSON.stringify(error)}::jsonb, run_at = now() + ${milliseconds(delayMs)},
        locked_by = NULL, locked_until = NULL, updated_at = now()
    WHERE ${LEASE_HELD(id, workerId)}`;
}

/** Wakes listening workers after a commit (the `worker` task backend). */
export function notify(channel: string, payload: string): Sql {
  return sql`SELECT pg_notify(${channel}, ${payload})::text AS "notified"`;
}
