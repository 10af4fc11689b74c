// The database as the model-based test sees it: every operation, batch and outbox event, read with a
// plain pg pool (not through the code under test) in one REPEATABLE READ snapshot; the invariants
// that must hold after any sequence of calls; and the comparison with the reference model.
import type { Pool } from "pg";
import { isTerminal, type Model, type Status, type Terminal } from "./model";

export interface OperationRow {
  id: string;
  tenantId: string;
  batchId: string | null;
  status: Status;
  attempts: number;
  maxAttempts: number;
  cancelRequested: boolean;
  lockToken: string | null;
  lockedBy: string | null;
  hasLease: boolean;
  /**
   * run_at has come, give or take a second. run_at is TIMESTAMPTZ(3): `run_at = now()` is rounded to
   * the nearest millisecond, so a row made due "now" can be up to 0.5 ms in the future for a read
   * right after. Rows not due are an hour ahead in these tests, so the margin is unambiguous.
   */
  due: boolean;
}

export interface BatchRow {
  id: string;
  status: Status;
  childCount: number;
  completed: number;
  failed: number;
  cancelled: number;
  episode: number;
}

export interface Snapshot {
  operations: Map<string, OperationRow>;
  batches: Map<string, BatchRow>;
  /** By aggregate id, then topic (batch terminal events as `batch.<status>#<episode>`): how many. */
  events: Map<string, Map<string, number>>;
  /**
   * Every event id, with what each subscriber is still owed or got: a delivery row (`owed`,
   * `delivered` by a relay, `dead`) or a hold (`held`: being delivered inline). A subscriber with
   * neither got the event inline, which leaves no row.
   */
  deliveries: Map<string, Map<string, DeliveryState>>;
}

export type DeliveryState = "owed" | "delivered" | "dead" | "held";

/** Whether `subscriber` has had the event: inline (no row, no hold) or marked delivered. */
export function deliveredTo(states: ReadonlyMap<string, DeliveryState>, subscriber: string): boolean {
  const state = states.get(subscriber);
  return state === undefined || state === "delivered";
}

export async function readSnapshot(pool: Pool): Promise<Snapshot> {
  const client = await pool.connect();
  try {
    await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    const operations = await client.query<OperationRow>(`
      SELECT id::text AS "id", tenant_id AS "tenantId", batch_id::text AS "batchId", status::text AS "status",
             attempts, max_attempts AS "maxAttempts", cancel_requested_at IS NOT NULL AS "cancelRequested", lock_token::text AS "lockToken",
             locked_by AS "lockedBy", locked_until IS NOT NULL AS "hasLease", run_at <= now() + interval '1 second' AS "due"
      FROM operations ORDER BY id`);
    const batches = await client.query<BatchRow>(`
      SELECT id::text AS "id", status::text AS "status", child_count AS "childCount",
             completed_count AS "completed", failed_count AS "failed", cancelled_count AS "cancelled", episode
      FROM operation_batches ORDER BY id`);
    const events = await client.query<{ aggregateId: string; topic: string; n: number }>(`
      SELECT aggregate_id::text AS "aggregateId",
             CASE WHEN topic IN ('batch.completed', 'batch.failed', 'batch.cancelled')
                  THEN topic || '#' || COALESCE(payload->>'episode', '?') ELSE topic END AS "topic",
             count(*)::int AS "n"
      FROM operation_outbox GROUP BY 1, 2`);
    const deliveries = await client.query<{
      eventId: string;
      subscriber: string | null;
      state: DeliveryState | null;
    }>(`
      SELECT e.id::text AS "eventId", NULL AS "subscriber", NULL AS "state" FROM operation_outbox e
      UNION ALL
      SELECT d.event_id::text, d.subscriber,
             CASE WHEN d.delivered_at IS NOT NULL THEN 'delivered' WHEN d.dead_at IS NOT NULL THEN 'dead' ELSE 'owed' END
      FROM operation_deliveries d
      UNION ALL
      SELECT x.event_id::text, h.subscriber, 'held'
      FROM operation_delivery_holds h CROSS JOIN LATERAL unnest(h.event_ids) AS x(event_id)`);
    await client.query("COMMIT");
    const byEvent = new Map<string, Map<string, DeliveryState>>();
    const twice: string[] = [];
    for (const row of deliveries.rows) {
      const states = byEvent.get(row.eventId) ?? new Map<string, DeliveryState>();
      if (row.subscriber !== null && row.state !== null) {
        if (states.has(row.subscriber)) twice.push(`${row.eventId}:${row.subscriber}`);
        states.set(row.subscriber, row.state);
      }
      byEvent.set(row.eventId, states);
    }
    if (twice.length) throw new Error(`owed twice (a delivery row and a hold): ${twice.join(", ")}`);
    const byAggregate = new Map<string, Map<string, number>>();
    for (const row of events.rows) {
      const topics = byAggregate.get(row.aggregateId) ?? new Map<string, number>();
      topics.set(row.topic, row.n);
      byAggregate.set(row.aggregateId, topics);
    }
    return {
      operations: new Map(operations.rows.map((row) => [row.id, row])),
      batches: new Map(batches.rows.map((row) => [row.id, row])),
      events: byAggregate,
      deliveries: byEvent,
    };
  } catch (error) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

const count = (topics: Map<string, number> | undefined, topic: string) => topics?.get(topic) ?? 0;

/** What this process's subscribers were handed, and who they are (registered before any write). */
export interface Received {
  subscribers: readonly string[];
  /** Event ids, in the order delivered, of every subscriber together. */
  eventIds: readonly string[];
}

/**
 * What must hold after any history, whatever the order of concurrent calls: each a sentence naming
 * the row. Empty when all hold.
 */
export function invariantViolations(s: Snapshot, received?: Received): string[] {
  const problems: string[] = [];
  if (received) problems.push(...deliveryViolations(s, received));
  const children = new Map<string, OperationRow[]>();
  for (const op of s.operations.values()) {
    if (op.batchId) children.set(op.batchId, [...(children.get(op.batchId) ?? []), op]);
    // A row is processing exactly when it holds a lease (worker, expiry and claim token).
    const leased = op.lockToken !== null && op.lockedBy !== null && op.hasLease;
    const unleased = op.lockToken === null && op.lockedBy === null && !op.hasLease;
    if (op.status === "processing" ? !leased : !unleased) {
      problems.push(`operation ${op.id} is ${op.status} with lease fields ${JSON.stringify(op)}`);
    }
    // A cancel request on a pending row would be lost: pending rows are cancelled, not asked.
    if (op.status === "pending" && op.cancelRequested) {
      problems.push(`operation ${op.id} is pending with a cancel request`);
    }
    // Each time it ended it got its event, and it can only end again after a retry.
    const topics = s.events.get(op.id);
    const ended = ["completed", "failed", "cancelled"].reduce(
      (n, t) => n + count(topics, `operation.${t}`),
      0,
    );
    const retried = count(topics, "operation.retried");
    if (ended !== retried + (isTerminal(op.status) ? 1 : 0)) {
      problems.push(
        `operation ${op.id} (${op.status}) has ${ended} terminal events and ${retried} operation.retried events`,
      );
    }
  }
  for (const batch of s.batches.values()) {
    const kids = children.get(batch.id) ?? [];
    const real = (status: Status) => kids.filter((kid) => kid.status === status).length;
    const actual = { completed: real("completed"), failed: real("failed"), cancelled: real("cancelled") };
    if (kids.length !== batch.childCount) {
      problems.push(`batch ${batch.id} has ${kids.length} children, child_count ${batch.childCount}`);
    }
    if (
      batch.completed !== actual.completed ||
      batch.failed !== actual.failed ||
      batch.cancelled !== actual.cancelled
    ) {
      problems.push(
        `batch ${batch.id} counters ${JSON.stringify({ completed: batch.completed, failed: batch.failed, cancelled: batch.cancelled })} ≠ its children ${JSON.stringify(actual)}`,
      );
    }
    // The outcome rule, from the children's real statuses.
    const done = actual.completed + actual.failed + actual.cancelled;
    const expected: Terminal | null =
      done < kids.length
        ? null
        : actual.failed > 0
          ? "failed"
          : actual.cancelled > 0
            ? "cancelled"
            : "completed";
    if (expected ? batch.status !== expected : isTerminal(batch.status)) {
      problems.push(`batch ${batch.id} is ${batch.status}; its children make it ${expected ?? "unfinished"}`);
    }
    // Pending until its first claim: before that, its children can only be pending or cancelled.
    if (
      batch.status === "pending" &&
      kids.some((kid) => kid.status !== "pending" && kid.status !== "cancelled")
    ) {
      problems.push(`batch ${batch.id} is pending with a child that was claimed`);
    }
    // Exactly one terminal event per finished episode, the last one with the batch's status.
    const finished = isTerminal(batch.status) ? batch.episode : batch.episode - 1;
    const topics = s.events.get(batch.id) ?? new Map<string, number>();
    const terminalEvents = [...topics].filter(([topic]) =>
      /^batch\.(completed|failed|cancelled)#/.test(topic),
    );
    const perEpisode = new Map<string, number>();
    for (const [topic, n] of terminalEvents) {
      const episode = topic.split("#")[1]!;
      perEpisode.set(episode, (perEpisode.get(episode) ?? 0) + n);
    }
    const episodes = [...perEpisode.keys()].sort();
    const wanted = Array.from({ length: finished }, (_, i) => String(i + 1)).sort();
    if (
      JSON.stringify(episodes) !== JSON.stringify(wanted) ||
      [...perEpisode.values()].some((n) => n !== 1) ||
      (isTerminal(batch.status) && count(topics, `batch.${batch.status}#${batch.episode}`) !== 1)
    ) {
      problems.push(
        `batch ${batch.id} (${batch.status}, episode ${batch.episode}) has terminal events ${JSON.stringify(Object.fromEntries(terminalEvents))}`,
      );
    }
    if (count(topics, "batch.submitted") !== 1)
      problems.push(`batch ${batch.id} has no single batch.submitted`);
  }
  return problems;
}

/**
 * Per-subscriber delivery: what was handed to the subscribers is exactly what they have had (no
 * row and no hold, or a row marked delivered), each once; nothing is left held; every row belongs
 * to one of them (no relay runs in these tests, so only the committing process delivers, inline).
 */
function deliveryViolations(s: Snapshot, received: Received): string[] {
  const problems: string[] = [];
  const handed = new Map<string, number>();
  for (const id of received.eventIds) handed.set(id, (handed.get(id) ?? 0) + 1);
  for (const [eventId, states] of s.deliveries) {
    const strangers = [...states.keys()].filter((name) => !received.subscribers.includes(name));
    if (strangers.length) problems.push(`event ${eventId} is owed to ${JSON.stringify(strangers)}`);
    const held = [...states].filter(([, state]) => state === "held").map(([name]) => name);
    if (held.length) problems.push(`event ${eventId} is still held for ${JSON.stringify(held)}`);
    const had = received.subscribers.filter((name) => deliveredTo(states, name)).length;
    if (had !== (handed.get(eventId) ?? 0)) {
      problems.push(
        `event ${eventId} had by ${had} subscribers, handed over ${handed.get(eventId) ?? 0} times`,
      );
    }
  }
  for (const id of handed.keys()) {
    if (!s.deliveries.has(id)) problems.push(`event ${id} was delivered but is not in the outbox`);
  }
  return problems;
}

/** Where the database differs from the model: rows, statuses, counters, claims, due times, events. */
export function differences(s: Snapshot, m: Model): string[] {
  const problems: string[] = [];
  if (s.operations.size !== m.operations.length) {
    problems.push(`${s.operations.size} operations in the database, ${m.operations.length} in the model`);
  }
  for (const op of m.operations) {
    const row = s.operations.get(op.id);
    if (!row) {
      problems.push(`${op.label} is missing`);
      continue;
    }
    const want = {
      status: op.status,
      attempts: op.attempts,
      cancelRequested: op.cancelRequested,
      lockToken: op.claim,
      due: op.status === "pending" ? op.due : undefined,
    };
    const got = {
      status: row.status,
      attempts: row.attempts,
      cancelRequested: row.cancelRequested,
      lockToken: row.lockToken,
      due: row.status === "pending" ? row.due : undefined,
    };
    if (JSON.stringify(want) !== JSON.stringify(got)) {
      problems.push(`${op.label}: database ${JSON.stringify(got)}, model ${JSON.stringify(want)}`);
    }
  }
  if (s.batches.size !== m.batches.length) {
    problems.push(`${s.batches.size} batches in the database, ${m.batches.length} in the model`);
  }
  for (const batch of m.batches) {
    const row = s.batches.get(batch.id);
    if (!row) {
      problems.push(`${batch.label} is missing`);
      continue;
    }
    const c = {
      completed: batch.children.filter((k) => k.status === "completed").length,
      failed: batch.children.filter((k) => k.status === "failed").length,
      cancelled: batch.children.filter((k) => k.status === "cancelled").length,
    };
    const want = { status: batch.status, episode: batch.episode, ...c };
    const got = {
      status: row.status,
      episode: row.episode,
      completed: row.completed,
      failed: row.failed,
      cancelled: row.cancelled,
    };
    if (JSON.stringify(want) !== JSON.stringify(got)) {
      problems.push(`${batch.label}: database ${JSON.stringify(got)}, model ${JSON.stringify(want)}`);
    }
  }
  const labels = new Map<string, string>([
    ...m.operations.map((op) => [op.id, op.label] as [string, string]),
    ...m.batches.map((b) => [b.id, b.label] as [string, string]),
  ]);
  for (const id of new Set([...s.events.keys(), ...m.events.keys()])) {
    const got = Object.fromEntries([...(s.events.get(id) ?? [])].sort());
    const want = Object.fromEntries([...(m.events.get(id) ?? [])].sort());
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      problems.push(
        `events of ${labels.get(id) ?? id}: database ${JSON.stringify(got)}, model ${JSON.stringify(want)}`,
      );
    }
  }
  return problems;
}
