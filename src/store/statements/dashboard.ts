// What the operations dashboard reads: queues per type and tenant with the last hour's outcomes,
// throughput per minute, each subscriber's backlog, batches with what their unfinished children
// are waiting for, a batch's children, an operation, the events about either with each
// subscriber's delivery state, and dead deliveries. Read-only, each one statement (one snapshot),
// and every one restricted to the operator's tenants in its WHERE clause.
import type { BatchStatus, FailurePolicy } from "../../domain/status";
import type { Tables } from "../tables";
import type { WaitingBatch } from "../../domain/waiting";
import type { BatchRow, OperationView } from "../views";
import { owedTo, WANTS_TOPIC } from "./outbox";
import { OPERATION_COLUMNS } from "./reads";
import { raw, sql, type Sql } from "./shared";

/** The tenants an operator may see; null for all of them. */
export type TenantScope = readonly string[] | null;

/** `column` belongs to a tenant in `scope`. */
function inScope(column: string, scope: TenantScope): Sql {
  return scope === null ? sql`true` : sql`${raw(column)} = ANY(${[...scope]}::text[])`;
}

/** The database's clock, for the waiting rules (leases, run_at and backoff are on it). */
export function databaseNow(): Sql {
  return sql`SELECT now() AS "now"`;
}

/** A queue (type and tenant) as the overview shows it. */
export interface QueueRow {
  type: string;
  tenantId: string;
  claimable: number;
  scheduled: number;
  processing: number;
  oldestClaimableAgeSeconds: number;
  completedLastHour: number;
  failedLastHour: number;
  cancelledLastHour: number;
  batchesInFlight: number;
}

/** Per type and tenant: work waiting and running, outcomes of the last hour, batches in flight. */
export function queues(t: Tables, scope: TenantScope): Sql {
  return sql`
    WITH open AS (
      SELECT type, tenant_id,
             count(*) FILTER (WHERE status = 'pending' AND run_at <= now())::int AS claimable,
             count(*) FILTER (WHERE status = 'pending' AND run_at > now())::int AS scheduled,
             count(*) FILTER (WHERE status = 'processing')::int AS processing,
             COALESCE(extract(epoch FROM now() - min(run_at) FILTER (WHERE status = 'pending' AND run_at <= now())), 0)::float8
               AS oldest
      FROM ${t.operations}
      WHERE status IN ('pending', 'processing') AND ${inScope("tenant_id", scope)}
      GROUP BY type, tenant_id
    ), recent AS (
      SELECT type, tenant_id,
             count(*) FILTER (WHERE status = 'completed')::int AS completed,
             count(*) FILTER (WHERE status = 'failed')::int AS failed,
             count(*) FILTER (WHERE status = 'cancelled')::int AS cancelled
      FROM ${t.operations}
      WHERE finished_at IS NOT NULL AND finished_at >= now() - interval '1 hour' AND ${inScope("tenant_id", scope)}
      GROUP BY type, tenant_id
    ), flight AS (
      SELECT type, tenant_id, count(*)::int AS in_flight FROM ${t.batches}
      WHERE status IN ('pending', 'processing') AND ${inScope("tenant_id", scope)}
      GROUP BY type, tenant_id
    )
    SELECT type, tenant_id AS "tenantId",
           COALESCE(open.claimable, 0) AS "claimable", COALESCE(open.scheduled, 0) AS "scheduled",
           COALESCE(open.processing, 0) AS "processing", COALESCE(open.oldest, 0) AS "oldestClaimableAgeSeconds",
           COALESCE(recent.completed, 0) AS "completedLastHour", COALESCE(recent.failed, 0) AS "failedLastHour",
           COALESCE(recent.cancelled, 0) AS "cancelledLastHour", COALESCE(flight.in_flight, 0) AS "batchesInFlight"
    FROM open FULL JOIN recent USING (type, tenant_id) FULL JOIN flight USING (type, tenant_id)
    ORDER BY type, tenant_id`;
}

/** One minute of finished operations. */
export interface ThroughputRow {
  minute: Date;
  completed: number;
  failed: number;
  cancelled: number;
}

/** Operations finished in each of the last 60 minutes (the current one last), zeros included. */
export function throughput(t: Tables, scope: TenantScope, type: string | undefined): Sql {
  return sql`
    WITH done AS (
      SELECT date_trunc('minute', finished_at) AS minute,
             count(*) FILTER (WHERE status = 'completed')::int AS completed,
             count(*) FILTER (WHERE status = 'failed')::int AS failed,
             count(*) FILTER (WHERE status = 'cancelled')::int AS cancelled
      FROM ${t.operations}
      WHERE finished_at IS NOT NULL AND finished_at >= date_trunc('minute', now()) - interval '59 minutes'
        AND ${inScope("tenant_id", scope)} ${type === undefined ? sql`` : sql`AND type = ${type}`}
      GROUP BY 1
    )
    SELECT g.minute AS "minute", COALESCE(d.completed, 0) AS "completed", COALESCE(d.failed, 0) AS "failed",
           COALESCE(d.cancelled, 0) AS "cancelled"
    FROM generate_series(date_trunc('minute', now()) - interval '59 minutes', date_trunc('minute', now()),
                         interval '1 minute') AS g(minute)
    LEFT JOIN done d ON d.minute = g.minute
    ORDER BY g.minute`;
}

/** A subscriber's deliveries owed and dead, among the events of the operator's tenants. */
export interface SubscriberRow {
  subscriber: string;
  topics: string[];
  seenAt: Date;
  backlog: number;
  dead: number;
  oldestUndeliveredAgeSeconds: number;
}

export function subscribers(t: Tables, scope: TenantScope): Sql {
  return sql`
    SELECT s.name AS "subscriber", COALESCE(s.topics, '{}') AS "topics", s.seen_at AS "seenAt",
           COALESCE(o.backlog, 0)::int AS "backlog", COALESCE(x.dead, 0)::int AS "dead",
           COALESCE(extract(epoch FROM now() - o.oldest), 0)::float8 AS "oldestUndeliveredAgeSeconds"
    FROM ${t.subscribers} s
    LEFT JOIN LATERAL (
      SELECT count(*) AS backlog, min(e.created_at) AS oldest
      FROM (${owedTo(t, sql`s.name`)}) w JOIN ${t.outbox} e ON e.id = w.event_id
      WHERE ${inScope("e.tenant_id", scope)}) o ON true
    LEFT JOIN LATERAL (
      SELECT count(*) AS dead
      FROM ${t.deliveries} d JOIN ${t.outbox} e ON e.id = d.event_id
      WHERE d.subscriber = s.name AND d.dead_at IS NOT NULL AND ${inScope("e.tenant_id", scope)}) x ON true
    ORDER BY s.name`;
}

/** A batch row with what its unfinished children wait for (see `batchWithWaiting`). */
export type BatchWaitingRow = Omit<BatchRow, "processing"> &
  Omit<WaitingBatch, "type" | "tenantId" | "status">;

/** An operation without its payload and result: a row of a list. */
export type OperationSummaryRow = Omit<OperationView, "payload" | "result" | "idempotencyKey">;

/** An operation with everything, and the fields of its batch the waiting rules need. */
export interface OperationDetailRow extends OperationView {
  batchFailurePolicy: FailurePolicy | null;
  batchFailedCount: number | null;
  batchStatus: BatchStatus | null;
  batchCancelledAt: Date | null;
}

/**
 * Columns of a batch row (`b`) and what its unfinished children are waiting for. Counted only for
 * a batch in flight (the condition on `b` gates the scan of its children). `cancelledAt`: every
 * unfinished child is running and was asked to cancel — the batch is being cancelled — unless a
 * failure in a fail_fast batch asked them.
 */
function batchWithWaiting(t: Tables): Sql {
  return sql`b.id::text AS "id", b.tenant_id AS "tenantId", b.type, b.status::text AS "status",
    b.failure_policy::text AS "failurePolicy", b.child_count AS "childCount",
    b.completed_count AS "completedCount", b.failed_count AS "failedCount", b.cancelled_count AS "cancelledCount",
    b.episode, b.metadata, b.idempotency_key AS "idempotencyKey", b.error,
    b.created_at AS "createdAt", b.updated_at AS "updatedAt", b.started_at AS "startedAt", b.finished_at AS "finishedAt",
    COALESCE(k.due, 0)::int AS "due", k.oldest_due_at AS "oldestDueAt",
    COALESCE(k.scheduled, 0)::int AS "scheduled", k.next_run_at AS "nextRunAt",
    COALESCE(k.running, 0)::int AS "running", COALESCE(k.cancel_requested, 0)::int AS "cancelRequested",
    COALESCE(k.lease_expired, 0)::int AS "leaseExpired",
    CASE WHEN k.due + k.scheduled = 0 AND k.running + k.lease_expired > 0
              AND k.cancel_requested = k.running + k.lease_expired
              AND NOT (b.failure_policy = 'fail_fast' AND b.failed_count > 0)
         THEN k.last_cancel_request END AS "cancelledAt"
    FROM ${t.batches} b
    LEFT JOIN LATERAL (
      SELECT count(*) FILTER (WHERE c.status = 'pending' AND c.run_at <= now()) AS due,
             min(c.run_at) FILTER (WHERE c.status = 'pending' AND c.run_at <= now()) AS oldest_due_at,
             count(*) FILTER (WHERE c.status = 'pending' AND c.run_at > now()) AS scheduled,
             min(c.run_at) FILTER (WHERE c.status = 'pending' AND c.run_at > now()) AS next_run_at,
             count(*) FILTER (WHERE c.status = 'processing' AND c.locked_until >= now()) AS running,
             count(*) FILTER (WHERE c.status = 'processing' AND c.cancel_requested_at IS NOT NULL) AS cancel_requested,
             count(*) FILTER (WHERE c.status = 'processing' AND c.locked_until < now()) AS lease_expired,
             max(c.cancel_requested_at) AS last_cancel_request
      FROM ${t.operations} c
      WHERE c.batch_id = b.id AND b.status IN ('pending', 'processing') AND c.status IN ('pending', 'processing')
    ) k ON true`;
}

/** Filters of the batch list. */
export interface BatchListFilter {
  tenantId?: string;
  type?: string;
  statuses?: readonly string[];
  /** Only batches with a smaller id (older: ids are UUIDv7). */
  beforeId?: string;
  limit: number;
}

/** Batches of the operator's tenants, newest first, with what they wait for. */
export function listBatches(t: Tables, scope: TenantScope, filter: BatchListFilter): Sql {
  const where = [inScope("b.tenant_id", scope)];
  if (filter.tenantId !== undefined) where.push(sql`b.tenant_id = ${filter.tenantId}`);
  if (filter.type !== undefined) where.push(sql`b.type = ${filter.type}`);
  if (filter.statuses?.length) where.push(sql`b.status::text = ANY(${[...filter.statuses]}::text[])`);
  if (filter.beforeId !== undefined) where.push(sql`b.id < ${filter.beforeId}::uuid`);
  return sql`SELECT ${batchWithWaiting(t)}
    WHERE ${where.reduce((all, clause) => sql`${all} AND ${clause}`)}
    ORDER BY b.id DESC LIMIT ${filter.limit}`;
}

/** One batch of the operator's tenants, with what it waits for. */
export function batchById(t: Tables, scope: TenantScope, id: string): Sql {
  return sql`SELECT ${batchWithWaiting(t)} WHERE b.id = ${id}::uuid AND ${inScope("b.tenant_id", scope)}`;
}

/** Operation columns without payload and result (a page of children can be large). */
const CHILD_COLUMNS = raw(`o.id::text AS "id", o.tenant_id AS "tenantId", o.batch_id::text AS "batchId",
  o.type, o.status::text AS "status", o.error, o.attempts, o.max_attempts AS "maxAttempts",
  o.run_at AS "runAt", o.locked_by AS "lockedBy", o.locked_until AS "lockedUntil",
  o.cancel_requested_at AS "cancelRequestedAt", o.created_at AS "createdAt", o.updated_at AS "updatedAt",
  o.started_at AS "startedAt", o.finished_at AS "finishedAt"`);

/** A page of a batch's children in submission order, optionally of some statuses. */
export function batchChildren(
  t: Tables,
  scope: TenantScope,
  batchId: string,
  page: { afterId?: string; statuses?: readonly string[]; limit: number },
): Sql {
  return sql`SELECT ${CHILD_COLUMNS} FROM ${t.operations} o
    WHERE o.batch_id = ${batchId}::uuid AND ${inScope("o.tenant_id", scope)}
      ${page.statuses?.length ? sql`AND o.status::text = ANY(${[...page.statuses]}::text[])` : sql``}
      ${page.afterId === undefined ? sql`` : sql`AND o.id > ${page.afterId}::uuid`}
    ORDER BY o.id LIMIT ${page.limit}`;
}

/** Filters of a standalone operation list. */
export interface OperationListFilter {
  tenantId?: string;
  type?: string;
  statuses?: readonly string[];
  beforeId?: string;
  limit: number;
}

/** Standalone operations (not children of a batch), newest first. */
export function listStandalone(t: Tables, scope: TenantScope, filter: OperationListFilter): Sql {
  const where = [sql`o.batch_id IS NULL`, inScope("o.tenant_id", scope)];
  if (filter.tenantId !== undefined) where.push(sql`o.tenant_id = ${filter.tenantId}`);
  if (filter.type !== undefined) where.push(sql`o.type = ${filter.type}`);
  if (filter.statuses?.length) where.push(sql`o.status::text = ANY(${[...filter.statuses]}::text[])`);
  if (filter.beforeId !== undefined) where.push(sql`o.id < ${filter.beforeId}::uuid`);
  return sql`SELECT ${CHILD_COLUMNS} FROM ${t.operations} o
    WHERE ${where.reduce((all, clause) => sql`${all} AND ${clause}`)}
    ORDER BY o.id DESC LIMIT ${filter.limit}`;
}

/** One operation of the operator's tenants, with the fields of its batch the waiting rules need. */
export function operationById(t: Tables, scope: TenantScope, id: string): Sql {
  return sql`
    SELECT ${OPERATION_COLUMNS}, bw."failurePolicy" AS "batchFailurePolicy", bw."failedCount" AS "batchFailedCount",
           bw."status" AS "batchStatus", bw."cancelledAt" AS "batchCancelledAt"
    FROM ${t.operations} o
    LEFT JOIN LATERAL (SELECT ${batchWithWaiting(t)} WHERE b.id = o.batch_id) bw ON true
    WHERE o.id = ${id}::uuid AND ${inScope("o.tenant_id", scope)}`;
}

/** An event with each subscriber's delivery state. */
export interface EventRow {
  id: string;
  tenantId: string;
  topic: string;
  aggregateId: string;
  payload: unknown;
  createdAt: Date;
  deliveries: {
    subscriber: string;
    /**
     * `row`: a delivery row (owed to the relays, delivered by one, or dead); `held`: being
     * delivered by the process that wrote the event (until `availableAt`, then by a relay);
     * `inline`: delivered by that process right after its commit, which keeps no row — told by
     * the absence of both for a subscriber registered, with its current topics that want it,
     * before the event was written.
     */
    kind: "row" | "held" | "inline";
    attempts: number;
    availableAt: string;
    deliveredAt: string | null;
    deadAt: string | null;
    lastError: string | null;
  }[];
}

/** The events about one batch or operation, in order, each with its deliveries. */
export function eventsAbout(t: Tables, scope: TenantScope, aggregateId: string, limit: number): Sql {
  const rowOf = sql`SELECT 1 FROM ${t.deliveries} d WHERE d.event_id = e.id AND d.subscriber = s.name`;
  const holdOf = sql`SELECT 1 FROM ${t.holds} h WHERE h.subscriber = s.name AND e.id = ANY(h.event_ids)`;
  return sql`
    SELECT e.id::text AS "id", e.tenant_id AS "tenantId", e.topic, e.aggregate_id::text AS "aggregateId",
           e.payload, e.created_at AS "createdAt",
           COALESCE((
             SELECT json_agg(json_build_object('subscriber', x.subscriber, 'kind', x.kind, 'attempts', x.attempts,
                      'availableAt', x.available_at, 'deliveredAt', x.delivered_at, 'deadAt', x.dead_at,
                      'lastError', x.last_error) ORDER BY x.subscriber)
             FROM (
               SELECT d.subscriber, 'row' AS kind, d.attempts, d.available_at, d.delivered_at, d.dead_at, d.last_error
               FROM ${t.deliveries} d WHERE d.event_id = e.id
               UNION ALL
               SELECT h.subscriber, 'held', 0, h.held_until, NULL, NULL, NULL
               FROM ${t.holds} h WHERE e.id = ANY(h.event_ids)
               UNION ALL
               SELECT s.name, 'inline', 1, e.created_at, NULL, NULL, NULL
               FROM ${t.subscribers} s
               WHERE s.registered_at < e.created_at
                 AND ${WANTS_TOPIC}
                 AND NOT EXISTS (${rowOf}) AND NOT EXISTS (${holdOf})
             ) x), '[]'::json) AS "deliveries"
    FROM ${t.outbox} e
    WHERE e.aggregate_id = ${aggregateId}::uuid AND ${inScope("e.tenant_id", scope)}
    ORDER BY e.id LIMIT ${limit}`;
}

/** A dead delivery, with its event. */
export interface DeadDeliveryRow {
  eventId: string;
  subscriber: string;
  tenantId: string;
  topic: string;
  aggregateId: string;
  attempts: number;
  lastError: string | null;
  deadAt: Date;
  createdAt: Date;
}

/** Dead deliveries of the operator's tenants, the most recent event first. */
export function deadDeliveries(
  t: Tables,
  scope: TenantScope,
  filter: {
    subscriber?: string;
    tenantId?: string;
    before?: { eventId: string; subscriber: string };
    limit: number;
  },
): Sql {
  return sql`
    SELECT d.event_id::text AS "eventId", d.subscriber, e.tenant_id AS "tenantId", e.topic,
           e.aggregate_id::text AS "aggregateId", d.attempts, d.last_error AS "lastError", d.dead_at AS "deadAt",
           e.created_at AS "createdAt"
    FROM ${t.deliveries} d JOIN ${t.outbox} e ON e.id = d.event_id
    WHERE d.dead_at IS NOT NULL AND ${inScope("e.tenant_id", scope)}
      ${filter.subscriber === undefined ? sql`` : sql`AND d.subscriber = ${filter.subscriber}`}
      ${filter.tenantId === undefined ? sql`` : sql`AND e.tenant_id = ${filter.tenantId}`}
      ${filter.before === undefined ? sql`` : sql`AND (d.event_id, d.subscriber) < (${filter.before.eventId}::bigint, ${filter.before.subscriber})`}
    ORDER BY d.event_id DESC, d.subscriber DESC LIMIT ${filter.limit}`;
}
