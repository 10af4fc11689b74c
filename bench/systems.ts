// The systems under comparison, each behind the same calls. Every (system, scenario, run) runs in a
// fresh process on a fresh database (see run.ts), so no system inherits another's warm caches; each
// gets its setup, `ANALYZE` and an untimed warm-up before anything is timed (see scenario.ts).
// Settings, with their sources, are in settings.ts.
import { Pool, type PoolClient } from "pg";
import { z } from "zod";
import { PrismaPg } from "@prisma/adapter-pg";
import { applyMigrations, createOperations, defineOperationType, preparedStatementNames } from "../src";
import type { DeliveredEvent, EventSubscriber } from "../src";
import { uuidv7 } from "../src/domain/ids";
import { PrismaClient } from "../src/generated/prisma/client";
import { Connection } from "../src/store/connection";
import type { Store } from "../src/store/store";
import { Counter, withClient } from "./common";
import { CONCURRENCY, GRAPHILE_LATENCY_PRESET, GRAPHILE_PRESET, PGBOSS_THROUGHPUT } from "./settings";

/** Job kinds: `bench` is timed, `warm` only warms a process up. */
export type JobType = "bench" | "warm";

export interface DrainResult {
  /** From starting the worker until it has stopped with every outcome recorded. */
  ms: number;
  /** From starting the worker until the last handler ran. */
  handlersMs: number;
}

export interface System {
  /** Migrations, queues. Idempotent: a database is set up by its seeding process and again by its run. */
  setup(): Promise<void>;
  /** Writes `batches` batches of `size` jobs, one batch per call/transaction, in sequence. */
  submit(batches: number, size: number, type?: JobType): Promise<void>;
  /** Runs a worker for `type` until `total` jobs have run and been recorded, then stops it. */
  drain(total: number, type: JobType): Promise<DrainResult>;
  /** Checks, untimed, that `total` jobs of `type` were recorded as done (throws otherwise). */
  verifyDrained(total: number, type: JobType): Promise<void>;
  /** One job at a time: ms from calling submit to the handler starting, `count` times. */
  latency(count: number): Promise<number[]>;
  close(): Promise<void>;
}

const items = (size: number) => Array.from({ length: size }, (_, n) => ({ n }));

export async function one(url: string, sql: string, params: unknown[] = []): Promise<number> {
  return withClient(url, async (client) => Number((await client.query(sql, params)).rows[0].n));
}

function expect(what: string, actual: number, expected: number): void {
  if (actual !== expected) throw new Error(`${what}: ${actual}, expected ${expected}`);
}

// --- ours ---------------------------------------------------------------------------------------

export const benchTypes = {
  bench: defineOperationType({ payload: z.object({ n: z.number().int() }), maxAttempts: 3 }),
  warm: defineOperationType({ payload: z.object({ n: z.number().int() }), maxAttempts: 3 }),
};

/** What ours is given to reach the database (spread `client` into createOperations), and how to end it. */
export interface OurConnection {
  client: { prisma: PrismaClient; pool?: Pool };
  /** Ends the client and the pool. */
  close(): Promise<void>;
}

/**
 * Our client as the README's quick start makes it: a `pg` pool, the Prisma client built on it, and
 * the pool handed to the module too (its statements then skip Prisma's query pipeline). With
 * `usePool` false, the client alone, with the module's statements prepared through the adapter
 * (`preparedStatementNames()`): what an app gets that does not pass the pool.
 */
export function ourConnection(url: string, usePool = true): OurConnection {
  if (!usePool) {
    const prisma = new PrismaClient({
      adapter: new PrismaPg({ connectionString: url }, { statementNameGenerator: preparedStatementNames() }),
    });
    return { client: { prisma }, close: () => prisma.$disconnect() };
  }
  const pool = new Pool({ connectionString: url });
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });
  return {
    client: { prisma, pool },
    async close() {
      await prisma.$disconnect();
      await pool.end();
    },
  };
}

/** A Store on the connection as the module makes one (the pool's, when there is one), for tools that time its statements. */
export function ourStore({ client }: OurConnection): Store {
  return new Connection(client).store;
}

/** The in-process subscriber attached to ours: counts deliveries by topic and operation type. */
export class CountingSubscriber implements EventSubscriber {
  readonly name = "bench";
  readonly delivered = new Map<string, number>();

  deliver(event: DeliveredEvent): void {
    const type = (event.payload as { type?: string } | null)?.type ?? "";
    const key = `${event.topic}:${type}`;
    this.delivered.set(key, (this.delivered.get(key) ?? 0) + 1);
  }
}

export async function ours(url: string, usePool = true): Promise<System> {
  const connection = ourConnection(url, usePool);
  const subscriber = new CountingSubscriber();
  // The default logger: the module's warnings and errors go to stderr.
  const ops = createOperations({ ...connection.client, types: benchTypes, subscribers: [subscriber] });
  const workerOptions = {
    concurrency: CONCURRENCY,
    // Only sweep.ts sets this, to try other values.
    ...(JSON.parse(process.env.BENCH_OURS_WORKER ?? "{}") as Record<string, number>),
  };
  const handled = new Counter();
  const worker = (handler: () => void, type: JobType) =>
    ops.createWorker({
      handlers: (type === "bench" ? { bench: handler } : { warm: handler }) as never,
      ...workerOptions,
      listen: { connectionString: url },
    });
  return {
    async setup() {
      await withClient(url, (client) => applyMigrations(client));
      await ops.ready();
    },
    async submit(batches, size, type = "bench") {
      for (let b = 0; b < batches; b++)
        await ops.submitBatch({ tenantId: "bench", type, items: items(size) });
    },
    async drain(total, type) {
      const done = handled.until(total);
      const started = performance.now();
      const running = worker(() => handled.add(), type);
      await running.start();
      await done;
      const handlersMs = performance.now() - started;
      await running.stop();
      return { ms: performance.now() - started, handlersMs };
    },
    async verifyDrained(total, type) {
      expect(
        `ours: completed ${type} operations`,
        await one(url, `SELECT count(*) AS n FROM operations WHERE type = $1 AND status = 'completed'`, [
          type,
        ]),
        total,
      );
      expect(
        "ours: deliveries to the bench subscriber still owed (delivery rows not delivered, holds not settled)",
        await one(
          url,
          `SELECT (SELECT count(*) FROM operation_deliveries WHERE delivered_at IS NULL AND subscriber = 'bench')
                + (SELECT count(*) FROM operation_delivery_holds WHERE subscriber = 'bench') AS n`,
        ),
        0,
      );
      expect(
        `ours: operation.completed events of ${type} delivered to the subscriber`,
        subscriber.delivered.get(`operation.completed:${type}`) ?? 0,
        total,
      );
    },
    async latency(count) {
      let started: (() => void) | undefined;
      const running = worker(() => started?.(), "bench");
      await running.start();
      const samples: number[] = [];
      for (let i = 0; i < count; i++) {
        const handlerStarted = new Promise<void>((resolve) => (started = resolve));
        const t0 = performance.now();
        await ops.submitOperation({ tenantId: "bench", type: "bench", payload: { n: i } });
        await handlerStarted;
        samples.push(performance.now() - t0);
      }
      await running.stop();
      return samples;
    },
    async close() {
      await connection.close();
    },
  };
}

// --- raw SQL: the same work as ours, set-based ---------------------------------------------------

/** Rows claimed per statement by the raw ceiling. */
export const RAW_CLAIM = 1000;
/** Connections (claim-run-complete loops) of the raw ceiling; see settings.ts. */
export const RAW_CONNECTIONS = Number(process.env.BENCH_RAW_CONNECTIONS ?? 4);

const RAW_INSERT_BATCH = `
  WITH parent AS (
    INSERT INTO operation_batches (id, tenant_id, type, child_count) VALUES ($1, 'bench', $4, cardinality($2::uuid[]))
    RETURNING id, tenant_id, type, child_count
  ), children AS (
    INSERT INTO operations (id, tenant_id, batch_id, type, payload, max_attempts)
    SELECT c.id, p.tenant_id, p.id, p.type, c.payload, 3
    FROM parent p, unnest($2::uuid[], $3::jsonb[]) AS c(id, payload)
    RETURNING 1
  ), events AS (
    INSERT INTO operation_outbox (tenant_id, topic, aggregate_id, payload)
    SELECT tenant_id, 'batch.submitted', id, jsonb_build_object('batchId', id, 'type', type, 'childCount', child_count)
    FROM parent
    RETURNING id
  ), holds AS (
    INSERT INTO operation_delivery_holds (subscriber, event_ids, held_until)
    SELECT s.name, array_agg(e.id), now() + interval '60 seconds' FROM events e CROSS JOIN operation_subscribers s
    GROUP BY s.name
    RETURNING id, event_ids
  )
  SELECT (SELECT count(*) FROM children)::int AS children, (SELECT array_agg(id) FROM holds) AS holds,
         (SELECT cardinality(event_ids) FROM holds LIMIT 1) AS events,
         pg_notify('prisma_operations_wake', $4) AS woke`;

const RAW_CLAIM_SQL = `
  WITH picked AS (
    SELECT id FROM operations
    WHERE status = 'pending' AND run_at <= now() AND type = $2
    ORDER BY run_at, id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
  ), claimed AS (
    UPDATE operations o
    SET status = 'processing', locked_by = 'raw', locked_until = now() + interval '30 seconds',
        lock_token = gen_random_uuid(), attempts = o.attempts + 1, started_at = COALESCE(o.started_at, now()),
        updated_at = now()
    FROM picked WHERE o.id = picked.id AND o.status = 'pending'
    RETURNING o.id, o.batch_id, o.payload, o.lock_token
  ), started AS (
    UPDATE operation_batches b SET status = 'processing', started_at = COALESCE(b.started_at, now()), updated_at = now()
    WHERE b.id IN (SELECT batch_id FROM claimed) AND b.status = 'pending'
  )
  SELECT id::text, payload, lock_token::text FROM claimed`;

const RAW_COMPLETE_SQL = `
  WITH done AS (
    UPDATE operations o
    SET status = 'completed', result = 'null'::jsonb, locked_by = NULL, locked_until = NULL, lock_token = NULL,
        finished_at = now(), updated_at = now()
    FROM unnest($1::uuid[], $2::uuid[]) AS u(id, token)
    WHERE o.id = u.id AND o.lock_token = u.token AND o.status = 'processing'
    RETURNING o.id, o.tenant_id, o.batch_id, o.type, o.attempts
  ), counts AS (
    SELECT batch_id, count(*)::int AS n FROM done WHERE batch_id IS NOT NULL GROUP BY batch_id
  ), parent AS (
    UPDATE operation_batches b
    SET completed_count = b.completed_count + c.n,
        status = CASE WHEN b.completed_count + c.n + b.failed_count + b.cancelled_count = b.child_count
                      THEN (CASE WHEN b.failed_count > 0 THEN 'failed' WHEN b.cancelled_count > 0 THEN 'cancelled'
                                 ELSE 'completed' END)::batch_status
                      ELSE b.status END,
        finished_at = CASE WHEN b.completed_count + c.n + b.failed_count + b.cancelled_count = b.child_count
                           THEN now() END,
        updated_at = now()
    FROM counts c WHERE b.id = c.batch_id
    RETURNING b.id, b.tenant_id, b.type, b.status, b.child_count, b.completed_count, b.failed_count,
      b.cancelled_count, b.episode
  ), events AS (
    INSERT INTO operation_outbox (tenant_id, topic, aggregate_id, payload)
    SELECT tenant_id, 'operation.completed', id, jsonb_build_object('operationId', id, 'batchId', batch_id,
      'type', type, 'status', 'completed', 'attempts', attempts)
    FROM done
    UNION ALL
    SELECT tenant_id, 'batch.' || status, id, jsonb_build_object('batchId', id, 'type', type, 'status', status,
      'childCount', child_count, 'completed', completed_count, 'failed', failed_count,
      'cancelled', cancelled_count, 'episode', episode)
    FROM parent WHERE status IN ('completed', 'failed', 'cancelled')
    RETURNING id, tenant_id, topic, aggregate_id, payload, created_at
  ), holds AS (
    INSERT INTO operation_delivery_holds (subscriber, event_ids, held_until)
    SELECT s.name, array_agg(e.id), now() + interval '60 seconds' FROM events e CROSS JOIN operation_subscribers s
    GROUP BY s.name
    RETURNING id
  )
  SELECT e.id::text, e.tenant_id, e.topic, e.aggregate_id::text, e.payload, e.created_at,
         (SELECT array_agg(id) FROM holds) AS holds
  FROM events e`;

/** The holds settled: their events were delivered in process (as ours does, without waiting for the flush). */
const RAW_SETTLE_SQL = `
  DELETE FROM operation_delivery_holds USING (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
  WHERE id = ANY($1::bigint[])`;

export async function raw(url: string): Promise<System> {
  const pool = new Pool({ connectionString: url, max: RAW_CONNECTIONS + 2 });
  const subscriber = new CountingSubscriber();
  const handled = new Counter();
  const insert = async (size: number, type: JobType) => {
    const { rows } = await pool.query<{ holds: string[] | null; events: number | null }>(RAW_INSERT_BATCH, [
      uuidv7(),
      Array.from({ length: size }, () => uuidv7()),
      Array.from({ length: size }, (_, n) => `{"n":${n}}`),
      type,
    ]);
    // As ours does after commit: deliver the submit's event in process, then settle its hold.
    for (let i = 0; i < (rows[0]?.events ?? 0); i++)
      subscriber.deliver({ topic: "batch.submitted" } as DeliveredEvent);
    const holds = rows[0]?.holds ?? [];
    if (holds.length) await pool.query(RAW_SETTLE_SQL, [holds]);
  };
  return {
    async setup() {
      await withClient(url, async (client) => {
        await applyMigrations(client);
        await client.query(
          `INSERT INTO operation_subscribers (name, topics) VALUES ('bench', '{}') ON CONFLICT (name) DO NOTHING`,
        );
      });
    },
    async submit(batches, size, type = "bench") {
      for (let b = 0; b < batches; b++) await insert(size, type);
    },
    async drain(total, type) {
      const done = handled.until(total);
      const started = performance.now();
      let deadlocks = 0;
      let handlersMs = 0;
      void done.then(() => (handlersMs = performance.now() - started));
      // Loops claim and complete children of the same batches, whose rows they update in no set
      // order: a deadlock rolls one statement back whole, and it is simply run again (a claim then
      // takes other rows; a completion's claims still hold).
      const query = async <R extends object>(client: PoolClient, sql: string, values: unknown[]) => {
        for (;;) {
          try {
            return (await client.query<R>(sql, values)).rows;
          } catch (error) {
            if ((error as { code?: string }).code !== "40P01") throw error;
            deadlocks++;
          }
        }
      };
      await Promise.all(
        Array.from({ length: RAW_CONNECTIONS }, async () => {
          const client = await pool.connect();
          try {
            for (;;) {
              const rows = await query<{ id: string; payload: unknown; lock_token: string }>(
                client,
                RAW_CLAIM_SQL,
                [RAW_CLAIM, type],
              );
              if (rows.length === 0) return;
              // The handlers (no-ops, like every system's here), CONCURRENCY at a time.
              for (let i = 0; i < rows.length; i += CONCURRENCY) {
                await Promise.all(rows.slice(i, i + CONCURRENCY).map(async () => handled.add()));
              }
              const events = await query<{
                id: string;
                topic: string;
                payload: unknown;
                holds: string[] | null;
              }>(client, RAW_COMPLETE_SQL, [rows.map((row) => row.id), rows.map((row) => row.lock_token)]);
              for (const event of events) subscriber.deliver(event as unknown as DeliveredEvent);
              const holds = events[0]?.holds ?? [];
              if (holds.length) await query(client, RAW_SETTLE_SQL, [holds]);
            }
          } finally {
            client.release();
          }
        }),
      );
      await done;
      if (deadlocks) console.error(`[raw] ${deadlocks} statement(s) deadlocked and were run again`);
      return { ms: performance.now() - started, handlersMs };
    },
    async verifyDrained(total, type) {
      expect(
        `raw: completed ${type} operations`,
        await one(url, `SELECT count(*) AS n FROM operations WHERE type = $1 AND status = 'completed'`, [
          type,
        ]),
        total,
      );
      expect(
        "raw: deliveries still owed (delivery rows not delivered, holds not settled)",
        await one(
          url,
          `SELECT (SELECT count(*) FROM operation_deliveries WHERE delivered_at IS NULL)
                + (SELECT count(*) FROM operation_delivery_holds) AS n`,
        ),
        0,
      );
      expect(
        `raw: operation.completed events of ${type} delivered`,
        subscriber.delivered.get(`operation.completed:${type}`) ?? 0,
        total,
      );
    },
    latency: () => Promise.resolve([]),
    close: () => pool.end(),
  };
}

// --- pg-boss 12 ----------------------------------------------------------------------------------

async function startPgBoss(url: string) {
  const { PgBoss } = await import("pg-boss");
  const boss = new PgBoss({ connectionString: url, max: 20, useListenNotify: true, schedule: false });
  boss.on("error", (error) => console.error(`[pg-boss error] ${error.message}`));
  boss.on("warning", (warning) =>
    console.error(`[pg-boss warning] ${warning.message} ${JSON.stringify(warning.data)}`),
  );
  await boss.start();
  return boss;
}

export async function pgboss(url: string): Promise<System> {
  const boss = await startPgBoss(url);
  const handled = new Counter();
  const jobs = (size: number) => Array.from({ length: size }, (_, n) => ({ data: { n } }));
  return {
    async setup() {
      for (const name of ["bench", "warm"]) {
        if (!(await boss.getQueue(name))) await boss.createQueue(name, { notify: true });
      }
    },
    async submit(batches, size, type = "bench") {
      for (let b = 0; b < batches; b++) await boss.insert(type, jobs(size));
    },
    async drain(total, type) {
      const done = handled.until(total);
      const started = performance.now();
      // Only sweep.ts sets BENCH_PGBOSS_WORK, to try other values.
      const options: typeof PGBOSS_THROUGHPUT = {
        ...PGBOSS_THROUGHPUT,
        ...(JSON.parse(process.env.BENCH_PGBOSS_WORK ?? "{}") as Partial<typeof PGBOSS_THROUGHPUT>),
      };
      await boss.work(type, options, async (batch) => handled.add(batch.length));
      await done;
      const handlersMs = performance.now() - started;
      await boss.offWork(type, { wait: true });
      return { ms: performance.now() - started, handlersMs };
    },
    async verifyDrained(total, type) {
      expect(
        `pg-boss: completed ${type} jobs`,
        await one(url, `SELECT count(*) AS n FROM pgboss.job WHERE name = $1 AND state = 'completed'`, [
          type,
        ]),
        total,
      );
    },
    async latency(count) {
      let started: (() => void) | undefined;
      // The documented low-latency set-up: LISTEN/NOTIFY on, the work() defaults otherwise.
      await boss.work("bench", async () => {
        started?.();
      });
      const samples: number[] = [];
      for (let i = 0; i < count; i++) {
        const handlerStarted = new Promise<void>((resolve) => (started = resolve));
        const t0 = performance.now();
        await boss.send("bench", { n: i });
        await handlerStarted;
        samples.push(performance.now() - t0);
      }
      await boss.offWork("bench", { wait: true });
      return samples;
    },
    async close() {
      await boss.stop({ graceful: false });
    },
  };
}

/** pg-boss's flow: the batch's children and a parent job that depends on all of them. */
export async function pgbossFlow(url: string): Promise<System> {
  const boss = await startPgBoss(url);
  return {
    async setup() {
      for (const name of ["bench", "bench-parent"]) {
        if (!(await boss.getQueue(name))) await boss.createQueue(name, { notify: true });
      }
    },
    async submit(batches, size) {
      for (let b = 0; b < batches; b++) {
        const children = Array.from({ length: size }, (_, n) => ({
          ref: `c${n}`,
          name: "bench",
          data: { n },
        }));
        await boss.flow([
          ...children,
          { ref: "parent", name: "bench-parent", dependsOn: children.map((child) => child.ref) },
        ]);
      }
    },
    drain: () => Promise.reject(new Error("pgbossFlow has no drain")),
    verifyDrained: () => Promise.resolve(),
    latency: () => Promise.resolve([]),
    async close() {
      await boss.stop({ graceful: false });
    },
  };
}

// --- graphile-worker 0.18 -----------------------------------------------------------------------

export async function graphile(url: string): Promise<System> {
  const { Logger, makeWorkerUtils, run } = await import("graphile-worker");
  // Its warnings and errors stay visible (stderr); info and debug are dropped.
  const logger = new Logger(() => (level, message) => {
    if (level === "error" || level === "warning") console.error(`[graphile-worker ${level}] ${message}`);
  });
  const pool = new Pool({ connectionString: url, max: GRAPHILE_PRESET.maxPoolSize });
  pool.on("error", (error) => console.error(`[graphile-worker pool] ${error.message}`));
  pool.on("connect", (client) =>
    client.on("error", (error) => console.error(`[graphile-worker client] ${error.message}`)),
  );
  const utils = await makeWorkerUtils({ pgPool: pool, logger });
  const handled = new Counter();
  const specs = (size: number, type: JobType) =>
    Array.from({ length: size }, (_, n) => ({ identifier: type, payload: { n } }));
  const start = (type: JobType, task: () => void, preset = GRAPHILE_PRESET) =>
    run({
      pgPool: pool,
      logger,
      noHandleSignals: true,
      taskList: { [type]: async () => task() },
      preset: { worker: preset },
    });
  return {
    async setup() {
      await utils.migrate();
    },
    async submit(batches, size, type = "bench") {
      for (let b = 0; b < batches; b++) await utils.addJobs(specs(size, type));
    },
    async drain(total, type) {
      const done = handled.until(total);
      const started = performance.now();
      const runner = await start(type, () => handled.add());
      await done;
      const handlersMs = performance.now() - started;
      await runner.stop();
      return { ms: performance.now() - started, handlersMs };
    },
    async verifyDrained(total, type) {
      // Graphile deletes a job when it completes.
      expect(
        `graphile: ${type} jobs left`,
        await one(
          url,
          `SELECT count(*) AS n FROM graphile_worker._private_jobs j
           JOIN graphile_worker._private_tasks t ON t.id = j.task_id WHERE t.identifier = $1`,
          [type],
        ),
        0,
      );
      expect(`graphile: ${type} handlers run`, handled.count, total);
    },
    async latency(count) {
      let started: (() => void) | undefined;
      const preset =
        process.env.BENCH_GRAPHILE_LATENCY === "batching" ? GRAPHILE_PRESET : GRAPHILE_LATENCY_PRESET;
      const runner = await start("bench", () => started?.(), preset);
      const samples: number[] = [];
      for (let i = 0; i < count; i++) {
        const handlerStarted = new Promise<void>((resolve) => (started = resolve));
        const t0 = performance.now();
        await utils.addJob("bench", { n: i });
        await handlerStarted;
        samples.push(performance.now() - t0);
      }
      await runner.stop();
      return samples;
    },
    async close() {
      await utils.release();
      await pool.end();
    },
  };
}

export const FACTORIES: Record<string, (url: string) => Promise<System>> = {
  ours: (url) => ours(url),
  oursNoPool: (url) => ours(url, false),
  raw,
  pgboss,
  pgbossFlow,
  graphile,
};
