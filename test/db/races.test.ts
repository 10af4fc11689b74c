// What users do at the same time: two operators retrying the same failed children, a cancel landing
// while workers claim, a worker re-claiming a row it lost, a cancel before a prefetched row starts.
// Every caller gets a typed answer, and the database stays exactly right.
import { z } from "zod";
import {
  ConflictError,
  createOperations,
  defineOperationType,
  NotFoundError,
  silentLogger,
  type Handlers,
} from "../../src";
import type { Worker } from "../../src/execution/worker";
import { isTransactionConflict } from "../../src/store/database-errors";
import { poolDb } from "../../src/store/pool";
import type { Outcome } from "../../src/store/statements/transitions";
import { createTestDatabase, type TestDatabase } from "../support/db";
import { truncateAll, waitFor } from "../support/fixtures";
import { NO_INLINE, storeOf } from "../support/store";

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.close());
beforeEach(() => truncateAll(db.pool));

const types = {
  task: defineOperationType({
    payload: z.object({ n: z.number().int() }),
    maxAttempts: 3,
    retryBackoff: { baseMs: 20, maxMs: 20, jitter: 0 },
  }),
  timed: defineOperationType({ payload: z.object({ n: z.number().int() }), timeoutMs: 5_000 }),
};
type Types = typeof types;

const workers: Worker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((worker) => worker.stop()));
});

function service() {
  return createOperations({ ...db.connection, types, logger: silentLogger });
}

function worker(
  ops: ReturnType<typeof service>,
  handlers: Handlers<Types>,
  options: Partial<Parameters<ReturnType<typeof service>["createWorker"]>[0]> = {},
): Worker {
  const created = ops.createWorker({
    handlers,
    pollIntervalMs: 10,
    leaseMs: 10_000,
    relay: false,
    reaper: false,
    ...options,
  });
  workers.push(created);
  return created;
}

const items = (count: number) => Array.from({ length: count }, (_, n) => ({ n }));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Batches whose counters or status disagree with their children's real statuses. */
async function corruptBatches(): Promise<unknown[]> {
  const { rows } = await db.pool.query(`
    SELECT b.id, b.status, b.completed_count, b.failed_count, b.cancelled_count, c.completed, c.failed, c.cancelled
    FROM operation_batches b
    JOIN LATERAL (
      SELECT count(*) FILTER (WHERE o.status = 'completed')::int AS completed,
             count(*) FILTER (WHERE o.status = 'failed')::int AS failed,
             count(*) FILTER (WHERE o.status = 'cancelled')::int AS cancelled
      FROM operations o WHERE o.batch_id = b.id) c ON true
    WHERE (b.completed_count, b.failed_count, b.cancelled_count) <> (c.completed, c.failed, c.cancelled)`);
  return rows;
}

/** Fails every child of a batch, with the counters and status that implies (as a worker would leave it). */
async function failAll(batchId: string): Promise<void> {
  await db.pool.query(
    `WITH failed AS (
       UPDATE operations SET status = 'failed', finished_at = now(), error = '{"message":"down"}'
       WHERE batch_id = $1 RETURNING 1)
     UPDATE operation_batches SET failed_count = (SELECT count(*) FROM failed), completed_count = 0,
       cancelled_count = 0, status = 'failed', finished_at = now()
     WHERE id = $1`,
    [batchId],
  );
}

/** Every rejection is one of the module's typed answers; anything else is returned for the assertion. */
function untyped(results: PromiseSettledResult<unknown>[]): string[] {
  return results
    .filter((result): result is PromiseRejectedResult => result.status === "rejected")
    .filter((result) => !(result.reason instanceof ConflictError || result.reason instanceof NotFoundError))
    .map((result) => `${(result.reason as Error).name}: ${(result.reason as Error).message}`.slice(0, 300));
}

describe("control actions racing each other", () => {
  it("two operators retrying the same failed children at once: typed answers only, counters exact", async () => {
    const ops = service();
    const { batch, operationIds } = await ops.submitBatch({ tenantId: "t", type: "task", items: items(12) });
    for (let round = 0; round < 8; round++) {
      await failAll(batch.id);
      const calls = [
        ops.retryBatch("t", batch.id),
        ops.retryBatch("t", batch.id),
        ...operationIds.flatMap((id) => [ops.retryOperation("t", id), ops.retryOperation("t", id)]),
      ];
      const results = await Promise.allSettled(calls);
      expect(untyped(results)).toEqual([]);
      expect(await corruptBatches()).toEqual([]);
      const { rows } = await db.pool.query(
        `SELECT count(*) FILTER (WHERE status = 'pending')::int AS pending FROM operations WHERE batch_id = $1`,
        [batch.id],
      );
      // Every child was re-queued exactly once, whoever won it.
      expect(rows[0].pending).toBe(12);
      const won = results.filter((result) => result.status === "fulfilled").length;
      expect(won).toBeGreaterThanOrEqual(1);
    }
  });

  it("retries racing cancels of the same batch: typed answers only, counters exact", async () => {
    const ops = service();
    const { batch, operationIds } = await ops.submitBatch({ tenantId: "t", type: "task", items: items(10) });
    for (let round = 0; round < 8; round++) {
      await failAll(batch.id);
      const results = await Promise.allSettled([
        ops.retryBatch("t", batch.id),
        ops.cancelBatch("t", batch.id),
        ...operationIds.slice(0, 5).map((id) => ops.retryOperation("t", id)),
        ...operationIds.slice(5).map((id) => ops.cancelOperation("t", id)),
        ops.cancelBatch("t", batch.id),
      ]);
      expect(untyped(results)).toEqual([]);
      expect(await corruptBatches()).toEqual([]);
    }
  });
});

describe("cancelBatch while workers claim", () => {
  it("leaves no child pending, and none running without a cancel request, once it returns", async () => {
    const ops = service();
    const escaped: number[] = [];
    for (let round = 0; round < 15; round++) {
      const pool = Array.from({ length: 4 }, () =>
        worker(
          ops,
          {
            // Long enough that a child missed by the cancel is still running when we look.
            task: (_payload, { signal }) =>
              new Promise((resolve) => {
                const timer = setTimeout(() => resolve("done"), 300);
                signal.addEventListener("abort", () => {
                  clearTimeout(timer);
                  resolve("stopped");
                });
              }),
          },
          { concurrency: 60, batchSize: 2, pollIntervalMs: 1 },
        ),
      );
      const { batch } = await ops.submitBatch({ tenantId: "t", type: "task", items: items(200) });
      await Promise.all(pool.map((w) => w.start()));
      await waitFor("claims under way", async () => {
        const { rows } = await db.pool.query(
          `SELECT count(*)::int AS n FROM operations WHERE batch_id = $1 AND status = 'processing'`,
          [batch.id],
        );
        return rows[0].n >= 20;
      });
      await ops.cancelBatch("t", batch.id);
      const { rows } = await db.pool.query(
        `SELECT count(*)::int AS n FROM operations WHERE batch_id = $1
           AND (status = 'pending' OR (status = 'processing' AND cancel_requested_at IS NULL))`,
        [batch.id],
      );
      escaped.push(rows[0].n);
      await Promise.all(workers.splice(0).map((w) => w.stop()));
    }
    expect(escaped.filter((n) => n > 0)).toEqual([]);
    expect(await corruptBatches()).toEqual([]);
  });
});

/**
 * Group commits sent on the pool as a worker sends them, each run again when PostgreSQL chooses it
 * as a deadlock victim (as a worker's completer does), the victims counted.
 */
function groupCommits() {
  const store = storeOf(poolDb(db.connection.pool, { prepare: true }));
  const commits = {
    store,
    deadlocks: 0,
    async commit(outcomes: readonly Outcome[]): Promise<void> {
      for (;;) {
        try {
          await store.finishOperations(outcomes, NO_INLINE);
          return;
        } catch (error) {
          if (!isTransactionConflict(error)) throw error;
          commits.deadlocks++;
        }
      }
    },
  };
  return commits;
}

describe("group commits racing each other", () => {
  // Workers draining the same batches record their outcomes at the same moments, each group commit
  // moving the counters of several batches. Each must lock those batch rows in one order (by id),
  // whatever plan the statement gets: in the order of a scan of the batches table, two commits
  // deadlocked on 1 in 4 statements here (each victim a `deadlock_timeout` of stall, then a retry).
  it("eight workers' group commits over the same batches at once: no deadlock victim, counters exact", async () => {
    const ops = service();
    const batches = 8;
    const rounds = 16;
    const callers = 8;
    for (let b = 0; b < batches; b++) {
      await ops.submitBatch({ tenantId: "t", type: "task", items: items(rounds * callers) });
    }
    // Other work's batches beside them, and statistics as autovacuum would leave them: the plan
    // then reads the batches table whole, in the order its rows were last written (with only the
    // eight, it took them in the order of a hash table, the same in every commit).
    for (let b = 0; b < 100; b++) await ops.submitBatch({ tenantId: "t", type: "timed", items: items(1) });
    await db.pool.query("ANALYZE");
    const commits = groupCommits();
    const claimed = await commits.store.claimDue(batches * rounds * callers, "w", 60_000, ["task"]);
    expect(claimed).toHaveLength(batches * rounds * callers);
    const byBatch = new Map<string, typeof claimed>();
    for (const row of claimed) byBatch.set(row.batchId!, [...(byBatch.get(row.batchId!) ?? []), row]);
    await Promise.all(
      Array.from({ length: callers }, async (_, caller) => {
        for (let round = 0; round < rounds; round++) {
          // One child of every batch: each group commit moves all eight batches' counters.
          const rows = [...byBatch.values()].map((children) => children[round * callers + caller]!);
          await commits.commit(
            rows.map((row) => ({
              id: row.id,
              lockToken: row.lockToken,
              finish: { to: "completed" as const, result: null },
            })),
          );
        }
      }),
    );
    expect(commits.deadlocks).toBe(0);
    expect(await corruptBatches()).toEqual([]);
    const { rows } = await db.pool.query(
      `SELECT status::text, count(*)::int AS n FROM operation_batches WHERE type = 'task' GROUP BY status`,
    );
    expect(rows).toEqual([{ status: "completed", n: batches }]);
  }, 60_000);
});

describe("fail_fast group commits racing each other", () => {
  // A failing row's group commit locks the unfinished children of its fail_fast batch before its
  // own rows (its cascade cancels them). In two passes, two commits that each fail a row of one
  // batch and complete a row of the other's deadlocked: each held the other's outcome row as a
  // sibling. One pass in id order over both sets cannot.
  it("two commits failing rows of each other's fail_fast batches at once: no deadlock victim", async () => {
    const ops = service();
    const commits = groupCommits();
    for (let round = 0; round < 20; round++) {
      const [b1, b2] = [
        await ops.submitBatch({ tenantId: "t", type: "task", items: items(2), failurePolicy: "fail_fast" }),
        await ops.submitBatch({ tenantId: "t", type: "task", items: items(2), failurePolicy: "fail_fast" }),
      ];
      const claimed = await commits.store.claimDue(4, "w", 60_000, ["task"]);
      const of = (batchId: string) => claimed.filter((row) => row.batchId === batchId);
      const [f1, y] = of(b1.batch.id);
      const [x, f2] = of(b2.batch.id);
      const outcome = (row: typeof f1, to: "failed" | "completed"): Outcome => ({
        id: row!.id,
        lockToken: row!.lockToken,
        finish: to === "failed" ? { to, error: { message: "boom" } } : { to, result: null },
      });
      await Promise.all([
        commits.commit([outcome(f1, "failed"), outcome(x, "completed")]),
        commits.commit([outcome(f2, "failed"), outcome(y, "completed")]),
      ]);
    }
    expect(commits.deadlocks).toBe(0);
    expect(await corruptBatches()).toEqual([]);
    const { rows } = await db.pool.query(
      `SELECT status::text, count(*)::int AS n FROM operations GROUP BY 1`,
    );
    expect(Object.fromEntries(rows.map((row) => [row.status, row.n]))).toEqual({ failed: 40, completed: 40 });
  }, 120_000);
});

describe("fail_fast racing a retry of a sibling", () => {
  // A group commit failing a row of a fail_fast batch cancels the batch's pending siblings. A
  // sibling an operator retried (cancelled → pending) while that commit waited for a row lock
  // committed first: the failure must see it pending and cancel it, as its counters see it.
  it("a sibling retried while the failing commit waits is cancelled by it, with exact counters", async () => {
    const ops = service();
    const { batch, operationIds } = await ops.submitBatch({
      tenantId: "t",
      type: "task",
      items: items(2),
      failurePolicy: "fail_fast",
    });
    const [failing, sibling] = [...operationIds].sort() as [string, string];
    await ops.cancelOperation("t", sibling);
    const store = storeOf(poolDb(db.connection.pool, { prepare: true }));
    const [claimed] = await store.claimById([failing], "w", 60_000);
    // The failing row is held (as a heartbeat or a cancel holds it for a moment): the group commit
    // has taken its snapshot and waits.
    const locker = await db.pool.connect();
    let failed: Promise<unknown>;
    try {
      await locker.query("BEGIN");
      await locker.query(`SELECT 1 FROM operations WHERE id = $1 FOR UPDATE`, [failing]);
      failed = store.finishOperations(
        [
          {
            id: claimed!.id,
            lockToken: claimed!.lockToken,
            finish: { to: "failed", error: { message: "boom" } },
          },
        ],
        NO_INLINE,
      );
      await waitFor("the group commit to wait for the failing row", async () => {
        const { rows } = await db.pool.query(
          `SELECT count(*)::int AS n FROM pg_stat_activity
           WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%operations_finish%'`,
        );
        return rows[0].n === 1;
      });
      expect(await ops.retryOperation("t", sibling)).toMatchObject({ status: "pending" });
      await locker.query("COMMIT");
    } finally {
      locker.release();
    }
    await failed;
    const { rows } = await db.pool.query(
      `SELECT id, status::text FROM operations WHERE batch_id = $1 ORDER BY id`,
      [batch.id],
    );
    expect(Object.fromEntries(rows.map((row) => [row.id, row.status]))).toEqual({
      [failing]: "failed",
      [sibling]: "cancelled",
    });
    expect(await corruptBatches()).toEqual([]);
    expect(await ops.getBatch("t", batch.id)).toMatchObject({ status: "failed" });
    const events = await db.pool.query(
      `SELECT topic FROM operation_outbox WHERE aggregate_id = $1 AND topic = 'batch.failed'`,
      [batch.id],
    );
    expect(events.rows).toHaveLength(1);
  });
});

describe("a worker's claims", () => {
  it("a run whose lease was reaped cannot record its late outcome on the same worker's new claim", async () => {
    const ops = service();
    const releases: (() => void)[] = [];
    const runs: number[] = [];
    const w = worker(
      ops,
      {
        // Ignores its signal on purpose: a stalled handler that comes back late.
        task: () => {
          const run = runs.push(runs.length + 1);
          return new Promise((resolve) => releases.push(() => resolve({ run })));
        },
      },
      { concurrency: 2, leaseMs: 120_000, heartbeatIntervalMs: 60_000 },
    );
    const { operation } = await ops.submitOperation({ tenantId: "t", type: "task", payload: { n: 1 } });
    await w.start();
    await waitFor("the first run", () => runs.length === 1);
    await db.pool.query(`UPDATE operations SET locked_until = now() - interval '1 second' WHERE id = $1`, [
      operation.id,
    ]);
    expect((await ops.createReaper().runOnce()).reaped).toBe(1);
    await waitFor("the same worker to claim it again", () => runs.length === 2);
    releases[0]!(); // the first, stale run finishes now
    await waitFor("the stale outcome to be judged", () => w.stats.rejected + w.stats.completed >= 1);
    releases[1]!();
    await waitFor(
      "the operation to complete",
      async () => (await ops.getOperation("t", operation.id)).status === "completed",
    );
    expect((await ops.getOperation("t", operation.id)).result).toEqual({ run: 2 });
    expect(w.stats).toMatchObject({ rejected: 1, completed: 1 });
  });

  it("a prefetched row cancelled before its handler starts never runs, even with a timeout", async () => {
    const ops = service();
    let releaseFirst!: () => void;
    const started: number[] = [];
    const w = worker(
      ops,
      {
        timed: (payload) => {
          started.push(payload.n);
          if (payload.n === 1) return new Promise((resolve) => (releaseFirst = () => resolve("first")));
          return "ran";
        },
      },
      { concurrency: 1, prefetch: 1, batchSize: 2, heartbeatIntervalMs: 50, leaseMs: 10_000 },
    );
    const first = await ops.submitOperation({ tenantId: "t", type: "timed", payload: { n: 1 } });
    const second = await ops.submitOperation({ tenantId: "t", type: "timed", payload: { n: 2 } });
    await w.start();
    await waitFor("the first to run and the second to be prefetched", async () => {
      const { rows } = await db.pool.query(
        `SELECT count(*)::int AS n FROM operations WHERE status = 'processing'`,
      );
      return started.length === 1 && rows[0].n === 2;
    });
    expect((await ops.cancelOperation("t", second.operation.id)).state).toBe("cancel_requested");
    // A heartbeat after the cancel request is how this worker (not listening) learns of it.
    await waitFor("a heartbeat after the cancel request", async () => {
      const { rows } = await db.pool.query(
        `SELECT locked_until - interval '10 seconds' > cancel_requested_at AS seen FROM operations WHERE id = $1`,
        [second.operation.id],
      );
      return rows[0].seen === true;
    });
    releaseFirst();
    await waitFor(
      "both to finish",
      async () => (await ops.getOperation("t", second.operation.id)).status === "cancelled",
    );
    expect(started).toEqual([1]);
    expect((await ops.getOperation("t", first.operation.id)).status).toBe("completed");
  });

  it("work that finished although a cancel was requested is recorded completed, with its result", async () => {
    const ops = service();
    const w = worker(ops, {
      // Sees the cancel, but its work is already done: it returns its result.
      task: (_payload, { signal }) =>
        new Promise((resolve) => signal.addEventListener("abort", () => resolve({ finished: true }))),
    });
    const { operation } = await ops.submitOperation({ tenantId: "t", type: "task", payload: { n: 1 } });
    await w.start();
    await waitFor(
      "the handler to run",
      async () => (await ops.getOperation("t", operation.id)).status === "processing",
    );
    await ops.cancelOperation("t", operation.id);
    await waitFor("the outcome", async () =>
      ["completed", "cancelled"].includes((await ops.getOperation("t", operation.id)).status),
    );
    expect(await ops.getOperation("t", operation.id)).toMatchObject({
      status: "completed",
      result: { finished: true },
    });
    await expect(ops.retryOperation("t", operation.id)).rejects.toBeInstanceOf(ConflictError);
  });
});

export { sleep };
