// What the soak's orchestrator and its worker nodes share: the operation types and the handler
// behaviours the chaos mixes.
import { z } from "zod";
import { defineOperationType } from "../src";

/**
 * How a handler behaves, chosen per operation by the submitter:
 * - ok: returns at once
 * - flaky: fails (retryably) on its first attempt, then succeeds
 * - broken: always fails (retryably): ends failed when attempts run out
 * - fatal: throws NonRetryableError
 * - slow: runs 20–200 ms, honouring its signal
 * - stuck: outruns its type's timeout on the first attempt, then succeeds
 */
export const MODES = ["ok", "flaky", "broken", "fatal", "slow", "stuck"] as const;
export type Mode = (typeof MODES)[number];

const Task = z.object({ n: z.number().int(), mode: z.enum(MODES), ms: z.number().int().nonnegative() });

const fastRetries = { baseMs: 50, maxMs: 400, jitter: 0.5 };

/** The running limits of `soak.limited`, across every node. */
export const LIMITS = { total: 4, perTenant: 2 };

export const soakTypes = {
  "soak.task": defineOperationType({
    payload: Task,
    maxAttempts: 3,
    retryBackoff: fastRetries,
    timeoutMs: 1_000,
  }),
  /** The same work under running limits, which the soak samples continuously. */
  "soak.limited": defineOperationType({
    payload: Task,
    maxAttempts: 3,
    retryBackoff: fastRetries,
    timeoutMs: 1_000,
    concurrency: LIMITS,
  }),
};

export type SoakTypes = typeof soakTypes;

/** Short leases, so that a killed worker's rows come back within seconds. */
export const LEASE_MS = 3_000;

/** Where a node or the submitter records the deliveries it makes. */
export interface DeliveryLog {
  query(text: string, values: unknown[]): Promise<unknown>;
}

/** Topics of the slow subscriber: a batch's end, as a report to a slow external system would be. */
export const SLOW_TOPICS = ["batch.completed", "batch.failed", "batch.cancelled"];

/**
 * The soak's subscribers, each recording every delivery it gets: a fast one that fails one delivery
 * in twenty on purpose (so that its deliveries have to be retried), and a slow one (0.5–2 s per
 * delivery, batch ends only) that never fails — one failing or dawdling subscriber must not
 * disturb the other. `random` picks the slow one's delay.
 */
export function soakSubscribers(log: DeliveryLog, node: string, random: () => number = Math.random) {
  let deliveries = 0;
  const record = (event: { id: string; topic: string; aggregateId: string }, subscriber: string) =>
    log.query(
      `INSERT INTO soak_deliveries (event_id, topic, aggregate_id, node, subscriber) VALUES ($1, $2, $3, $4, $5)`,
      [event.id, event.topic, event.aggregateId, node, subscriber],
    );
  return [
    {
      name: "soak-recorder",
      async deliver(event: { id: string; topic: string; aggregateId: string }) {
        if (++deliveries % 20 === 0) throw new Error("subscriber hiccup");
        await record(event, "soak-recorder");
      },
    },
    {
      name: "soak-slow",
      topics: SLOW_TOPICS,
      async deliver(event: { id: string; topic: string; aggregateId: string }) {
        await new Promise((resolve) => setTimeout(resolve, 500 + random() * 1_500));
        await record(event, "soak-slow");
      },
    },
  ];
}

export const SOAK_TABLES = `
  CREATE TABLE soak_runs (operation_id uuid NOT NULL, node text NOT NULL, attempt int NOT NULL,
                          started_at timestamptz NOT NULL DEFAULT clock_timestamp());
  CREATE TABLE soak_deliveries (event_id bigint NOT NULL, topic text NOT NULL, aggregate_id uuid NOT NULL,
                                node text NOT NULL, subscriber text NOT NULL,
                                at timestamptz NOT NULL DEFAULT clock_timestamp());
  CREATE INDEX ON soak_runs (operation_id);
  -- What retention deletes is copied here, so that the history checks still see every event, and
  -- the idempotency check knows which batches are gone (a key may then name a new one).
  CREATE TABLE soak_pruned_events AS SELECT * FROM operation_outbox WHERE false;
  CREATE TABLE soak_pruned_batches (id uuid NOT NULL, tenant_id text NOT NULL);
  CREATE FUNCTION soak_keep_event() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO soak_pruned_events SELECT OLD.*; RETURN OLD; END $$;
  CREATE FUNCTION soak_keep_batch() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO soak_pruned_batches VALUES (OLD.id, OLD.tenant_id); RETURN OLD; END $$;
  CREATE TRIGGER soak_keep_event AFTER DELETE ON operation_outbox FOR EACH ROW EXECUTE FUNCTION soak_keep_event();
  CREATE TRIGGER soak_keep_batch AFTER DELETE ON operation_batches FOR EACH ROW EXECUTE FUNCTION soak_keep_batch();
  CREATE VIEW soak_all_events AS
    SELECT * FROM operation_outbox UNION ALL SELECT * FROM soak_pruned_events;
  CREATE INDEX ON soak_deliveries (event_id);`;

export const OUTBOX_BACKOFF = { baseMs: 100, maxMs: 1_000, jitter: 0.5 };

/** Events a killed process committed but did not deliver come back to the relays after this. */
export const INLINE_LEASE_MS = 3_000;
