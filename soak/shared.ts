// What the soak's orchestrator and its worker nodes share: the operation types and the handler
// behaviours the chaos mixes.
import { z } from "zod";
import { defineOperationType } from "../src";
import type { CutKind } from "./proxy";

/**
 * How a handler behaves, chosen per operation by the submitter:
 * - ok: returns at once
 * - flaky: fails (retryably) on its first attempt, then succeeds
 * - broken: always fails (retryably): ends failed when attempts run out
 * - fatal: throws NonRetryableError
 * - slow: runs 20–200 ms, honouring its signal
 * - stuck: outruns its type's timeout on the first attempt, then succeeds
 * - long: runs `ms` (seconds, for soak.long), honouring its signal: the runs a partition cuts
 * - nulError, surrogateError, hugeError: throw errors whose text PostgreSQL cannot store as it is —
 *   a message with a NUL (JSON.parse's own SyntaxError), a lone surrogate (in the name too; this
 *   one is a NonRetryableError), a 1 MB message — on every attempt
 * - nulResult, surrogateResult, deepResult, largeResult: return results jsonb cannot take as they
 *   are: a NUL, a lone surrogate, 1,000 levels of nesting, `ms` bytes of text (over or under the
 *   1 MB limit)
 * Every error a handler throws starts with printable text of its own ("broken:", "odd-nul:", …),
 * which its run records, so that the checks can tell its stored error from one the module wrote.
 */
export const MODES = [
  "ok",
  "flaky",
  "broken",
  "fatal",
  "slow",
  "stuck",
  "long",
  "nulError",
  "surrogateError",
  "hugeError",
  "nulResult",
  "surrogateResult",
  "deepResult",
  "largeResult",
] as const;
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
  /** Runs of seconds (mode "long"), so that a partition of their node overlaps them. */
  "soak.long": defineOperationType({
    payload: Task,
    maxAttempts: 3,
    retryBackoff: fastRetries,
    timeoutMs: 30_000,
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

/**
 * The subscribers of the operator races, delivered by the orchestrator's own relay (no node has
 * them), so that the nodes' subscribers stay registered before any write and their checks whole:
 * - soak-flaky (batch ends, submits, failed operations) fails 40% of its deliveries while the chaos
 *   runs and has OPERATOR_OUTBOX's 2 attempts, so deliveries die and `redeliverDead` revives them
 *   (the oldest dead first: those the pruner is about to delete); registered before any write and
 *   never removed, so it is checked like the others.
 * - soak-occasional (every topic) is the one the clients register, remove and replay to while
 *   writes go on; the chaos ends with it removed. Of its deliveries the checks ask only that each
 *   was of an event that existed — and that none of its rows or holds outlives its registration.
 * `failing` says whether the chaos still runs; `random` picks the failures.
 */
export const FLAKY = "soak-flaky";
export const OCCASIONAL = "soak-occasional";
export const FLAKY_TOPICS = [
  "batch.submitted",
  "batch.completed",
  "batch.failed",
  "batch.cancelled",
  "operation.failed",
];
export const OPERATOR_OUTBOX = { maxAttempts: 2 };

export function operatorSubscribers(log: DeliveryLog, failing: () => boolean, random: () => number) {
  const record = (event: { id: string; topic: string; aggregateId: string }, subscriber: string) =>
    log.query(
      `INSERT INTO soak_deliveries (event_id, topic, aggregate_id, node, subscriber) VALUES ($1, $2, $3, 'orchestrator', $4)`,
      [event.id, event.topic, event.aggregateId, subscriber],
    );
  return {
    flaky: {
      name: FLAKY,
      topics: FLAKY_TOPICS,
      async deliver(event: { id: string; topic: string; aggregateId: string }) {
        if (failing() && random() < 0.4) throw new Error("flaky subscriber refuses");
        await record(event, FLAKY);
      },
    },
    occasional: {
      name: OCCASIONAL,
      async deliver(event: { id: string; topic: string; aggregateId: string }) {
        if (failing() && random() < 0.2) throw new Error("occasional subscriber refuses");
        await record(event, OCCASIONAL);
      },
    },
  };
}

/**
 * The soak's clock, in milliseconds since the epoch: the same on every process of this machine
 * (each process's monotonic clock from its own origin), so a node's handler start can be compared
 * with the orchestrator's cancel or partition.
 */
export const clock = (): number => performance.timeOrigin + performance.now();

/** A handler run as its node reports it over IPC. */
export interface RunStart {
  runId: string;
  operationId: string;
  batchId: string | null;
  node: string;
  pid: number;
  attempt: number;
  mode: string;
  at: number;
}

/**
 * How a run stopped: its function returned or threw — "aborted" when its signal had fired by
 * then (the handlers honour it at once), "snoozed" when it handed its claim back without using
 * the attempt — the start of what it threw (printable text only), and why its signal fired.
 */
export interface RunStop {
  runId: string;
  at: number;
  outcome: "returned" | "threw" | "aborted" | "snoozed";
  errorHead: string | null;
  /** The name of its signal's reason when aborted (LeaseLost, OperationCancelled, …). */
  abortedBy: string | null;
}

/** What the orchestrator asks of the network process (soak/network.ts). */
export type NetworkRequest =
  | { kind: "proxy"; nodes: string[] }
  | { kind: "cut"; node: string; how: CutKind }
  | { kind: "restore"; node: string };

/** What the network process answers (a cut or restore with when it took effect), and its stalls. */
export type NetworkReply =
  | { kind: "ports"; ports: Record<string, number> }
  | { kind: "cut"; node: string; at: number }
  | { kind: "restored"; node: string; at: number }
  | { kind: "stall"; began: number; ended: number };

export type NodeMessage =
  | { kind: "ready"; node: string }
  | { kind: "start"; run: RunStart }
  | { kind: "stop"; stop: RunStop }
  | { kind: "stall"; began: number; ended: number }
  | { kind: "log"; level: "warn" | "error"; message: string; detail: string | null; at: number };

/**
 * A process whose event loop stood still this long may have let a lease lapse (a node's heartbeats
 * come every third of its lease): a stall is a reason of the machine's making, as a kill or a
 * partition is of the soak's, for a run's outcome to be lost.
 */
export const STALL_MS = 1_000;

/** Calls `report` with each stall of this process's event loop of STALL_MS or more. */
export function watchStalls(report: (began: number, ended: number) => void): void {
  let last = clock();
  setInterval(() => {
    const now = clock();
    if (now - last >= STALL_MS + 100) report(last + 100, now);
    last = now;
  }, 100).unref();
}

/**
 * The soak's own tables. Times in float8 columns are the soak's `clock` (ms since the epoch):
 * handler runs as their nodes report them, node processes' lives, stalls and logs, partitions, and what the clients
 * did that the checks compare with (cancels and retries that returned, dead deliveries revived,
 * removals of soak-occasional). The orchestrator writes them once the chaos is over.
 */
export const SOAK_TABLES = `
  CREATE TABLE soak_runs (run_id uuid PRIMARY KEY, operation_id uuid NOT NULL, batch_id uuid, node text NOT NULL,
                          pid int NOT NULL, attempt int NOT NULL, mode text NOT NULL,
                          started float8 NOT NULL, stopped float8, outcome text, error_head text, aborted_by text,
                          started_at timestamptz GENERATED ALWAYS AS (to_timestamp(started / 1000)) STORED);
  CREATE TABLE soak_lives (node text NOT NULL, pid int NOT NULL, started float8 NOT NULL, exited float8 NOT NULL,
                           how text NOT NULL);
  CREATE TABLE soak_partitions (node text NOT NULL, kind text NOT NULL, cut float8 NOT NULL, restored float8 NOT NULL);
  -- A node process's event loop standing still (pid null: the network process's, which proxies the node).
  CREATE TABLE soak_stalls (node text NOT NULL, pid int, began float8 NOT NULL, ended float8 NOT NULL);
  -- The module's warnings and errors in the node processes.
  CREATE TABLE soak_logs (node text NOT NULL, pid int NOT NULL, at float8 NOT NULL, level text NOT NULL,
                          message text NOT NULL, detail text);
  CREATE TABLE soak_cancels (target uuid NOT NULL, called float8 NOT NULL, returned float8 NOT NULL);
  CREATE TABLE soak_retries (target uuid NOT NULL, called float8 NOT NULL, returned float8 NOT NULL);
  CREATE TABLE soak_revivals (event_id bigint NOT NULL, subscriber text NOT NULL, called float8 NOT NULL,
                              returned float8 NOT NULL);
  CREATE TABLE soak_removals (subscriber text NOT NULL, called float8 NOT NULL, returned float8 NOT NULL);
  CREATE TABLE soak_deliveries (event_id bigint NOT NULL, topic text NOT NULL, aggregate_id uuid NOT NULL,
                                node text NOT NULL, subscriber text NOT NULL,
                                at timestamptz NOT NULL DEFAULT clock_timestamp());
  CREATE INDEX ON soak_runs (operation_id);
  CREATE INDEX ON soak_runs (batch_id);
  -- What retention deletes is copied here, so that the history checks still see every event, the
  -- idempotency check knows which batches are gone (a key may then name a new one), the error
  -- checks see how every operation ended (the start of its error message is enough), and the
  -- delivery checks know which deliveries were dead when deleted (kept as long as retention says).
  CREATE TABLE soak_pruned_events AS SELECT * FROM operation_outbox WHERE false;
  CREATE TABLE soak_pruned_batches (id uuid NOT NULL, tenant_id text NOT NULL);
  CREATE TABLE soak_pruned_operations (id uuid NOT NULL, batch_id uuid, status text NOT NULL, attempts int NOT NULL,
                                       error_name text, error_head text);
  CREATE TABLE soak_pruned_dead (event_id bigint NOT NULL, subscriber text NOT NULL, dead_at timestamptz NOT NULL);
  CREATE FUNCTION soak_keep_dead() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO soak_pruned_dead VALUES (OLD.event_id, OLD.subscriber, OLD.dead_at); RETURN OLD; END $$;
  CREATE FUNCTION soak_keep_event() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO soak_pruned_events SELECT OLD.*; RETURN OLD; END $$;
  CREATE FUNCTION soak_keep_batch() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO soak_pruned_batches VALUES (OLD.id, OLD.tenant_id); RETURN OLD; END $$;
  CREATE FUNCTION soak_keep_operation() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO soak_pruned_operations
      VALUES (OLD.id, OLD.batch_id, OLD.status::text, OLD.attempts, OLD.error->>'name', left(OLD.error->>'message', 200));
      RETURN OLD;
    END $$;
  CREATE TRIGGER soak_keep_event AFTER DELETE ON operation_outbox FOR EACH ROW EXECUTE FUNCTION soak_keep_event();
  CREATE TRIGGER soak_keep_batch AFTER DELETE ON operation_batches FOR EACH ROW EXECUTE FUNCTION soak_keep_batch();
  CREATE TRIGGER soak_keep_dead AFTER DELETE ON operation_deliveries FOR EACH ROW WHEN (OLD.dead_at IS NOT NULL)
    EXECUTE FUNCTION soak_keep_dead();
  CREATE TRIGGER soak_keep_operation AFTER DELETE ON operations FOR EACH ROW EXECUTE FUNCTION soak_keep_operation();
  CREATE VIEW soak_all_events AS
    SELECT * FROM operation_outbox UNION ALL SELECT * FROM soak_pruned_events;
  CREATE VIEW soak_all_operations AS
    SELECT id, batch_id, status::text AS status, attempts, error->>'name' AS error_name,
           left(error->>'message', 200) AS error_head
    FROM operations
    UNION ALL SELECT * FROM soak_pruned_operations;
  CREATE INDEX ON soak_deliveries (event_id);`;

export const OUTBOX_BACKOFF = { baseMs: 100, maxMs: 1_000, jitter: 0.5 };

/** Events a killed process committed but did not deliver come back to the relays after this. */
export const INLINE_LEASE_MS = 3_000;
