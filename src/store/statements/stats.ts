// Queue depth as operators size worker pools by: operations only (a batch is never work), split
// into claimable, scheduled and running; batches in flight; each subscriber's undelivered and dead.
import type { Tables } from "../tables";
import { owedTo } from "./outbox";
import { sql, type Sql } from "./shared";

/** Work waiting and running, per type and tenant — operations only, never a batch. */
export function operationStats(t: Tables): Sql {
  return sql`
    SELECT type, tenant_id AS "tenantId",
           count(*) FILTER (WHERE status = 'pending' AND run_at <= now())::int AS "claimable",
           count(*) FILTER (WHERE status = 'pending' AND run_at > now())::int AS "scheduled",
           count(*) FILTER (WHERE status = 'processing')::int AS "processing",
           COALESCE(extract(epoch FROM now() - min(run_at) FILTER (WHERE status = 'pending' AND run_at <= now())), 0)::float8
             AS "oldestClaimableAgeSeconds"
    FROM ${t.operations}
    WHERE status IN ('pending', 'processing')
    GROUP BY type, tenant_id`;
}

/** Batches not yet terminal, per type and tenant. */
export function batchStats(t: Tables): Sql {
  return sql`
    SELECT type, tenant_id AS "tenantId", count(*)::int AS "inFlight"
    FROM ${t.batches} WHERE status IN ('pending', 'processing')
    GROUP BY type, tenant_id`;
}

/** Each registered subscriber's undelivered (owed: rows and holds) and dead deliveries (0 for one with none). */
export function deliveryStats(t: Tables): Sql {
  return sql`
    SELECT s.name AS "subscriber", COALESCE(o.backlog, 0)::int AS "backlog",
           (SELECT count(*) FROM ${t.deliveries} d WHERE d.subscriber = s.name AND d.dead_at IS NOT NULL)::int AS "dead",
           COALESCE(extract(epoch FROM now() - o.oldest), 0)::float8 AS "oldestUndeliveredAgeSeconds"
    FROM ${t.subscribers} s
    LEFT JOIN LATERAL (
      SELECT count(*) AS backlog, min(e.created_at) AS oldest
      FROM (${owedTo(t, sql`s.name`)}) w JOIN ${t.outbox} e ON e.id = w.event_id) o ON true
    ORDER BY s.name`;
}
