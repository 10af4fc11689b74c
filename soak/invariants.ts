// The invariants the soak checks once the system has settled, each against the database and the
// recorded deliveries (soak_runs, soak_deliveries). Returns one line per violated invariant.
import type { Pool } from "pg";

/** What the submitter knows that the database cannot tell: keys it used, submits it rolled back. */
export interface Known {
  settled: boolean;
  /** Per idempotency key, the `tenant/batchId` each submit with it returned. */
  keyed: Map<string, Set<string>>;
  /** Batch ids returned inside transactions that were then rolled back. */
  rolledBack: string[];
}

export async function checkInvariants(db: Pool, known: Known): Promise<string[]> {
  const violations: string[] = [];
  const expectNone = async (what: string, sql: string, params: unknown[] = []) => {
    const { rows } = await db.query(sql, params);
    if (rows.length) violations.push(`${what}: ${rows.length} (e.g. ${JSON.stringify(rows.slice(0, 3))})`);
  };
  if (!known.settled)
    violations.push("the system did not settle: work or events still pending, and no progress for 60 s");

  // Every batch is terminal iff all its children are, with the outcome the rules give, and its
  // counters equal the real child counts.
  await expectNone(
    "batch whose counters differ from its children",
    `SELECT b.id, b.completed_count, b.failed_count, b.cancelled_count, a.*
     FROM operation_batches b CROSS JOIN LATERAL (
       SELECT count(*) FILTER (WHERE status = 'completed')::int AS completed,
              count(*) FILTER (WHERE status = 'failed')::int AS failed,
              count(*) FILTER (WHERE status = 'cancelled')::int AS cancelled,
              count(*) FILTER (WHERE status IN ('pending', 'processing'))::int AS active,
              count(*)::int AS children
       FROM operations o WHERE o.batch_id = b.id) a
     WHERE (b.completed_count, b.failed_count, b.cancelled_count) <> (a.completed, a.failed, a.cancelled)`,
  );
  await expectNone(
    "batch terminal while a child is not, or not terminal while all are",
    `SELECT b.id, b.status FROM operation_batches b
     WHERE (b.status IN ('completed', 'failed', 'cancelled'))
        <> NOT EXISTS (SELECT 1 FROM operations o WHERE o.batch_id = b.id AND o.status IN ('pending', 'processing'))`,
  );
  await expectNone(
    "batch whose status is not the outcome of its children",
    `SELECT b.id, b.status FROM operation_batches b
     WHERE b.status IN ('completed', 'failed', 'cancelled') AND b.status::text <> (
       SELECT CASE WHEN bool_or(o.status = 'failed') THEN 'failed'
                   WHEN bool_or(o.status = 'cancelled') THEN 'cancelled' ELSE 'completed' END
       FROM operations o WHERE o.batch_id = b.id)`,
  );
  // No parent without (all of) its children; no processing row with an expired lease.
  await expectNone(
    "batch with fewer or more children than child_count",
    `SELECT b.id, b.child_count FROM operation_batches b
     WHERE b.child_count <> (SELECT count(*) FROM operations o WHERE o.batch_id = b.id)`,
  );
  await expectNone(
    "operation processing with an expired lease",
    `SELECT id, locked_by FROM operations WHERE status = 'processing' AND locked_until < now()`,
  );
  // Delivery, per subscriber: every event (pruned ones too) was received at least once by each
  // subscriber registered before it was written that wants its topic — whether its process
  // delivered it inline (a hold, settled, no row kept) or a relay did (a delivery row) — and by no
  // other; nothing is left owed, held or dead (the subscribers only hiccup or dawdle); a row marked
  // delivered was really received. (registered_at is fixed just after a registration commits, so
  // an event written in between was owed yet reads as written before it: the soak's nodes all
  // register before any write, and a restart with the same topics leaves the time as it was.)
  const wants = `(s.topics IS NULL OR cardinality(s.topics) = 0 OR e.topic = ANY(s.topics))`;
  await expectNone(
    "event a subscriber that wants it never received",
    `SELECT e.id, e.topic, s.name FROM soak_all_events e
     JOIN operation_subscribers s ON s.registered_at < e.created_at AND ${wants}
     WHERE NOT EXISTS (SELECT 1 FROM soak_deliveries r WHERE r.event_id = e.id AND r.subscriber = s.name)`,
  );
  await expectNone(
    "delivery row for a subscriber that does not want the topic",
    `SELECT d.event_id, d.subscriber FROM operation_deliveries d
     JOIN operation_outbox e ON e.id = d.event_id JOIN operation_subscribers s ON s.name = d.subscriber
     WHERE NOT ${wants}`,
  );
  await expectNone(
    "delivery never completed",
    `SELECT event_id, subscriber, attempts, dead_at, last_error FROM operation_deliveries WHERE delivered_at IS NULL`,
  );
  await expectNone(
    "held delivery never settled nor taken over",
    `SELECT id, subscriber, event_ids, held_until FROM operation_delivery_holds`,
  );
  await expectNone(
    "delivery recorded as done that its subscriber never received",
    `SELECT d.event_id, d.subscriber FROM operation_deliveries d
     WHERE d.delivered_at IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM soak_deliveries r WHERE r.event_id = d.event_id AND r.subscriber = d.subscriber)`,
  );
  await expectNone(
    "delivery of an event that was never written, or to a subscriber it was not owed to",
    `SELECT r.event_id, r.subscriber FROM soak_deliveries r
     WHERE NOT EXISTS (
       SELECT 1 FROM soak_all_events e JOIN operation_subscribers s ON s.name = r.subscriber
       WHERE e.id = r.event_id AND s.registered_at < e.created_at AND ${wants})`,
  );
  // Every terminal operation has the event of its final state, written after its last re-queue.
  await expectNone(
    "terminal operation without its operation.<status> event",
    `SELECT o.id, o.status FROM operations o
     WHERE o.status IN ('completed', 'failed', 'cancelled')
       AND NOT EXISTS (
         SELECT 1 FROM soak_all_events e
         WHERE e.aggregate_id = o.id AND e.topic = 'operation.' || o.status
           AND e.id > COALESCE((SELECT max(r.id) FROM soak_all_events r
                                WHERE r.topic = 'operation.retried' AND r.aggregate_id = o.id), 0))`,
  );
  // Exactly one batch.* terminal event per episode: a batch starts in episode 1, and each retry that
  // re-opens it after it finished starts the next; every terminal event names its episode. (Event
  // ids are not commit order — two transactions take ids, then wait for the batch row in turn — so
  // the episode number, written under the batch row's lock, is what the check goes by.)
  const { rows: episodes } = await db.query(`
    SELECT b.id, b.status::text AS status, b.episode,
           COALESCE(array_agg((e.payload->>'episode')::int ORDER BY e.id) FILTER (WHERE e.id IS NOT NULL), '{}') AS ends
    FROM operation_batches b
    LEFT JOIN soak_all_events e ON e.aggregate_id = b.id AND e.topic IN ('batch.completed', 'batch.failed', 'batch.cancelled')
    GROUP BY b.id, b.status, b.episode`);
  const badEpisodes = episodes.filter((batch: { status: string; episode: number; ends: number[] }) => {
    const finished = ["completed", "failed", "cancelled"].includes(batch.status)
      ? batch.episode
      : batch.episode - 1;
    const expected = Array.from({ length: finished }, (_, i) => i + 1).join(",");
    return [...batch.ends].sort((a, b) => a - b).join(",") !== expected;
  });
  if (badEpisodes.length) {
    violations.push(
      `batch whose terminal events do not match its episodes: ${badEpisodes.length} (e.g. ${JSON.stringify(
        badEpisodes.slice(0, 3),
      )})`,
    );
  }
  // No event for a rolled-back submit.
  await expectNone(
    "event or row of a rolled-back submit",
    `SELECT id FROM operation_batches WHERE id = ANY($1::uuid[])
     UNION ALL SELECT aggregate_id FROM soak_all_events WHERE aggregate_id = ANY($1::uuid[])
     UNION ALL SELECT aggregate_id FROM soak_deliveries WHERE aggregate_id = ANY($1::uuid[])`,
    [known.rolledBack],
  );
  // Each idempotency key maps to one batch (another only once retention deleted the first).
  const { rows: prunedRows } = await db.query(`SELECT id::text FROM soak_pruned_batches`);
  const pruned = new Set(prunedRows.map((row: { id: string }) => row.id));
  for (const [key, batches] of known.keyed) {
    const byTenant = new Map<string, Set<string>>();
    for (const entry of batches) {
      const [tenant, id] = entry.split("/") as [string, string];
      byTenant.set(tenant, (byTenant.get(tenant) ?? new Set()).add(id));
    }
    for (const [tenant, ids] of byTenant) {
      const alive = [...ids].filter((id) => !pruned.has(id));
      if (alive.length > 1) violations.push(`idempotency key ${tenant}/${key} returned ${ids.size} batches`);
    }
  }
  await expectNone(
    "idempotency key held by two batches",
    `SELECT tenant_id, idempotency_key, count(*) FROM operation_batches WHERE idempotency_key IS NOT NULL
     GROUP BY 1, 2 HAVING count(*) > 1`,
  );
  // No handler ran for an operation cancelled before it was claimed: its operation.cancelled event
  // says attempts 0 (never claimed since it was submitted or last re-queued), so no run may have
  // started since that re-queue — unless it was re-queued again afterwards.
  await expectNone(
    "handler ran for an operation cancelled before any claim",
    `SELECT e.aggregate_id, r.started_at FROM soak_all_events e
     JOIN soak_runs r ON r.operation_id = e.aggregate_id
     WHERE e.topic = 'operation.cancelled' AND (e.payload->>'attempts')::int = 0
       AND r.started_at > COALESCE((SELECT max(q.created_at) FROM soak_all_events q
                                    WHERE q.id < e.id AND q.topic = 'operation.retried' AND q.aggregate_id = e.aggregate_id),
                                   '-infinity')
       AND NOT EXISTS (SELECT 1 FROM soak_all_events later
                       WHERE later.id > e.id AND later.topic = 'operation.retried' AND later.aggregate_id = e.aggregate_id)`,
  );
  return violations;
}
