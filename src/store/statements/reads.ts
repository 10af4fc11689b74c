// Reads: a batch with its progress, an operation, pages of either, and lookups by idempotency key.
// Each is one statement, so what it returns comes from one snapshot.
import type { Tables } from "../tables";
import { raw, sql, type Sql } from "./shared";

export const OPERATION_COLUMNS =
  raw(`o.id::text AS "id", o.tenant_id AS "tenantId", o.batch_id::text AS "batchId",
  o.type, o.status::text AS "status", o.payload, o.result, o.error, o.attempts, o.max_attempts AS "maxAttempts",
  o.run_at AS "runAt", o.locked_by AS "lockedBy", o.locked_until AS "lockedUntil",
  o.idempotency_key AS "idempotencyKey", o.cancel_requested_at AS "cancelRequestedAt",
  o.created_at AS "createdAt", o.updated_at AS "updatedAt", o.started_at AS "startedAt",
  o.finished_at AS "finishedAt"`);

/** Batch columns, and its running children (counted: the batch row keeps only terminal counters). */
function batchColumns(t: Tables): Sql {
  return sql`b.id::text AS "id", b.tenant_id AS "tenantId", b.type, b.status::text AS "status",
    b.failure_policy::text AS "failurePolicy", b.child_count AS "childCount", b.completed_count AS "completedCount",
    b.failed_count AS "failedCount", b.cancelled_count AS "cancelledCount", b.episode, b.metadata,
    b.idempotency_key AS "idempotencyKey", b.error, b.created_at AS "createdAt", b.updated_at AS "updatedAt",
    b.started_at AS "startedAt", b.finished_at AS "finishedAt",
    (SELECT count(*) FROM ${t.operations} r WHERE r.batch_id = b.id AND r.status = 'processing')::int AS "processing"`;
}

export function readBatch(t: Tables, tenantId: string, id: string): Sql {
  return sql`SELECT ${batchColumns(t)} FROM ${t.batches} b WHERE b.id = ${id}::uuid AND b.tenant_id = ${tenantId}`;
}

export function readOperation(t: Tables, tenantId: string, id: string): Sql {
  return sql`SELECT ${OPERATION_COLUMNS} FROM ${t.operations} o WHERE o.id = ${id}::uuid AND o.tenant_id = ${tenantId}`;
}

export function batchByKey(t: Tables, tenantId: string, idempotencyKey: string): Sql {
  return sql`SELECT ${batchColumns(t)} FROM ${t.batches} b
    WHERE b.tenant_id = ${tenantId} AND b.idempotency_key = ${idempotencyKey}`;
}

export function operationByKey(t: Tables, tenantId: string, idempotencyKey: string): Sql {
  return sql`SELECT ${OPERATION_COLUMNS} FROM ${t.operations} o
    WHERE o.tenant_id = ${tenantId} AND o.idempotency_key = ${idempotencyKey}`;
}

/** A batch's children's ids in submission order; `status` narrows them. */
export function childIds(t: Tables, batchId: string, status?: "pending"): Sql {
  return sql`SELECT id::text AS "id" FROM ${t.operations}
    WHERE batch_id = ${batchId}::uuid ${status ? sql`AND status = ${status}::text::${t.operationStatus}` : sql``}
    ORDER BY id`;
}

/** Filters of a page of operations or batches, newest first. */
export interface ListFilter {
  tenantId: string;
  statuses?: readonly string[];
  type?: string;
  batchId?: string;
  /** Only rows with a smaller id (ids are UUIDv7: older). */
  beforeId?: string;
  limit: number;
}

function listWhere(alias: "o" | "b", filter: ListFilter): Sql {
  const a = raw(alias);
  const clauses = [sql`${a}.tenant_id = ${filter.tenantId}`];
  if (filter.statuses) clauses.push(sql`${a}.status::text = ANY(${[...filter.statuses]}::text[])`);
  if (filter.type !== undefined) clauses.push(sql`${a}.type = ${filter.type}`);
  if (filter.beforeId !== undefined) clauses.push(sql`${a}.id < ${filter.beforeId}::uuid`);
  if (alias === "o" && filter.batchId !== undefined) clauses.push(sql`o.batch_id = ${filter.batchId}::uuid`);
  return clauses.reduce((all, clause) => sql`${all} AND ${clause}`);
}

export function listOperations(t: Tables, filter: ListFilter): Sql {
  return sql`SELECT ${OPERATION_COLUMNS} FROM ${t.operations} o WHERE ${listWhere("o", filter)}
    ORDER BY o.id DESC LIMIT ${filter.limit}`;
}

export function listBatches(t: Tables, filter: ListFilter): Sql {
  return sql`SELECT ${batchColumns(t)} FROM ${t.batches} b WHERE ${listWhere("b", filter)}
    ORDER BY b.id DESC LIMIT ${filter.limit}`;
}

/**
 * Reads nothing, but fails when the module's tables are not where its statements look (or the
 * database is away), or its newest migration is not applied: it looks up, without calling it, the
 * function that migration adds (a worker of this version on a database migrated by the one before
 * would otherwise start, and fail only at its reaper's first pass).
 */
export function probe(t: Tables): Sql {
  return sql`SELECT (SELECT 1 FROM ${t.operations} LIMIT 0) IS NULL AS "tables",
    ${`${t.failFastSiblings.text}(uuid[])`}::text::regprocedure IS NOT NULL AS "newest"`;
}

/** Which database, and which operations table in it (null when there is none), a connection reaches. */
export function identity(t: Tables): Sql {
  return sql`SELECT current_database() AS "database", to_regclass(${t.operations.text}::text)::oid::text AS "operationsTable"`;
}

/** Rows running now per type and tenant, for the given types (those with concurrency limits). */
export function runningOf(t: Tables, types: readonly string[]): Sql {
  return sql`SELECT o.type, o.tenant_id AS "tenantId", count(*)::int AS "running" FROM ${t.operations} o
    WHERE o.status = 'processing' AND o.type = ANY(${[...types]}::text[])
    GROUP BY o.type, o.tenant_id`;
}
