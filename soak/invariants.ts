// The invariants the soak checks once the system has settled, each against the database, the
// recorded deliveries and the orchestrator's records (soak_runs, soak_deliveries and the other
// tables of SOAK_TABLES). Returns one line per violated invariant.
import type { Pool } from "pg";

/** What the submitter knows that the database cannot tell: keys it used, submits it rolled back. */
export interface Known {
  settled: boolean;
  /** Per idempotency key, the `tenant/batchId` each submit with it returned. */
  keyed: Map<string, Set<string>>;
  /** Batch ids returned inside transactions that were then rolled back. */
  rolledBack: string[];
  /**
   * Subscribers the clients registered and removed during the run: of their deliveries only the
   * events are checked (what was owed to them depends on when they were registered).
   */
  occasional: string[];
  /** The nodes' lease: a run's outcome is recorded within it unless its node died or was cut off. */
  leaseMs: number;
}

/**
 * Messages in which the module says a node's hold on its claims was in trouble — a heartbeat, a
 * claim, LISTEN or the worker registry failing against the database, an outcome rejected because
 * its claim had been taken back meanwhile — each a reason for an outcome to be lost. Not the
 * completer giving up on outcomes, a refused value or the reaper taking rows back: those say that
 * outcomes were lost, not why, and are what the checks below look for.
 */
const LEASE_TROUBLE = [
  "heartbeat%",
  "outcome rejected%",
  "notification connection lost%",
  "claim%failed%",
  "worker registry%",
  "reaper pass failed%",
];

/**
 * Whether run `r` may have lost its outcome for a recorded reason, of the soak's making or the
 * machine's, from a lease before it started (the claim or heartbeat its lease came from) until a
 * lease and 2 s after it stopped: its process died, its node was partitioned, its process (or the
 * network process proxying it) stood still, the module logged trouble in its process (a heartbeat, a
 * claim or LISTEN failing, an outcome rejected as late), or a run of its process was aborted for a
 * lost lease. $1: the lease; $2: LEASE_TROUBLE.
 */
const disturbed = (r: string) => {
  const from = `${r}.started - $1::float8`;
  const to = `${r}.stopped + $1::float8 + 2000`;
  return `(
  EXISTS (SELECT 1 FROM soak_lives l WHERE l.node = ${r}.node AND l.pid = ${r}.pid AND l.exited BETWEEN ${from} AND ${to})
  OR EXISTS (SELECT 1 FROM soak_partitions p WHERE p.node = ${r}.node AND p.cut <= ${to} AND p.restored >= ${from})
  OR EXISTS (SELECT 1 FROM soak_stalls s WHERE s.node = ${r}.node AND (s.pid IS NULL OR s.pid = ${r}.pid)
             AND s.began <= ${to} AND s.ended >= ${from})
  OR EXISTS (SELECT 1 FROM soak_logs g WHERE g.node = ${r}.node AND g.pid = ${r}.pid AND g.at BETWEEN ${from} AND ${to}
             AND g.message LIKE ANY ($2::text[]))
  OR EXISTS (SELECT 1 FROM soak_runs x WHERE x.node = ${r}.node AND x.pid = ${r}.pid AND x.aborted_by = 'LeaseLost'
             AND x.stopped BETWEEN ${from} AND ${to}))`;
};

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
  // other — unless its delivery died and was deleted with its event once retention let it (only
  // soak-flaky's die, and are revived by an operator, but not always in time); nothing is left
  // owed, held or dead (soak-flaky's dead are revived as the system settles); a row marked
  // delivered was really received. (registered_at is fixed just after a registration commits, so
  // an event written in between was owed yet reads as written before it: the soak's nodes all
  // register before any write, and a restart with the same topics leaves the time as it was.)
  const wants = `(s.topics IS NULL OR cardinality(s.topics) = 0 OR e.topic = ANY(s.topics))`;
  await expectNone(
    "event a subscriber that wants it never received",
    `SELECT e.id, e.topic, s.name FROM soak_all_events e
     JOIN operation_subscribers s ON s.registered_at < e.created_at AND ${wants}
     WHERE NOT EXISTS (SELECT 1 FROM soak_deliveries r WHERE r.event_id = e.id AND r.subscriber = s.name)
       AND NOT EXISTS (SELECT 1 FROM soak_pruned_dead p WHERE p.event_id = e.id AND p.subscriber = s.name)`,
  );
  await expectNone(
    "delivery row for a subscriber that does not want the topic",
    `SELECT d.event_id, d.subscriber FROM operation_deliveries d
     JOIN operation_outbox e ON e.id = d.event_id JOIN operation_subscribers s ON s.name = d.subscriber
     WHERE NOT ${wants}`,
  );
  await expectNone(
    "delivery never completed",
    `SELECT event_id, subscriber, attempts, dead_at, last_error FROM operation_deliveries d
     WHERE delivered_at IS NULL AND EXISTS (SELECT 1 FROM operation_subscribers s WHERE s.name = d.subscriber)`,
  );
  await expectNone(
    "held delivery never settled nor taken over",
    `SELECT id, subscriber, event_ids, held_until FROM operation_delivery_holds h
     WHERE EXISTS (SELECT 1 FROM operation_subscribers s WHERE s.name = h.subscriber)`,
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
       WHERE e.id = r.event_id AND s.registered_at < e.created_at AND ${wants})
       AND NOT (r.subscriber = ANY($1::text[]) AND EXISTS (SELECT 1 FROM soak_all_events e WHERE e.id = r.event_id))`,
    [known.occasional],
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
  // says attempts 0 (never claimed since it was submitted or last re-queued, but for claims handed
  // back by a snooze, which use no attempt), so no run that did not snooze may have started since
  // that re-queue — unless it was re-queued again afterwards.
  await expectNone(
    "handler ran for an operation cancelled before any claim",
    `SELECT e.aggregate_id, r.started_at FROM soak_all_events e
     JOIN soak_runs r ON r.operation_id = e.aggregate_id AND r.outcome IS DISTINCT FROM 'snoozed'
     WHERE e.topic = 'operation.cancelled' AND (e.payload->>'attempts')::int = 0
       AND r.started_at > COALESCE((SELECT max(q.created_at) FROM soak_all_events q
                                    WHERE q.id < e.id AND q.topic = 'operation.retried' AND q.aggregate_id = e.aggregate_id),
                                   '-infinity')
       AND NOT EXISTS (SELECT 1 FROM soak_all_events later
                       WHERE later.id > e.id AND later.topic = 'operation.retried' AND later.aggregate_id = e.aggregate_id)`,
  );
  // Handler runs, as their nodes reported them. No operation ever has two runs at once: a run
  // lasts until its function returned or threw (the handlers stop at once when their signal
  // fires), or its process died.
  await expectNone(
    "operation with two handler runs at the same time",
    `WITH spans AS (
       SELECT r.run_id, r.operation_id, r.node, r.attempt, r.started,
              COALESCE(r.stopped,
                       (SELECT l.exited FROM soak_lives l WHERE l.node = r.node AND l.pid = r.pid
                        AND l.started <= r.started ORDER BY l.started DESC LIMIT 1),
                       'Infinity') AS ended
       FROM soak_runs r)
     SELECT a.operation_id AS "operation", a.node || ' attempt ' || a.attempt AS "first",
            b.node || ' attempt ' || b.attempt AS "second", round((LEAST(a.ended, b.ended) - b.started)::numeric) AS "overlapMs"
     FROM spans a JOIN spans b ON b.operation_id = a.operation_id AND (b.started, b.run_id) > (a.started, a.run_id)
     WHERE b.started < a.ended
     ORDER BY 4 DESC`,
  );
  // A run whose handler returned, on a node that neither died nor was cut off until well past its
  // lease, has its outcome recorded: its operation does not run again (unless retried since).
  await expectNone(
    "operation run again after its handler returned on a node that stayed up and connected",
    `SELECT a.operation_id AS "operation", a.node, a.attempt, b.node AS "againOn", b.attempt AS "againAttempt",
            round((b.started - a.stopped)::numeric) AS "afterMs"
     FROM soak_runs a JOIN soak_runs b ON b.operation_id = a.operation_id AND b.started > a.stopped
     WHERE a.outcome = 'returned' AND NOT ${disturbed("a")}
       AND NOT EXISTS (SELECT 1 FROM soak_retries q WHERE q.target IN (a.operation_id, a.batch_id)
                       AND q.returned > a.stopped AND q.called < b.started)`,
    [known.leaseMs, LEASE_TROUBLE],
  );
  // An operation that failed on an attempt whose handler returned or threw, on such a node, failed
  // with that run's outcome: the error it threw (its printable start), or the module's refusal of
  // its result — never a lost lease.
  await expectNone(
    "operation failed with an error that is not its handler's",
    `WITH last AS (SELECT DISTINCT ON (operation_id) * FROM soak_runs ORDER BY operation_id, started DESC)
     SELECT o.id AS "operation", o.attempts, o.error_name AS "storedName", left(o.error_head, 60) AS "stored",
            r.outcome, r.error_head AS "thrown", r.node
     FROM soak_all_operations o JOIN last r ON r.operation_id = o.id AND r.attempt = o.attempts
     WHERE o.status = 'failed' AND r.outcome IN ('returned', 'threw') AND NOT ${disturbed("r")}
       AND (o.error_name IS NOT DISTINCT FROM 'LeaseExpired'
            OR (r.outcome = 'threw' AND left(o.error_head, length(r.error_head)) IS DISTINCT FROM r.error_head))`,
    [known.leaseMs, LEASE_TROUBLE],
  );
  // The operator races: nothing is owed to a subscriber that is not registered (no relay would
  // deliver it, and retention would keep its event and batch for ever) ...
  await expectNone(
    "delivery row or hold without a registered subscriber",
    `SELECT 'delivery' AS kind, d.event_id::text AS id, d.subscriber, d.delivered_at IS NOT NULL AS delivered
     FROM operation_deliveries d
     WHERE NOT EXISTS (SELECT 1 FROM operation_subscribers s WHERE s.name = d.subscriber)
     UNION ALL
     SELECT 'hold', h.id::text, h.subscriber, false FROM operation_delivery_holds h
     WHERE NOT EXISTS (SELECT 1 FROM operation_subscribers s WHERE s.name = h.subscriber)`,
  );
  // ... and a dead delivery that redeliverDead said it revived is delivered afterwards (unless it
  // died again, or its subscriber was removed since).
  await expectNone(
    "dead delivery redeliverDead revived, never delivered",
    `SELECT v.event_id, v.subscriber FROM soak_revivals v
     WHERE NOT EXISTS (SELECT 1 FROM soak_deliveries r WHERE r.event_id = v.event_id AND r.subscriber = v.subscriber
                       AND extract(epoch FROM r.at) * 1000 > v.called)
       AND NOT EXISTS (SELECT 1 FROM soak_pruned_dead p WHERE p.event_id = v.event_id AND p.subscriber = v.subscriber
                       AND extract(epoch FROM p.dead_at) * 1000 > v.called)
       AND NOT EXISTS (SELECT 1 FROM soak_removals m WHERE m.subscriber = v.subscriber AND m.returned > v.called)`,
  );
  return violations;
}

/** What the runs measure rather than check (until the README states a bound). */
export interface RunMeasures {
  /**
   * Handler starts after a cancel covering their operation (it, or its batch) had returned — and no
   * retry of it since — and the longest time from such a cancel's return to the start.
   */
  startsAfterCancel: { count: number; maxMs: number };
  /** Event-loop stalls of STALL_MS or more (nodes' and the orchestrator's): how busy the machine was. */
  stalls: { count: number; maxMs: number };
  /** The module's warnings and errors in the nodes, by message. */
  nodeLogs: Record<string, number>;
}

export async function measureRuns(db: Pool): Promise<RunMeasures> {
  const { rows } = await db.query(`
    WITH late AS (
      SELECT r.run_id, max(r.started - c.returned) AS delay
      FROM soak_cancels c JOIN soak_runs r ON (r.operation_id = c.target OR r.batch_id = c.target)
      WHERE r.started > c.returned
        AND NOT EXISTS (SELECT 1 FROM soak_retries q WHERE q.target IN (r.operation_id, r.batch_id)
                        AND q.returned > c.called AND q.called < r.started)
      GROUP BY r.run_id)
    SELECT count(*)::int AS count, COALESCE(round(max(delay)), 0)::int AS "maxMs" FROM late`);
  const { rows: stalls } = await db.query(
    `SELECT count(*)::int AS count, COALESCE(round(max(ended - began)), 0)::int AS "maxMs" FROM soak_stalls`,
  );
  const { rows: logs } = await db.query(
    `SELECT message, count(*)::int AS n FROM soak_logs GROUP BY message ORDER BY 2 DESC, 1`,
  );
  return {
    startsAfterCancel: rows[0],
    stalls: stalls[0],
    nodeLogs: Object.fromEntries(logs.map((row: { message: string; n: number }) => [row.message, row.n])),
  };
}
