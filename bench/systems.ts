// The systems under comparison, each behind the same three-or-four calls. Every scenario runs in
// a fresh process on a fresh database (see run.ts), so no system inherits another's warm caches.
import { Pool } from "pg";
import { z } from "zod";
import { PrismaPg } from "@prisma/adapter-pg";
import {
  applyMigrations,
  createOperations,
  defineOperationType,
  preparedStatementNames,
  silentLogger,
} from "../src";
import { uuidv7 } from "../src/domain/ids";
import { NO_INLINE } from "../src/store/statements/outbox";
import { Store } from "../src/store/store";
import { tablesIn } from "../src/store/tables";
import { PrismaClient } from "../src/generated/prisma/client";

export interface DrainSettings {
  total: number;
  batchSize: number;
  concurrency: number;
}

export interface System {
  /** Writes `batches` batches of `size` jobs, one batch per call/transaction, in sequence. */
  submit(batches: number, size: number): Promise<void>;
  /** Inserts `total` jobs (not timed) then runs them; resolves with the ms the run took. */
  drain(settings: DrainSettings): Promise<number>;
  /** One job at a time: ms from calling submit to the handler starting, `count` times. */
  latency(count: number): Promise<number[]>;
  settings: Record<string, unknown>;
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls `count()` until it reaches `target`; resolves with the ms since `started`. Every 100 ms:
 * often enough for a 1% resolution on these runs, rarely enough not to load the database.
 */
async function until(count: () => Promise<number>, target: number, started: number): Promise<number> {
  for (;;) {
    if ((await count()) >= target) return performance.now() - started;
    await sleep(100);
  }
}

async function countOf(pool: Pool, sql: string): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(sql);
  return rows[0]!.n;
}

// --- ours ---------------------------------------------------------------------------------------

const benchTypes = {
  bench: defineOperationType({ payload: z.object({ n: z.number().int() }), maxAttempts: 3 }),
};

export async function ours(url: string): Promise<System> {
  const admin = new Pool({ connectionString: url, max: 2 });
  const client = await admin.connect();
  await applyMigrations(client);
  client.release();
  const prisma = new PrismaClient({
    adapter: new PrismaPg(
      { connectionString: url, max: 20 },
      { statementNameGenerator: preparedStatementNames() },
    ),
  });
  const ops = createOperations({ prisma, types: benchTypes, logger: silentLogger });
  const items = (size: number) => Array.from({ length: size }, (_, n) => ({ n }));
  const workerSettings = {
    concurrency: 16,
    batchSize: 16,
    prefetch: 0,
    pollIntervalMs: 50,
    listen: true,
    relay: "on",
    reaper: "on",
  };
  return {
    settings: {
      submit: "submitBatch (one statement in one transaction, outbox included)",
      worker: workerSettings,
    },
    async submit(batches, size) {
      for (let b = 0; b < batches; b++)
        await ops.submitBatch({ tenantId: "bench", type: "bench", items: items(size) });
    },
    async drain({ total, batchSize, concurrency }) {
      for (let b = 0; b < total / batchSize; b++) {
        await ops.submitBatch({ tenantId: "bench", type: "bench", items: items(batchSize) });
      }
      const worker = ops.createWorker({
        handlers: { bench: () => null },
        concurrency,
        batchSize: workerSettings.batchSize,
        prefetch: workerSettings.prefetch,
        pollIntervalMs: 50,
        listen: { connectionString: url },
      });
      const started = performance.now();
      await worker.start();
      const ms = await until(
        () => countOf(admin, `SELECT count(*)::int AS n FROM operations WHERE status = 'completed'`),
        total,
        started,
      );
      await worker.stop();
      return ms;
    },
    async latency(count) {
      let started: (() => void) | undefined;
      const worker = ops.createWorker({
        handlers: { bench: () => void started?.() },
        concurrency: 1,
        pollIntervalMs: 1_000,
        listen: { connectionString: url },
      });
      await worker.start();
      const samples: number[] = [];
      for (let i = 0; i < count; i++) {
        const running = new Promise<void>((resolve) => (started = resolve));
        const t0 = performance.now();
        await ops.submitOperation({ tenantId: "bench", type: "bench", payload: { n: i } });
        await running;
        samples.push(performance.now() - t0);
      }
      await worker.stop();
      return samples;
    },
    async close() {
      await prisma.$disconnect();
      await admin.end();
    },
  };
}

/**
 * Per-child cost of the completion statement (the child's transition, its batch's counters and
 * the events) in batches of `batchSize`, over `children` completions in all.
 */
export async function aggregationCost(url: string, batchSize: number, children: number): Promise<number> {
  const system = await ours(url);
  const prisma = new PrismaClient({
    adapter: new PrismaPg(
      { connectionString: url, max: 2 },
      { statementNameGenerator: preparedStatementNames() },
    ),
  });
  const ops = createOperations({ prisma, types: benchTypes, logger: silentLogger });
  for (let b = 0; b < children / batchSize; b++) {
    await ops.submitBatch({
      tenantId: "bench",
      type: "bench",
      items: Array.from({ length: batchSize }, (_, n) => ({ n })),
    });
  }
  const claimed = [];
  for (;;) {
    const rows = await new Store(prisma, tablesIn()).claimDue(1000, "bench", 600_000);
    if (rows.length === 0) break;
    claimed.push(...rows);
  }
  const started = performance.now();
  for (const row of claimed) {
    await new Store(prisma, tablesIn()).finishOperations(
      [{ id: row.id, lockToken: row.lockToken, finish: { to: "completed", result: null } }],
      NO_INLINE,
    );
  }
  const perChild = (performance.now() - started) / claimed.length;
  await prisma.$disconnect();
  await system.close();
  return perChild;
}

// --- raw SQL: the ceiling on the same schema -----------------------------------------------------

export async function raw(url: string): Promise<System> {
  const pool = new Pool({ connectionString: url, max: 20 });
  const client = await pool.connect();
  await applyMigrations(client);
  client.release();
  const insertBatch = async (size: number) => {
    const connection = await pool.connect();
    try {
      const batchId = uuidv7();
      await connection.query("BEGIN");
      await connection.query(
        `INSERT INTO operation_batches (id, tenant_id, type, child_count) VALUES ($1, 'bench', 'bench', $2)`,
        [batchId, size],
      );
      await connection.query(
        `INSERT INTO operations (id, tenant_id, batch_id, type, payload, max_attempts)
         SELECT unnest($1::uuid[]), 'bench', $2, 'bench', unnest($3::jsonb[]), 3`,
        [
          Array.from({ length: size }, () => uuidv7()),
          batchId,
          Array.from({ length: size }, (_, n) => `{"n":${n}}`),
        ],
      );
      await connection.query("COMMIT");
    } finally {
      connection.release();
    }
  };
  return {
    settings: {
      submit: "BEGIN; INSERT parent; INSERT children (unnest); COMMIT",
      drain:
        "2 connections: claim concurrency/2 (SKIP LOCKED), complete them in one statement with the batch counters",
    },
    async submit(batches, size) {
      for (let b = 0; b < batches; b++) await insertBatch(size);
    },
    async drain({ total, batchSize, concurrency }) {
      for (let b = 0; b < total / batchSize; b++) await insertBatch(batchSize);
      // Two connections, each claiming `concurrency / 2` rows at a time and completing them in one
      // statement that also moves their batches' counters: what hand-written SQL would do.
      const perClaim = Math.max(1, concurrency / 2);
      let done = 0;
      const started = performance.now();
      await Promise.all(
        [0, 1].map(async () => {
          for (;;) {
            const { rows } = await pool.query<{ id: string }>(
              `UPDATE operations o SET status = 'processing', locked_by = 'raw', lock_token = gen_random_uuid(), locked_until = now() + interval '1 minute',
                 attempts = o.attempts + 1
               FROM (SELECT id FROM operations WHERE status = 'pending' ORDER BY run_at, id LIMIT $1
                     FOR UPDATE SKIP LOCKED) p
               WHERE o.id = p.id RETURNING o.id`,
              [perClaim],
            );
            if (rows.length === 0) return;
            await pool.query(
              `WITH done AS (
                 UPDATE operations SET status = 'completed', locked_by = NULL, locked_until = NULL, finished_at = now()
                 WHERE id = ANY($1::uuid[]) RETURNING batch_id),
               counts AS (SELECT batch_id, count(*)::int AS n FROM done GROUP BY batch_id)
               UPDATE operation_batches b SET completed_count = completed_count + c.n,
                 status = CASE WHEN completed_count + c.n + failed_count + cancelled_count = child_count
                               THEN 'completed'::batch_status ELSE b.status END,
                 finished_at = CASE WHEN completed_count + c.n + failed_count + cancelled_count = child_count
                                    THEN now() END
               FROM counts c WHERE b.id = c.batch_id`,
              [rows.map((row) => row.id)],
            );
            done += rows.length;
          }
        }),
      );
      if (done !== total) throw new Error(`raw drain completed ${done} of ${total}`);
      return performance.now() - started;
    },
    latency: () => Promise.resolve([]),
    close: () => pool.end(),
  };
}

// --- pg-boss 12 ----------------------------------------------------------------------------------

export async function pgboss(url: string): Promise<System> {
  const { PgBoss } = await import("pg-boss");
  const boss = new PgBoss({
    connectionString: url,
    max: 20,
    useListenNotify: true,
    supervise: false,
    schedule: false,
  });
  boss.on("error", (error) => console.error("pg-boss:", error.message));
  await boss.start();
  await boss.createQueue("bench", { notify: true });
  await boss.createQueue("bench-parent");
  const pool = new Pool({ connectionString: url, max: 2 });
  const jobs = (size: number) => Array.from({ length: size }, (_, n) => ({ data: { n } }));
  // Tuned here (drain of 20,000): fetch 16 at once, keep fetching while fetches come back full.
  const workSettings = JSON.parse(
    process.env.BENCH_PGBOSS_WORK ??
      '{"batchSize":16,"localConcurrency":1,"pollingIntervalSeconds":0.5,"notifyPollingIntervalSeconds":0.5,"burstWhenBatchFull":true}',
  );
  return {
    settings: {
      submit: "insert(queue, jobs) per batch; flow: children + a parent depending on all",
      work: workSettings,
    },
    async submit(batches, size) {
      for (let b = 0; b < batches; b++) await boss.insert("bench", jobs(size));
    },
    async drain({ total, batchSize }) {
      for (let b = 0; b < total / batchSize; b++) await boss.insert("bench", jobs(batchSize));
      const started = performance.now();
      await boss.work("bench", workSettings, async () => undefined);
      const ms = await until(
        () =>
          countOf(
            pool,
            `SELECT count(*)::int AS n FROM pgboss.job WHERE name = 'bench' AND state = 'completed'`,
          ),
        total,
        started,
      );
      await boss.offWork("bench");
      return ms;
    },
    async latency(count) {
      let started: (() => void) | undefined;
      await boss.work(
        "bench",
        { batchSize: 1, pollingIntervalSeconds: 0.5, notifyPollingIntervalSeconds: 30 },
        async () => {
          started?.();
        },
      );
      const samples: number[] = [];
      for (let i = 0; i < count; i++) {
        const running = new Promise<void>((resolve) => (started = resolve));
        const t0 = performance.now();
        await boss.send("bench", { n: i });
        await running;
        samples.push(performance.now() - t0);
      }
      await boss.offWork("bench");
      return samples;
    },
    async close() {
      await boss.stop({ graceful: false });
      await pool.end();
    },
  };
}

/** pg-boss's flow: the batch's children and a parent job that depends on all of them. */
export async function pgbossFlowSubmit(url: string, batches: number, size: number): Promise<void> {
  const { PgBoss } = await import("pg-boss");
  const boss = new PgBoss({ connectionString: url, max: 20, supervise: false, schedule: false });
  boss.on("error", (error) => console.error("pg-boss:", error.message));
  await boss.start();
  await boss.createQueue("bench");
  await boss.createQueue("bench-parent");
  const started = performance.now();
  for (let b = 0; b < batches; b++) {
    const children = Array.from({ length: size }, (_, n) => ({ ref: `c${n}`, name: "bench", data: { n } }));
    await boss.flow([
      ...children,
      { ref: "parent", name: "bench-parent", dependsOn: children.map((child) => child.ref) },
    ]);
  }
  console.log(`RESULT ${JSON.stringify({ ms: performance.now() - started })}`);
  await boss.stop({ graceful: false });
}

// --- graphile-worker 0.18 -----------------------------------------------------------------------

export async function graphile(url: string): Promise<System> {
  const { Logger, makeWorkerUtils, run } = await import("graphile-worker");
  const utils = await makeWorkerUtils({ connectionString: url });
  await utils.migrate();
  const pool = new Pool({ connectionString: url, max: 2 });
  const specs = (size: number) =>
    Array.from({ length: size }, (_, n) => ({ identifier: "bench", payload: { n } }));
  const runSettings = {
    concurrency: 16,
    pollInterval: 100,
    localQueue: { size: 32 },
    completeJobBatchDelay: 0,
  };
  const start = (task: () => Promise<void> | void, concurrency: number) =>
    run({
      connectionString: url,
      concurrency,
      pollInterval: runSettings.pollInterval,
      noHandleSignals: true,
      taskList: { bench: async () => task() },
      preset: {
        worker: {
          localQueue: runSettings.localQueue,
          completeJobBatchDelay: runSettings.completeJobBatchDelay,
        },
      },
      logger: new Logger(() => () => undefined),
    });
  return {
    settings: { submit: "addJobs(specs) per batch", run: runSettings },
    async submit(batches, size) {
      for (let b = 0; b < batches; b++) await utils.addJobs(specs(size));
    },
    async drain({ total, batchSize, concurrency }) {
      for (let b = 0; b < total / batchSize; b++) await utils.addJobs(specs(batchSize));
      const started = performance.now();
      const runner = await start(() => undefined, concurrency);
      // Graphile deletes a job when it completes: done when none are left.
      const remaining = () => countOf(pool, `SELECT count(*)::int AS n FROM graphile_worker._private_jobs`);
      const ms = await until(async () => total - (await remaining()), total, started);
      await runner.stop();
      return ms;
    },
    async latency(count) {
      let started: (() => void) | undefined;
      const runner = await start(() => void started?.(), 1);
      const samples: number[] = [];
      for (let i = 0; i < count; i++) {
        const running = new Promise<void>((resolve) => (started = resolve));
        const t0 = performance.now();
        await utils.addJob("bench", { n: i });
        await running;
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
