// The outbox: events written in the statement of the change they report; for each registered
// subscriber that wants the topic, a delivery row (the relays deliver it) or, for the writing
// process's own subscribers, a hold (that process delivers the events right after its commit); the
// relay's claims and outcomes on delivery rows, and the settling of holds.
import type { Tables } from "../tables";
import { dueAt, milliseconds, OUTBOX_CHANNEL, sql, type Sql } from "./shared";

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
  /** This process's subscribers it is held for (inline delivery after commit), each with its hold's id. */
  heldFor: { subscriber: string; hold: string }[];
}

/** A delivery the relay claimed: the event, whom it is for, and the attempt numbers it was claimed with. */
export interface ClaimedDelivery {
  event: OutboxEvent;
  subscriber: string;
  /** The row's attempts counted with this claim: it names the claim (see DeliveryRef). */
  attempts: number;
  /** This attempt within the delivery's budget: 1 for the first since it was written or last redelivered. */
  attempt: number;
}

/**
 * Which of the writing process's subscribers deliver inline after commit, and for how long their
 * holds are kept from the relays meanwhile. Other subscribers (those only other processes have)
 * get delivery rows due at once.
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

/** Subscriber `s` wants event `e`'s topic (no topics means every topic). */
export const WANTS_TOPIC = sql`(s.topics IS NULL OR cardinality(s.topics) = 0 OR e.topic = ANY(s.topics))`;

/**
 * CTEs `events`, `subscribed`, `owed`, `deliveries` and `holds`: inserts the events `source`
 * selects (columns tenant_id, topic, aggregate_id, payload); for each registered subscriber whose
 * topics include an event's, a delivery row due at once — or, for the writing process's own
 * (inline) subscribers, one hold per subscriber naming all of the statement's events it wants,
 * kept from the relays for `inline.leaseMs`. And `relays_woken`, a notification on OUTBOX_CHANNEL
 * per subscriber that got a delivery row, run by WRITTEN_EVENTS. Every statement that writes
 * events writes them through this, so no event can be written without what it owes each subscriber.
 *
 * A hold is one row where delivery rows would be one per event, each written twice (created, then
 * marked delivered): the cost of an event to a subscriber that takes it at once is one array entry.
 *
 * The subscribers owed something are held FOR KEY SHARE until the statement's transaction ends,
 * each once (not once per event): a removal (operation_subscribers_remove in the migrations) waits
 * for them, and one under way makes this wait, then skip the subscriber it deleted — so no row
 * is written for a subscriber no longer registered. Key share conflicts only with the removal.
 */
export function recordEvents(t: Tables, source: Sql, inline: Inline): Sql {
  const local = [...inline.subscribers];
  return sql`
    events AS (
      INSERT INTO ${t.outbox} (tenant_id, topic, aggregate_id, payload)
      ${source}
      RETURNING id, tenant_id, topic, aggregate_id, payload, created_at
    ), subscribed AS MATERIALIZED (
      SELECT s.name, s.topics FROM ${t.subscribers} s
      WHERE EXISTS (SELECT 1 FROM events e WHERE ${WANTS_TOPIC})
      FOR KEY SHARE OF s
    ), owed AS (
      SELECT e.id AS event_id, s.name AS subscriber, s.name = ANY(${local}::text[]) AS inline
      FROM events e
      JOIN subscribed s ON ${WANTS_TOPIC}
    ), deliveries AS (
      INSERT INTO ${t.deliveries} (event_id, subscriber, available_at)
      SELECT event_id, subscriber, ${dueAt()} FROM owed WHERE NOT inline
      RETURNING subscriber
    ), holds AS (
      INSERT INTO ${t.holds} (subscriber, event_ids, held_until)
      SELECT subscriber, array_agg(event_id ORDER BY event_id), now() + ${milliseconds(inline.leaseMs)}
      FROM owed WHERE inline GROUP BY subscriber
      RETURNING id, subscriber, event_ids
    ), relays_woken AS (
      SELECT count(pg_notify(${OUTBOX_CHANNEL}, s.subscriber)) AS notified
      FROM (SELECT DISTINCT subscriber FROM deliveries) s
    )`;
}

/**
 * The `events` CTE as JSON for the caller, each with the holds it is in (see WrittenEvent). It
 * also reads `relays_woken` (a CTE runs only when read), so every statement that returns its
 * events wakes the relays.
 */
export const WRITTEN_EVENTS = sql`
  COALESCE((
    SELECT json_agg(json_build_object('id', e.id::text, 'tenantId', e.tenant_id, 'topic', e.topic,
             'aggregateId', e.aggregate_id::text, 'payload', e.payload, 'createdAt', e.created_at,
             'heldFor', COALESCE(l.held, '[]'::json)) ORDER BY e.id)
    FROM events e
    LEFT JOIN (SELECT x.event_id,
                      json_agg(json_build_object('subscriber', h.subscriber, 'hold', h.id::text) ORDER BY h.subscriber) AS held
               FROM holds h CROSS JOIN LATERAL unnest(h.event_ids) AS x(event_id) GROUP BY x.event_id) l
      ON l.event_id = e.id
    WHERE (SELECT notified FROM relays_woken) IS NOT NULL
  ), '[]'::json)`;

/**
 * The events still owed to the subscriber `subscriber` names (an SQL expression), as a relation
 * with one column, `event_id`: its delivery rows neither delivered nor dead, and the events of its
 * holds (being delivered inline, or left by a process that stopped before settling them).
 */
export function owedTo(t: Tables, subscriber: Sql): Sql {
  return sql`
    SELECT d.event_id FROM ${t.deliveries} d
    WHERE d.subscriber = ${subscriber} AND d.delivered_at IS NULL AND d.dead_at IS NULL
    UNION ALL
    SELECT x.event_id FROM ${t.holds} h CROSS JOIN LATERAL unnest(h.event_ids) AS x(event_id)
    WHERE h.subscriber = ${subscriber}`;
}

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
 * Stands for "registered, the time not fixed yet" between a registration's two statements (see
 * registrationCommitted): later than any event, so a replay meanwhile gives too much rather than
 * too little, and a plain date, which every client can read.
 */
const REGISTERING = sql`'9999-12-31T00:00:00Z'::timestamptz`;

/**
 * Registers subscribers (or refreshes their topics): events written from now on are owed to them.
 * Earlier events are not, unless replayed. A registration that changes a subscriber's topics
 * registers it again, so that a replay can give it the events of a topic it did not want before
 * (and the dashboard tells nothing for those older events). Returns the subscribers this statement
 * registered, whose time `registrationCommitted` fixes once it has committed — and those whose time
 * an earlier registration left unfixed (its process stopped in between), which it fixes too.
 */
export function registerSubscribers(
  t: Tables,
  subscribers: readonly { name: string; topics: readonly string[] | undefined }[],
): Sql {
  const json = JSON.stringify(subscribers.map((s) => ({ name: s.name, topics: s.topics ?? [] })));
  return sql`
    INSERT INTO ${t.subscribers} (name, topics, registered_at)
    SELECT s->>'name', ARRAY(SELECT jsonb_array_elements_text(s->'topics')), ${REGISTERING}
    FROM jsonb_array_elements(${json}::jsonb) s
    ORDER BY s->>'name' -- rows locked in name order, as registrationCommitted's index scan does
    ON CONFLICT (name) DO UPDATE SET topics = EXCLUDED.topics, seen_at = now(),
      registered_at = CASE WHEN ${t.subscribers}.topics IS DISTINCT FROM EXCLUDED.topics
                           THEN ${REGISTERING} ELSE ${t.subscribers}.registered_at END
    RETURNING name AS "name", registered_at = ${REGISTERING} AS "registering"`;
}

/**
 * Fixes the registration time of subscribers just registered, once their registering statement has
 * committed: now. A statement that began writing events before the registration committed did not
 * see it, so its events were not owed to the subscriber; they were written (their transaction
 * began) before now, so a replay gives them. An event written between the commit and now was owed
 * and is replayable too, which at-least-once delivery allows. (The time the registering statement
 * started, used before, lost the events of statements that began after it and before its commit.)
 */
export function registrationCommitted(t: Tables, names: readonly string[]): Sql {
  return sql`
    UPDATE ${t.subscribers} SET registered_at = clock_timestamp()
    WHERE name = ANY(${names}::text[]) AND registered_at = ${REGISTERING}`;
}

/**
 * Forgets a subscriber and every delivery still owed to it (rows and holds), in a function of the
 * migrations (operation_subscribers_remove) whose steps are statements of their own: the row
 * first, which waits for every write that owes the subscriber something (see recordEvents), then
 * what those writes left, seen by a later snapshot.
 */
export function removeSubscriber(t: Tables, name: string): Sql {
  return sql`SELECT r.removed AS "removed", r.deliveries AS "deliveries" FROM ${t.removeSubscriber}(${name}::text) r`;
}

/**
 * Gives a registered subscriber deliveries of events written before it was registered (since
 * `since`). Events written while it was registered were owed to it already — as delivery rows, or
 * as holds whose process delivered them and kept no row — so they are not replayed; but for those
 * of a transaction open while its registration committed, or begun before its time was fixed (see
 * registrationCommitted), which may come twice.
 */
export function replayEvents(t: Tables, subscriber: string, since: Date | undefined): Sql {
  return sql`
    WITH registered AS MATERIALIZED (
      -- Held as recordEvents holds it: a removal waits for this, or this skips what it removed.
      SELECT s.name, s.topics, s.registered_at FROM ${t.subscribers} s WHERE s.name = ${subscriber}
      FOR KEY SHARE OF s
    ), replayed AS MATERIALIZED (
      -- Each event held as the new row's foreign key would hold it, but before the insert: one
      -- retention deletes meanwhile is skipped here, where the foreign key would fail the replay.
      SELECT e.id, s.name FROM registered s
      JOIN ${t.outbox} e ON e.created_at <= s.registered_at
        AND ${WANTS_TOPIC}
      WHERE e.created_at >= COALESCE(${since ?? null}::timestamptz, '-infinity')
      ORDER BY e.id
      FOR KEY SHARE OF e
    ), added AS (
      INSERT INTO ${t.deliveries} (event_id, subscriber)
      SELECT r.id, r.name FROM replayed r
      ON CONFLICT DO NOTHING
      RETURNING 1)
    SELECT count(*)::int AS "added" FROM added`;
}

/** Holds of one subscriber taken over per relay claim at most (each names up to a group commit's events). */
const HOLDS_PER_CLAIM = 10;

/**
 * Takes up to `limit` due deliveries of one subscriber for an attempt: counts the attempt (which
 * names this claim) and keeps them from other relays for `leaseMs`; a relay that dies hands them
 * back when that runs out, and a live one extends it while it works (extendDeliveries). It also
 * takes over the subscriber's holds that ran out (their process died or stalled before settling
 * them): each becomes delivery rows for its events, claimed by this relay in the same call, so the
 * claim can return more than `limit` deliveries. See operation_deliveries_claim in the migrations:
 * a hold is deleted only there or by its settle (settleHolds), each under the row's lock, so its
 * events go to one of the two; and no step reads a whole table, whatever the statistics say.
 */
export function claimDeliveries(t: Tables, subscriber: string, limit: number, leaseMs: number): Sql {
  return sql`
    SELECT c.claimed_event_id::text AS "id", c.claimed_tenant_id AS "tenantId", c.claimed_topic AS "topic",
           c.claimed_aggregate_id::text AS "aggregateId", c.claimed_payload AS "payload",
           c.claimed_created_at AS "createdAt", c.claimed_attempts AS "attempts", c.claimed_attempt AS "attempt"
    FROM ${t.claimDeliveries}(${subscriber}::text, ${limit}::int, ${HOLDS_PER_CLAIM}::int, ${leaseMs / 1000}::float8) c
    ORDER BY c.claimed_event_id`;
}

/** A delivery as its outcome names it: the row, and the attempt count it was claimed with (its fence). */
export interface DeliveryRef {
  eventId: string;
  subscriber: string;
  /** The row's `attempts` when this delivery was claimed. */
  claimedAttempts: number;
}

/**
 * Records on the delivery rows `deliveries` names, only where each is still the claim it names (the
 * attempt count it was claimed with, not delivered, not dead), in a function whose plans do not
 * follow the statistics (operation_deliveries_record in the migrations): each row is locked by
 * primary key, checked as it is, and updated by primary key. Returns `changed`, the rows it changed.
 */
function record(
  t: Tables,
  deliveries: readonly DeliveryRef[],
  change: { delivered: boolean; failure: string | null; dead: boolean; dueAfterMs: number | null },
): Sql {
  return sql`${t.recordDeliveries}(
    ${deliveries.map((d) => d.eventId)}::bigint[], ${deliveries.map((d) => d.subscriber)}::text[],
    ${deliveries.map((d) => d.claimedAttempts)}::int[], ${change.delivered}::boolean, ${change.failure}::text,
    ${change.dead}::boolean, ${change.dueAfterMs === null ? null : change.dueAfterMs / 1000}::float8)`;
}

/**
 * Keeps claimed deliveries from other relays for another `leaseMs` while this one is still at work
 * on them — only while they are still this claim's.
 */
export function extendDeliveries(t: Tables, deliveries: readonly DeliveryRef[], leaseMs: number): Sql {
  const extend = record(t, deliveries, { delivered: false, failure: null, dead: false, dueAfterMs: leaseMs });
  return sql`SELECT ${extend} AS "changed"`;
}

/**
 * Records deliveries that succeeded, only where the row is still the claim it was taken with: a
 * delivery whose claim ran out and was taken by another relay records nothing.
 *
 * It commits without waiting for the WAL flush (`synchronous_commit` off for this transaction only;
 * it always runs in a transaction of its own, after the claim's commit): a mark lost in a crash of
 * the database makes the relay deliver again, which at-least-once delivery allows, and every later
 * synchronous commit flushes it.
 */
export function markDelivered(t: Tables, deliveries: readonly DeliveryRef[]): Sql {
  const delivered = record(t, deliveries, { delivered: true, failure: null, dead: false, dueAfterMs: null });
  return sql`SELECT ${delivered} AS "changed"
    FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit`;
}

/** Records a failed delivery (fenced as above): due again after `retryDelayMs`, or dead when null. */
export function markFailed(
  t: Tables,
  delivery: DeliveryRef,
  error: string,
  retryDelayMs: number | null,
): Sql {
  const failed = record(t, [delivery], {
    delivered: false,
    failure: error,
    dead: retryDelayMs === null,
    dueAfterMs: retryDelayMs,
  });
  return sql`SELECT ${failed} AS "changed"`;
}

/** Which dead deliveries to hand back to the relays. */
export interface DeadFilter {
  subscriber?: string;
  eventIds?: readonly string[];
  tenantId?: string;
}

/**
 * Dead deliveries due again, with a fresh budget of attempts. `attempts` keeps counting — it names
 * each claim, and a relay stalled since an earlier one must not find its number again — and the
 * budget counts from `spent_attempts`, moved up to it. Each event is held FOR KEY SHARE, as a new
 * delivery row's foreign key holds it: retention, which deletes the event under its lock and
 * decides only after taking it, either sees the revived row or has deleted the event before this
 * gets to it (then it is not revived, nor counted). Rows are locked in key order, as a relay's
 * records lock them.
 */
export function redeliverDead(t: Tables, filter: DeadFilter): Sql {
  return sql`
    WITH locked AS MATERIALIZED (
      SELECT d.event_id, d.subscriber FROM ${t.deliveries} d
      JOIN ${t.outbox} e ON e.id = d.event_id
      WHERE d.dead_at IS NOT NULL
        AND (${filter.subscriber ?? null}::text IS NULL OR d.subscriber = ${filter.subscriber ?? null})
        AND (${filter.eventIds ?? null}::bigint[] IS NULL OR d.event_id = ANY(${filter.eventIds ?? null}::bigint[]))
        AND (${filter.tenantId ?? null}::text IS NULL OR e.tenant_id = ${filter.tenantId ?? null})
      ORDER BY d.event_id, d.subscriber
      FOR KEY SHARE OF e FOR UPDATE OF d
    ), revived AS (
      UPDATE ${t.deliveries} d SET dead_at = NULL, spent_attempts = d.attempts, available_at = ${dueAt()}
      FROM locked l
      WHERE d.event_id = l.event_id AND d.subscriber = l.subscriber AND d.dead_at IS NOT NULL
      RETURNING 1)
    SELECT count(*)::int AS "redelivered" FROM revived`;
}

/** How the inline deliveries of one hold went: the events its subscriber did not take (it took the others). */
export interface HoldSettlement {
  hold: string;
  failures: readonly { eventId: string; error: string; retryDelayMs: number | null }[];
}

/**
 * Settles holds whose inline deliveries have been made: deletes each hold still there and, in the
 * same statement, gives each failed delivery of it a delivery row for the relays, its first attempt
 * counted — due again after its retry delay, or dead when that is null. A hold a relay has taken
 * over already (it ran out first) settles nothing: its events are that relay's, and are delivered
 * once more. A delivery that succeeded leaves no row.
 *
 * It commits without waiting for the WAL flush, as markDelivered does: a settle lost in a crash of
 * the database leaves its holds to run out and be delivered again. This takes a disk flush off
 * every submit and every group commit.
 */
export function settleHolds(t: Tables, settlements: readonly HoldSettlement[]): Sql {
  const failures = settlements.flatMap((settlement) =>
    settlement.failures.map((failure) => ({ hold: settlement.hold, ...failure })),
  );
  return sql`
    WITH settled AS (
      DELETE FROM ${t.holds} h
      USING (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
      WHERE h.id = ANY(${settlements.map((settlement) => settlement.hold)}::bigint[])
      RETURNING h.id, h.subscriber
    ), failed AS (
      INSERT INTO ${t.deliveries} (event_id, subscriber, attempts, last_error, available_at, dead_at)
      SELECT f.event_id, s.subscriber, 1, f.error,
             CASE WHEN f.delay_s IS NULL THEN now() ELSE ${dueAt(sql`make_interval(secs => f.delay_s)`)} END,
             CASE WHEN f.delay_s IS NULL THEN now() END
      FROM unnest(${failures.map((f) => f.hold)}::bigint[], ${failures.map((f) => f.eventId)}::bigint[],
                  ${failures.map((f) => f.error)}::text[],
                  ${failures.map((f) => (f.retryDelayMs === null ? null : f.retryDelayMs / 1000))}::float8[])
        AS f(hold, event_id, error, delay_s)
      JOIN settled s ON s.id = f.hold
      ON CONFLICT DO NOTHING
      RETURNING 1
    )
    SELECT (SELECT count(*) FROM settled)::int AS "settled", (SELECT count(*) FROM failed)::int AS "failed"`;
}
