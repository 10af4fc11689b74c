// Submits: a whole batch — parent, children and its event — in one statement, and a standalone
// operation the same way.
import type { BatchPlan, OperationPlan } from "../../submit/plan";
import type { Tables } from "../tables";
import { recordEvents, WRITTEN_EVENTS, type Inline } from "./outbox";
import { dueAt, raw, sql, wakeQueue, type Sql } from "./shared";

/** What a submit statement returns: the inserted row (null when the idempotency key was taken) and its events. */
export interface InsertedRow {
  inserted: Record<string, unknown> | null;
  events: unknown[];
}

/**
 * The whole submit of a batch in one statement: the parent, every child (one multi-row insert by
 * unnest, whatever the count) and the `batch.submitted` event. With an idempotency key the parent
 * is inserted ON CONFLICT DO NOTHING: a concurrent submit with the same key waits for the first to
 * commit and then inserts nothing at all (children and event hang on the parent's RETURNING), so
 * neither a lock nor a retry is needed.
 */
export function insertBatch(t: Tables, batch: BatchPlan, inline: Inline): Sql {
  const onConflict =
    batch.idempotencyKey === undefined ? sql`` : sql`ON CONFLICT (tenant_id, idempotency_key) DO NOTHING`;
  return sql`
    WITH parent AS (
      INSERT INTO ${t.batches} (id, tenant_id, type, failure_policy, child_count, metadata, idempotency_key)
      VALUES (${batch.id}::uuid, ${batch.tenantId}, ${batch.type}, ${batch.failurePolicy}::text::${t.failurePolicy},
              ${batch.children.length}, ${batch.metadataJson ?? null}::jsonb, ${batch.idempotencyKey ?? null})
      ${onConflict}
      RETURNING *
    ), children AS (
      INSERT INTO ${t.operations} (id, tenant_id, batch_id, type, payload, max_attempts, run_at)
      SELECT c.id, p.tenant_id, p.id, p.type, c.payload, ${batch.maxAttempts},
             COALESCE(${batch.runAt ?? null}::timestamptz, ${dueAt()})
      FROM parent p, unnest(${batch.children.map((child) => child.id)}::uuid[],
                            ${batch.children.map((child) => child.payloadJson)}::jsonb[]) AS c(id, payload)
      RETURNING 1
    ), ${recordEvents(
      t,
      sql`SELECT p.tenant_id, 'batch.submitted', p.id,
                 jsonb_build_object('batchId', p.id, 'type', p.type, 'childCount', p.child_count)
          FROM parent p`,
      inline,
    )}
    SELECT (SELECT row_to_json(p) FROM parent p) AS "inserted",
           ${WRITTEN_EVENTS} AS "events",
           (SELECT count(*) FROM children)::int AS "children",
           (SELECT count(${wakeQueue(raw("p.type"), raw("p.tenant_id"))}) FROM parent p)::int AS "woke"`;
}

/** A standalone operation and its `operation.submitted` event in one statement; idempotent as above. */
export function insertOperation(t: Tables, operation: OperationPlan, inline: Inline): Sql {
  const onConflict =
    operation.idempotencyKey === undefined
      ? sql``
      : sql`ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING`;
  return sql`
    WITH inserted AS (
      INSERT INTO ${t.operations} (id, tenant_id, type, payload, max_attempts, run_at, idempotency_key)
      VALUES (${operation.id}::uuid, ${operation.tenantId}, ${operation.type}, ${operation.payloadJson}::jsonb,
              ${operation.maxAttempts}, COALESCE(${operation.runAt ?? null}::timestamptz, ${dueAt()}),
              ${operation.idempotencyKey ?? null})
      ${onConflict}
      RETURNING *
    ), ${recordEvents(
      t,
      sql`SELECT o.tenant_id, 'operation.submitted', o.id,
                 jsonb_build_object('operationId', o.id, 'batchId', NULL, 'type', o.type)
          FROM inserted o`,
      inline,
    )}
    SELECT (SELECT row_to_json(o) FROM inserted o) AS "inserted", ${WRITTEN_EVENTS} AS "events",
           (SELECT count(${wakeQueue(raw("o.type"), raw("o.tenant_id"))}) FROM inserted o)::int AS "woke"`;
}
