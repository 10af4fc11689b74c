// The outbox: events written in the statement of the change they report, one delivery row per
// registered subscriber that wants the topic, and the relay's claims and outcomes on those rows.
import type { Tables } from "../tables";
import { dueAt, lockedByKey, milliseconds, OUTBOX_CHANNEL, sql, type Sql } from "./shared";

/** An outbox event as read back: what every delivery carries. */
export interface OutboxEvent {
  id: string;
  tenantId: string;
  topic: string;
  aggregateId: string;
  payload: unknown;
  createdAt: Date;
}

/** An event a statement has just written, with the subscribers of this process it is to be delivered to. */
export interface WrittenEvent extends OutboxEvent {
  /** This process's subscribers that got a delivery row for it, held for inline delivery. */
  deliverTo: string[];
}

/** A delivery the relay claimed: the event, whom it is for, and the attempt number it was claimed with. */
export interface ClaimedDelivery {
  event: OutboxEvent;
  subscriber: string;
  attempts: number;
}

/**
 * Which of the writing process's subscribers deliver inline after commit, and for how long their
 * delivery rows are kept from the relays meanwhile. Delivery rows of other subscribers (those only
 * other processes have) are due at once.
 */
export interface Inline {
  subscribers: readonly string[];
  leaseMs: number;
}

/** No inline delivery: inside a caller's own transaction, the relays deliver everything. */
export const NO_INLINE: Inline = { subscribers: [], leaseMs: 0 };

/** An event as a statement writes it. */
export interface NewOutboxEvent {
  tenantId: string;
  topic: string;
  aggregateId: string;
  payload: unknown;
}

/**
 * CTEs `events` and `deliveries`: inserts the events `source` selects (columns tenant_id, topic,
 * aggregate_id, payload) and a delivery row for each registered subscriber whose topics include
 * the event's; and `relays_woken`, a notification on OUTBOX_CHANNEL per subscriber that got a
 * delivery due at once (not inline), run by WRITTEN_EVENTS. Every statement that writes events
 * writes them through this, so no event can be written without its deliveries.
 */
export function recordEvents(t: Tables, source: Sql, inline: Inline): Sql {
  const local = [...inline.subscribers];
  return sql`
    events AS (
      INSERT INTO ${t.outbox} (tenant_id, topic, aggregate_id, payload)
      ${source}
      RETURNING id, tenant_id, topic, aggregate_id, payload, created_at
    ), deliveries AS (
      INSERT INTO ${t.deliveries} (event_id, subscriber, available_at)
      SELECT e.id, s.name,
             CASE WHEN s.name = ANY(${local}::text[]) THEN now() + ${milliseconds(inline.leaseMs)} ELSE ${dueAt()} END
      FROM events e
      JOIN ${t.subscribers} s ON s.topics IS NULL OR cardinality(s.topics) = 0 OR e.topic = ANY(s.topics)
      RETURNING event_id, subscriber, subscriber = ANY(${local}::text[]) AS inline
    ), relays_woken AS (
      SELECT count(pg_notify(${OUTBOX_CHANNEL}, s.subscriber)) AS notified
      FROM (SELECT DISTINCT subscriber FROM deliveries WHERE NOT inline) s
    )`;
}

/**
 * The `events` CTE as JSON for the caller, each with the inline subscribers it is for (see
 * WrittenEvent). It also reads `relays_woken` (a CTE runs only when read), so every statement that
 * returns its events wakes the relays.
 */
export const WRITTEN_EVENTS = sql`
  COALESCE((
    SELECT json_agg(json_build_object('id', e.id::text, 'tenantId', e.tenant_id, 'topic', e.topic,
             'aggregateId', e.aggregate_id::text, 'payload', e.payload, 'createdAt', e.created_at,
             'deliverTo', COALESCE(l.names, '[]'::json)) ORDER BY e.id)
    FROM events e
    LEFT JOIN (SELECT event_id, json_agg(subscriber ORDER BY subscriber) AS names
               FROM deliveries WHERE inline GROUP BY event_id) l ON l.event_id = e.id
    WHERE (SELECT notified FROM relays_woken) IS NOT NULL
  ), '[]'::json)`;

/** Writes events (with their deliveries) in one statement. */
export function insertEvents(t: Tables, events: readonly NewOutboxEvent[], inline: Inline): Sql {
  return sql`
    WITH ${recordEvents(
      t,
      sql`SELECT e.tenant_id, e.topic, e.aggregate_id, e.payload
          FROM unnest(${events.map((e) => e.tenantId)}::text[], ${events.map((e) => e.topic)}::text[],
                      ${events.map((e) => e.aggregateId)}::uuid[],
                      ${events.map((e) => JSON.stringify(e.payload))}::jsonb[])
            AS e(tenant_id, topic, aggregate_id, payload)`,
      inline,
    )}
    SELECT ${WRITTEN_EVENTS} AS "events"`;
}

/**
 * Registers subscribers (or refreshes their topics): events written from now on get delivery
 * rows for them. Earlier events do not, unless replayed.
 */
export function registerSubscribers(
  t: Tables,
  subscribers: readonly { name: string; topics: readonly string[] | undefined }[],
): Sql {
  const json = JSON.stringify(subscribers.map((s) => ({ name: s.name, topics: s.topics ?? [] })));
  return sql`
    INSERT INTO ${t.subscribers} (name, topics)
    SELECT s->>'name', ARRAY(SELECT jsonb_array_elements_text(s->'topics'))
    FROM jsonb_array_elements(${json}::jsonb) s
    ON CONFLICT (name) DO UPDATE SET topics = EXCLUDED.topics, seen_at = now()`;
}

/** Forgets a subscriber and every delivery still owed to it. */
export function removeSubscriber(t: Tables, name: string): Sql {
  return sql`
    WITH gone AS (DELETE FROM ${t.deliveries} WHERE subscriber = ${name} RETURNING 1),
         removed AS (DELETE FROM ${t.subscribers} WHERE name = ${name} RETURNING 1)
    SELECT (SELECT count(*) FROM removed)::int AS "removed", (SELECT count(*) FROM gone)::int AS "deliveries"`;
}

/** Gives a registered subscriber deliveries of events written before it was registered. */
export function replayEvents(t: Tables, subscriber: string, since: Date | undefined): Sql {
  return sql`
    WITH added AS (
      INSERT INTO ${t.deliveries} (event_id, subscriber)
      SELECT e.id, s.name FROM ${t.outbox} e
      JOIN ${t.subscribers} s ON s.name = ${subscriber}
        AND (s.topics IS NULL OR cardinality(s.topics) = 0 OR e.topic = ANY(s.topics))
      WHERE e.created_at >= COALESCE(${since ?? null}::timestamptz, '-infinity')
      ON CONFLICT DO NOTHING
      RETURNING 1)
    SELECT count(*)::int AS "added" FROM added`;
}

/**
 * Takes up to `limit` due deliveries of one subscriber for an attempt: counts the attempt (which
 * names this claim) and keeps them from other relays for `leaseMs`; a relay that dies hands them
 * back when that runs out, and a live one extends it while it works (extendDeliveries).
 */
export function claimDeliveries(t: Tables, subscriber: string, limit: number, leaseMs: number): Sql {
  return sql`
    WITH claimed AS (
      UPDATE ${t.deliveries} d
      SET attempts = d.attempts + 1, available_at = now() + ${milliseconds(leaseMs)}
      FROM ${t.pickDueDeliveries}(${limit}::int, ${subscriber}::text) due
      WHERE d.event_id = due.picked_event_id AND d.subscriber = ${subscriber}
      RETURNING d.event_id, d.attempts
    )
    SELECT e.id::text AS "id", e.tenant_id AS "tenantId", e.topic, e.aggregate_id::text AS "aggregateId",
           e.payload, e.created_at AS "createdAt", c.attempts
    FROM claimed c JOIN ${t.outbox} e ON e.id = c.event_id
    ORDER BY e.id`;
}

/** A delivery as its outcome names it: the row, and the attempt count it was claimed with (its fence). */
export interface DeliveryRef {
  eventId: string;
  subscriber: string;
  /** The row's `attempts` when this delivery was claimed (0 for an inline delivery). */
  claimedAttempts: number;
}

/**
 * The delivery rows `deliveries` names that are still the claims they name (the attempt count they
 * were claimed with, not delivered, not dead), as `p`: each looked up by primary key and locked,
 * then checked as it is (see lockedByKey). The UPDATE then finds each locked row by key, with no
 * condition of its own that the partial index of undelivered rows could serve.
 */
function stillOurs(t: Tables, deliveries: readonly DeliveryRef[]): Sql {
  const named = sql`unnest(${deliveries.map((d) => d.eventId)}::bigint[], ${deliveries.map((d) => d.subscriber)}::text[],
                           ${deliveries.map((d) => d.claimedAttempts)}::int[]) AS r(event_id, subscriber, claimed)`;
  return sql`(
    SELECT c.event_id, c.subscriber
    FROM ${lockedByKey(t.deliveries, named, ["event_id", "subscriber"])}
    WHERE c.attempts = u.claimed AND c.delivered_at IS NULL AND c.dead_at IS NULL
  ) p`;
}

/** The locked row of `p` (see stillOurs), by primary key. */
const BY_KEY = sql`d.event_id = p.event_id AND d.subscriber = p.subscriber`;

/**
 * Keeps claimed deliveries from other relays for another `leaseMs` while this one is still at work
 * on them — only while they are still this claim's.
 */
export function extendDeliveries(t: Tables, deliveries: readonly DeliveryRef[], leaseMs: number): Sql {
  return sql`
    UPDATE ${t.deliveries} d SET available_at = now() + ${milliseconds(leaseMs)}
    FROM ${stillOurs(t, deliveries)}
    WHERE ${BY_KEY}`;
}

/**
 * Records deliveries that succeeded, only where the row is still the claim it was taken with: a
 * delivery whose claim ran out and was taken by another relay records nothing. An inline delivery
 * (claimed 0) counts its attempt here; a relay's was counted when it claimed.
 *
 * It commits without waiting for the WAL flush (`synchronous_commit` off for this transaction only;
 * it always runs in a transaction of its own, after the events' commit): a mark lost in a crash of
 * the database makes the relay deliver again, which at-least-once delivery allows, and every later
 * synchronous commit flushes it. This takes a disk flush off every submit and every group commit.
 */
export function markDelivered(t: Tables, deliveries: readonly DeliveryRef[]): Sql {
  return sql`
    UPDATE ${t.deliveries} d
    SET delivered_at = now(), last_error = NULL, attempts = GREATEST(d.attempts, 1)
    FROM ${stillOurs(t, deliveries)}, (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
    WHERE ${BY_KEY}`;
}

/** Records a failed delivery (fenced as above): due again after `retryDelayMs`, or dead when null. */
export function markFailed(
  t: Tables,
  delivery: DeliveryRef,
  error: string,
  retryDelayMs: number | null,
): Sql {
  return sql`
    UPDATE ${t.deliveries} d
    SET attempts = GREATEST(d.attempts, 1),
        last_error = ${error},
        dead_at = ${retryDelayMs === null ? sql`now()` : sql`NULL`},
        available_at = ${retryDelayMs === null ? sql`d.available_at` : dueAt(milliseconds(retryDelayMs))}
    FROM ${stillOurs(t, [delivery])}
    WHERE ${BY_KEY}`;
}

/** Which dead deliveries to hand back to the relays. */
export interface DeadFilter {
  subscriber?: string;
  eventIds?: readonly string[];
  tenantId?: string;
}

/** Dead deliveries due again, with a fresh budget of attempts. */
export function redeliverDead(t: Tables, filter: DeadFilter): Sql {
  return sql`
    WITH revived AS (
      UPDATE ${t.deliveries} d SET dead_at = NULL, attempts = 0, available_at = ${dueAt()}
      FROM ${t.outbox} e
      WHERE e.id = d.event_id AND d.dead_at IS NOT NULL
        AND (${filter.subscriber ?? null}::text IS NULL OR d.subscriber = ${filter.subscriber ?? null})
        AND (${filter.eventIds ?? null}::bigint[] IS NULL OR d.event_id = ANY(${filter.eventIds ?? null}::bigint[]))
        AND (${filter.tenantId ?? null}::text IS NULL OR e.tenant_id = ${filter.tenantId ?? null})
      RETURNING 1)
    SELECT count(*)::int AS "redelivered" FROM revived`;
}
