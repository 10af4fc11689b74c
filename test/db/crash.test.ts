// Many workers at once, and the crash windows of execution recreated on purpose: a worker process
// killed with SIGKILL mid-handler, its connection terminated mid-completion, a late completion
// after its lease was taken over. Waits are on conditions, never fixed sleeps.
import { createOperations, silentLogger } from "../../src";
import { createTestDatabase, type TestDatabase } from "../support/db";
import { OWED_DELIVERIES_SQL, sleepingBackend, truncateAll, waitFor } from "../support/fixtures";
import { processTypes } from "../support/process-types";
import { spawnWorker, stopWorkers, type WorkerProcess } from "../support/processes";

let db: TestDatabase;
const processes: WorkerProcess[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  await db.pool.query(
    `CREATE TABLE handler_runs (operation_id uuid NOT NULL, worker_id text NOT NULL, attempt int NOT NULL)`,
  );
});
afterAll(() => db.close());
beforeEach(async () => {
  await truncateAll(db.pool);
  await db.pool.query(`TRUNCATE handler_runs`);
});
afterEach(async () => {
  await stopWorkers(processes.splice(0));
});

function submitter() {
  return createOperations({ ...db.connection, types: processTypes, logger: silentLogger });
}

function start(env: Record<string, string> = {}, id = `w${processes.length + 1}`): WorkerProcess {
  const worker = spawnWorker({ WORKER_DATABASE_URL: db.url, WORKER_ID: id, ...env });
  processes.push(worker);
  return worker;
}

async function scalar<T>(sql: string, params: unknown[] = []): Promise<T> {
  const { rows } = await db.pool.query(sql, params);
  return Object.values(rows[0] as object)[0] as T;
}

const unfinishedBatches = () =>
  scalar<number>(
    `SELECT count(*)::int FROM operation_batches WHERE status NOT IN ('completed', 'failed', 'cancelled')`,
  );

/** Every batch's counters equal its children's real statuses. */
async function countersMatchChildren(): Promise<boolean> {
  const mismatches = await scalar<number>(`
    SELECT count(*)::int FROM operation_batches b
    CROSS JOIN LATERAL (
      SELECT count(*) FILTER (WHERE o.status = 'completed') AS completed,
             count(*) FILTER (WHERE o.status = 'failed') AS failed,
             count(*) FILTER (WHERE o.status = 'cancelled') AS cancelled
      FROM operations o WHERE o.batch_id = b.id) actual
    WHERE (b.completed_count, b.failed_count, b.cancelled_count) IS DISTINCT FROM (actual.completed, actual.failed, actual.cancelled)`);
  return mismatches === 0;
}

describe("many workers at once", () => {
  it("8 worker processes drain 5,000 operations: each handler runs once, each batch ends once with one event", async () => {
    const workers = Array.from({ length: 8 }, () => start());
    await Promise.all(workers.map((worker) => worker.ready));
    const ops = submitter();
    const batches = [];
    for (let b = 0; b < 50; b++) {
      // One after another, while the workers already drain the first ones.
      const items = Array.from({ length: 100 }, (_, n) => ({ n }));
      batches.push(await ops.submitBatch({ tenantId: `t${b % 5}`, type: "work", items }));
    }
    await waitFor("every batch to finish", async () => (await unfinishedBatches()) === 0, 120_000, 100);
    await waitFor(
      "every event to be delivered",
      async () => (await scalar<number>(OWED_DELIVERIES_SQL)) === 0,
      30_000,
      100,
    );

    const runs = await db.pool.query(
      `SELECT count(*)::int AS runs, count(DISTINCT operation_id)::int AS operations, count(DISTINCT worker_id)::int AS workers
       FROM handler_runs`,
    );
    expect(runs.rows[0].runs).toBe(5_000);
    expect(runs.rows[0].operations).toBe(5_000);
    expect(runs.rows[0].workers).toBeGreaterThan(1);
    const statuses = await db.pool.query(
      `SELECT status::text, attempts, count(*)::int AS n FROM operations GROUP BY 1, 2`,
    );
    expect(statuses.rows).toEqual([{ status: "completed", attempts: 1, n: 5_000 }]);
    expect(await countersMatchChildren()).toBe(true);
    const terminalEvents = await db.pool.query(
      `SELECT aggregate_id, count(*)::int AS n FROM operation_outbox
       WHERE topic IN ('batch.completed', 'batch.failed', 'batch.cancelled') GROUP BY aggregate_id`,
    );
    expect(terminalEvents.rows).toHaveLength(50);
    expect(terminalEvents.rows.every((row) => row.n === 1)).toBe(true);
    expect(new Set(terminalEvents.rows.map((row) => row.aggregate_id))).toEqual(
      new Set(batches.map((b) => b.batch.id)),
    );
    expect(
      await scalar<number>(`SELECT count(*)::int FROM operation_outbox WHERE topic = 'operation.completed'`),
    ).toBe(5_000);
    // Eight processes starting on two cores took up to a minute here: the waits above set the bound.
  }, 180_000);
});

describe("a worker process killed with SIGKILL mid-handler", () => {
  it("loses nothing: its rows come back when the lease expires, run again elsewhere, and the batch completes", async () => {
    const doomed = start({ WORKER_HANG_ON: "3", WORKER_LEASE_MS: "1000", WORKER_CONCURRENCY: "2" }, "doomed");
    await doomed.ready;
    const { batch } = await submitter().submitBatch({
      tenantId: "t",
      type: "work",
      items: Array.from({ length: 8 }, (_, n) => ({ n })),
    });
    const hungId = await doomed.hanging;
    doomed.child.kill("SIGKILL");
    expect(await doomed.exited).toBe("SIGKILL");
    expect(await scalar<string>(`SELECT status::text FROM operations WHERE id = $1`, [hungId])).toBe(
      "processing",
    );

    const survivor = start({}, "survivor");
    await survivor.ready;
    await waitFor(
      "the batch to complete",
      async () =>
        (await scalar<string>(`SELECT status::text FROM operation_batches WHERE id = $1`, [batch.id])) ===
        "completed",
      30_000,
      50,
    );
    const hungRuns = await db.pool.query(
      `SELECT worker_id, attempt FROM handler_runs WHERE operation_id = $1 ORDER BY attempt`,
      [hungId],
    );
    expect(hungRuns.rows).toEqual([
      { worker_id: "doomed", attempt: 1 },
      { worker_id: "survivor", attempt: 2 },
    ]);
    expect(await scalar<number>(`SELECT attempts FROM operations WHERE id = $1`, [hungId])).toBe(2);
    expect(await countersMatchChildren()).toBe(true);
    expect(
      await scalar<number>(
        `SELECT count(*)::int FROM operation_outbox WHERE aggregate_id = $1 AND topic = 'batch.completed'`,
        [batch.id],
      ),
    ).toBe(1);
  });
});

describe("the worker's connection terminated during completion", () => {
  it("applies no half transition; the worker recovers and the row ends in exactly one terminal state", async () => {
    await db.pool.query(`
      CREATE SEQUENCE IF NOT EXISTS completion_fault;
      CREATE OR REPLACE FUNCTION completion_fault() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        -- Sequences ignore rollbacks: only the first completion attempt ever sleeps.
        IF NEW.status = 'completed' AND nextval('completion_fault') = 1 THEN PERFORM pg_sleep(30); END IF;
        RETURN NEW;
      END $$;
      DROP TRIGGER IF EXISTS completion_fault ON operations;
      CREATE TRIGGER completion_fault BEFORE UPDATE ON operations FOR EACH ROW EXECUTE FUNCTION completion_fault();`);
    const victim = db.newPrisma({ applicationName: "victim-worker" });
    let runs = 0;
    const ops = createOperations({ prisma: victim, types: processTypes, logger: silentLogger });
    const worker = ops.createWorker({
      handlers: { work: (payload) => (runs++, { n: payload.n }) },
      pollIntervalMs: 20,
      leaseMs: 10_000,
      reaper: false,
      relay: { pollIntervalMs: 20 },
    });
    await worker.start();
    try {
      const { batch, operationIds } = await submitter().submitBatch({
        tenantId: "t",
        type: "work",
        items: [{ n: 1 }],
      });
      const pid = await sleepingBackend(
        db.pool,
        "victim-worker",
        "the completion to be stuck inside its UPDATE",
      );
      // Killed mid-statement: nothing of the transition may be visible.
      await db.pool.query(`SELECT pg_terminate_backend($1)`, [pid]);
      await waitFor(
        "the worker to record the outcome again",
        async () =>
          (await scalar<string>(`SELECT status::text FROM operation_batches WHERE id = $1`, [batch.id])) ===
          "completed",
      );
      expect(runs).toBe(1);
      expect(
        await scalar<string>(`SELECT status::text FROM operations WHERE id = $1`, [operationIds[0]]),
      ).toBe("completed");
      expect(await countersMatchChildren()).toBe(true);
      const events = await db.pool.query(
        `SELECT topic, count(*)::int AS n FROM operation_outbox WHERE topic <> 'batch.submitted' GROUP BY topic ORDER BY topic`,
      );
      expect(events.rows).toEqual([
        { topic: "batch.completed", n: 1 },
        { topic: "operation.completed", n: 1 },
      ]);
      expect(worker.stats).toMatchObject({ completed: 1, rejected: 0 });
    } finally {
      await worker.stop();
      await db.pool.query(`DROP TRIGGER completion_fault ON operations`);
    }
  });
});

describe("a late completion after the lease was taken over", () => {
  it("is rejected and logged, never applied; the counters still equal the real child counts", async () => {
    const ops = submitter();
    let release!: () => void;
    const slowWorker = ops.createWorker({
      id: "slow",
      concurrency: 1,
      leaseMs: 60_000,
      heartbeatIntervalMs: 30_000,
      pollIntervalMs: 20,
      reaper: false,
      relay: false,
      handlers: { work: () => new Promise((resolve) => (release = () => resolve("late"))) },
    });
    await slowWorker.start();
    const { batch, operationIds } = await ops.submitBatch({
      tenantId: "t",
      type: "work",
      items: [{ n: 0 }, { n: 1 }, { n: 2 }],
    });
    await waitFor("the slow worker to hold the first child", () => release !== undefined);
    // Its lease runs out (backdated) and the reaper hands the row to someone else.
    await db.pool.query(
      `UPDATE operations SET locked_until = now() - interval '1 second' WHERE locked_by = 'slow'`,
    );
    expect((await ops.createReaper().runOnce()).reaped).toBe(1);
    const fastWorker = ops.createWorker({
      id: "fast",
      pollIntervalMs: 20,
      handlers: { work: () => "on time" },
    });
    await fastWorker.start();
    try {
      await waitFor(
        "the batch to complete",
        async () => (await ops.getBatch("t", batch.id)).status === "completed",
      );
      release();
      await waitFor("the late outcome to be refused", () => slowWorker.stats.rejected === 1);
      expect((await ops.getOperation("t", operationIds[0]!)).result).toBe("on time");
      const final = await ops.getBatch("t", batch.id);
      expect(final.counts).toMatchObject({ total: 3, completed: 3, failed: 0, cancelled: 0 });
      expect(await countersMatchChildren()).toBe(true);
      expect(
        await scalar<number>(
          `SELECT count(*)::int FROM operation_outbox WHERE topic = 'operation.completed' AND aggregate_id = $1`,
          [operationIds[0]],
        ),
      ).toBe(1);
    } finally {
      await Promise.all([slowWorker.stop(), fastWorker.stop()]);
    }
  });
});
