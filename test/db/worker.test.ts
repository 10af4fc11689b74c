// The worker runtime in one process: outcomes, retries, snoozes, timeouts, heartbeats, wake-ups,
// shutdown, cancel and retry, failure policies, the reaper and the queue metrics.
import { Client } from "pg";
import { z } from "zod";
import {
  ConflictError,
  createOperations,
  defineOperationType,
  NonRetryableError,
  silentLogger,
  snooze,
  type DeliveredEvent,
  type Handlers,
} from "../../src";
import type { Worker } from "../../src/execution/worker";
import { CANCEL_CHANNEL } from "../../src/store/statements/shared";
import { createTestDatabase, type TestDatabase } from "../support/db";
import { truncateAll, waitFor } from "../support/fixtures";

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.close());
beforeEach(() => truncateAll(db.pool));

const fast = { baseMs: 20, maxMs: 20, jitter: 0 };

const types = {
  task: defineOperationType({
    payload: z.object({ n: z.number().int(), mode: z.string().default("ok") }),
    maxAttempts: 3,
    retryBackoff: fast,
  }),
  slow: defineOperationType({ payload: z.object({ ms: z.number() }), timeoutMs: 150, retryBackoff: fast }),
};
type Types = typeof types;

const workers: Worker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((worker) => worker.stop()));
});

function setup(
  handlers: Handlers<Types>,
  workerOptions: Parameters<ReturnType<typeof service>["createWorker"]>[0] | object = {},
) {
  const delivered: DeliveredEvent[] = [];
  const ops = service(delivered);
  const worker = ops.createWorker({
    handlers,
    concurrency: 4,
    pollIntervalMs: 20,
    leaseMs: 5_000,
    relay: { pollIntervalMs: 20 },
    reaper: { intervalMs: 50 },
    ...workerOptions,
  });
  workers.push(worker);
  return { ops, worker, delivered };
}

function service(delivered: DeliveredEvent[]) {
  return createOperations({
    ...db.connection,
    types,
    logger: silentLogger,
    subscribers: [{ name: "recorder", deliver: (event) => void delivered.push(event) }],
  });
}

const items = (count: number, mode = "ok") => Array.from({ length: count }, (_, n) => ({ n, mode }));

async function operation(id: string) {
  const { rows } = await db.pool.query(
    `SELECT status::text, attempts, error, result, run_at > now() AS waiting, locked_by FROM operations WHERE id = $1`,
    [id],
  );
  return rows[0];
}

describe("running operations", () => {
  it("drains a batch, aggregates it once and delivers every event", async () => {
    const { ops, worker, delivered } = setup({ task: (payload) => ({ doubled: payload.n * 2 }) });
    await worker.start();
    const { batch, operationIds } = await ops.submitBatch({ tenantId: "t", type: "task", items: items(12) });
    await waitFor(
      "the batch to complete",
      async () => (await ops.getBatch("t", batch.id)).status === "completed",
    );
    expect((await ops.getOperation("t", operationIds[5]!)).result).toEqual({ doubled: 10 });
    await waitFor(
      "every event delivered",
      () => delivered.filter((e) => e.topic === "batch.completed").length === 1,
    );
    await waitFor(
      "all operation events",
      () => delivered.filter((e) => e.topic === "operation.completed").length === 12,
    );
    expect(
      delivered.filter((e) => e.topic.startsWith("batch.") && e.topic !== "batch.submitted"),
    ).toHaveLength(1);
    expect(worker.stats).toMatchObject({ claimed: 12, completed: 12, rejected: 0 });
  });

  it("retries a failure after its backoff, then completes; attempts and the last error are kept", async () => {
    let calls = 0;
    const { ops, worker } = setup({
      task: () => {
        if (++calls === 1) throw new Error("flaky upstream");
        return "ok";
      },
    });
    await worker.start();
    const { operation: op } = await ops.submitOperation({ tenantId: "t", type: "task", payload: { n: 1 } });
    await waitFor("the retry to complete", async () => (await operation(op.id)).status === "completed");
    expect(await operation(op.id)).toMatchObject({ attempts: 2, result: "ok", error: null });
    expect(worker.stats).toMatchObject({ retried: 1, completed: 1 });
  });

  it("fails at once on NonRetryableError, and after maxAttempts otherwise", async () => {
    const { ops, worker } = setup({
      task: (payload) => {
        throw payload.mode === "fatal" ? new NonRetryableError("bad document") : new Error("still down");
      },
    });
    await worker.start();
    const fatal = await ops.submitOperation({
      tenantId: "t",
      type: "task",
      payload: { n: 1, mode: "fatal" },
    });
    const flaky = await ops.submitOperation({ tenantId: "t", type: "task", payload: { n: 2 } });
    await waitFor(
      "both to fail",
      async () =>
        (await operation(fatal.operation.id)).status === "failed" &&
        (await operation(flaky.operation.id)).status === "failed",
    );
    expect(await operation(fatal.operation.id)).toMatchObject({
      attempts: 1,
      error: { name: "NonRetryableError", message: "bad document", retryable: false },
    });
    expect(await operation(flaky.operation.id)).toMatchObject({
      attempts: 3,
      error: { message: "still down", retryable: false },
    });
  });

  it("snoozes without using an attempt", async () => {
    let calls = 0;
    const { ops, worker } = setup({
      task: () => {
        if (++calls === 1) throw snooze(60_000);
        return "later";
      },
    });
    await worker.start();
    const { operation: op } = await ops.submitOperation({ tenantId: "t", type: "task", payload: { n: 1 } });
    await waitFor("the snooze", async () => (await operation(op.id)).waiting === true);
    expect(await operation(op.id)).toMatchObject({ status: "pending", attempts: 0, locked_by: null });
    await db.pool.query(`UPDATE operations SET run_at = now() WHERE id = $1`, [op.id]);
    await waitFor("the second run", async () => (await operation(op.id)).status === "completed");
    expect((await operation(op.id)).attempts).toBe(1);
  });

  it("aborts a handler past its type's timeout and retries it", async () => {
    const signals: string[] = [];
    const { ops, worker } = setup({
      slow: (payload, context) =>
        new Promise((resolve) => {
          if (context.attempt > 1) return resolve("quick second try");
          const timer = setTimeout(() => resolve("finished"), payload.ms);
          context.signal.addEventListener("abort", () => {
            clearTimeout(timer);
            signals.push((context.signal.reason as Error).name);
          });
        }),
    });
    await worker.start();
    const { operation: op } = await ops.submitOperation({
      tenantId: "t",
      type: "slow",
      payload: { ms: 10_000 },
    });
    await waitFor("the retry to complete", async () => (await operation(op.id)).status === "completed");
    expect(signals).toEqual(["HandlerTimeoutError"]);
    expect((await operation(op.id)).result).toBe("quick second try");
  });

  it("keeps a long handler's lease alive by heartbeat: the reaper never takes it", async () => {
    let release!: () => void;
    const { ops, worker } = setup(
      { task: () => new Promise<string>((resolve) => (release = () => resolve("done"))) },
      { leaseMs: 1_000, heartbeatIntervalMs: 100 },
    );
    await worker.start();
    const { operation: op } = await ops.submitOperation({ tenantId: "t", type: "task", payload: { n: 1 } });
    await waitFor("the handler to start", () => release !== undefined);
    const reaper = ops.createReaper();
    for (let i = 0; i < 4; i++) {
      await new Promise((resolve) => setTimeout(resolve, 1_000)); // past the lease, four times over
      expect((await reaper.runOnce()).reaped).toBe(0);
    }
    release();
    await waitFor("completion", async () => (await operation(op.id)).status === "completed");
    expect((await operation(op.id)).attempts).toBe(1);
    expect(worker.stats.rejected).toBe(0);
  });
});

describe("a worker that cannot extend its leases (its own clock fences it)", () => {
  // The heartbeat hangs, as it does when the database cannot be reached: the worker must stop its
  // handlers before the lease it can no longer extend runs out, so that the reaper and another
  // worker never run the operation while its first run goes on (issue 28, finding 3).
  const HUNG_HEARTBEAT = `
    CREATE OR REPLACE FUNCTION operations_heartbeat(ids uuid[], tokens uuid[], lease_seconds double precision)
    RETURNS TABLE (beat_lock_token uuid, beat_cancel_requested boolean) LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_sleep(60); END $$`;
  let original = "";
  beforeEach(async () => {
    const { rows } = await db.pool.query(
      `SELECT pg_get_functiondef('operations_heartbeat(uuid[], uuid[], double precision)'::regprocedure) AS def`,
    );
    original = rows[0].def;
  });
  afterEach(async () => {
    await db.pool.query(original);
    await db.pool.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND datname = current_database()`,
    );
  });

  it("aborts its handlers with LeaseLost before the lease runs out: no two runs of one operation overlap", async () => {
    const runs: { worker: string; attempt: number; start: number; stop?: number; reason?: string }[] = [];
    const handler =
      (worker: string): Handlers<Types>["task"] =>
      async (_payload, { attempt, signal }) => {
        const run: (typeof runs)[number] = { worker, attempt, start: performance.now() };
        runs.push(run);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 30_000);
          signal.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
        });
        run.stop = performance.now();
        run.reason = (signal.reason as Error | undefined)?.name;
        throw signal.reason ?? new Error("not aborted");
      };
    const leaseMs = 1_000;
    const a = setup(
      { task: handler("a") },
      {
        id: "a",
        concurrency: 1,
        prefetch: 0,
        leaseMs,
        heartbeatIntervalMs: 100,
        shutdownTimeoutMs: 0,
        reaper: false,
        relay: false,
      },
    );
    await a.worker.start();
    const { operation: op } = await a.ops.submitOperation({ tenantId: "t", type: "task", payload: { n: 1 } });
    await waitFor("a to run the operation", () => runs.length === 1);
    await db.pool.query(HUNG_HEARTBEAT);
    // Another worker, with the reaper that takes expired leases back.
    const b = setup(
      { task: handler("b") },
      {
        id: "b",
        concurrency: 1,
        prefetch: 0,
        leaseMs: 60_000,
        shutdownTimeoutMs: 0,
        relay: false,
        reaper: { intervalMs: 50 },
      },
    );
    await b.worker.start();
    await waitFor("a second run of the operation", () => runs.length >= 2, 20_000);
    const [first, second] = runs;
    expect(first).toMatchObject({ worker: "a", attempt: 1, reason: "LeaseLost" });
    expect(first!.stop).toBeLessThan(second!.start);
    // Stopped by its own clock: within the lease, not long after it.
    expect(first!.stop! - first!.start).toBeLessThan(leaseMs);
    expect((await operation(op.id)).attempts).toBe(2);
  });
});

describe("wake-ups", () => {
  it("wakes on NOTIFY long before its poll interval, and again after its listener is killed", async () => {
    const ran: number[] = [];
    const { ops, worker } = setup(
      { task: (payload) => void ran.push(payload.n) },
      { pollIntervalMs: 60_000, listen: { connectionString: db.url } },
    );
    await worker.start();
    await ops.submitOperation({ tenantId: "t", type: "task", payload: { n: 1 } });
    await waitFor("a wake-up by notification", () => ran.length === 1, 5_000);

    const { rows } = await db.pool.query(
      `SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity WHERE application_name = 'prisma-operations-listener' AND datname = current_database()`,
    );
    expect(rows).toEqual([{ killed: true }]);
    await waitFor("the listener to reconnect", () => worker.listenerConnections === 2, 5_000);
    await ops.submitOperation({ tenantId: "t", type: "task", payload: { n: 2 } });
    await waitFor("a wake-up after reconnecting", () => ran.length === 2, 5_000);
  });
});

describe('prefetch "auto" (the default)', () => {
  it("claims far ahead of its slots while handlers take no time", async () => {
    const { ops, worker } = setup({ task: () => undefined }, { concurrency: 2 });
    await worker.start();
    let mostHeld = 0;
    const sampler = setInterval(() => (mostHeld = Math.max(mostHeld, worker.inFlight)), 2);
    try {
      const { batch } = await ops.submitBatch({ tenantId: "t", type: "task", items: items(2_000) });
      await waitFor(
        "the batch to complete",
        async () => (await ops.getBatch("t", batch.id)).status === "completed",
        30_000,
      );
    } finally {
      clearInterval(sampler);
    }
    // With a fixed prefetch of 0 a worker never holds more than its slots plus outcomes recording.
    expect(mostHeld).toBeGreaterThan(20);
  });

  it("claims nothing ahead while handlers are slow, so an idle worker gets the waiting rows", async () => {
    const releases: (() => void)[] = [];
    const blocking = { task: () => new Promise<void>((resolve) => releases.push(resolve)) };
    const first = setup(blocking, { concurrency: 1 });
    await first.worker.start();
    await first.ops.submitBatch({ tenantId: "t", type: "task", items: items(4) });
    await waitFor("the first worker to start one", () => releases.length === 1);
    const second = setup(blocking, { concurrency: 1 });
    await second.worker.start();
    await waitFor("the second worker to start another", () => releases.length === 2);
    expect([first.worker.inFlight, second.worker.inFlight]).toEqual([1, 1]);
    const { rows } = await db.pool.query(
      `SELECT count(*)::int AS held FROM operations WHERE status = 'processing'`,
    );
    expect(rows).toEqual([{ held: 2 }]);
    for (const release of releases) release();
  });
  it("a notification does not make a busy worker take rows it cannot start", async () => {
    const ran: string[] = [];
    const releases: (() => void)[] = [];
    const blockingAs = (name: string) => ({
      task: () => {
        ran.push(name);
        return new Promise<void>((resolve) => releases.push(resolve));
      },
    });
    const listen = { connectionString: db.url };
    const busy = setup(blockingAs("busy"), { concurrency: 1, pollIntervalMs: 60_000, listen });
    await busy.worker.start();
    await busy.ops.submitOperation({ tenantId: "t", type: "task", payload: { n: 1 } });
    await waitFor("the busy worker to start the first row", () => ran.length === 1, 5_000);
    // Notified of a second row while its one slot is taken and nothing waits in its buffer.
    await busy.ops.submitOperation({ tenantId: "t", type: "task", payload: { n: 2 } });
    const idle = setup(blockingAs("idle"), { concurrency: 1, pollIntervalMs: 60_000, listen });
    await idle.worker.start();
    await waitFor("the second row to start", () => ran.length === 2, 5_000);
    expect(ran).toEqual(["busy", "idle"]);
    expect(busy.worker.inFlight).toBe(1);
    for (const release of releases) release();
  });
});

describe("graceful shutdown", () => {
  it("hands back claimed-but-unstarted rows and lets running ones finish", async () => {
    const releases: (() => void)[] = [];
    const { ops, worker } = setup(
      { task: () => new Promise<void>((resolve) => releases.push(resolve)) },
      { concurrency: 1, prefetch: 2, batchSize: 3 },
    );
    await worker.start();
    const { operationIds } = await ops.submitBatch({ tenantId: "t", type: "task", items: items(3) });
    await waitFor("one running, two claimed ahead", () => releases.length === 1 && worker.inFlight === 3);
    const stopped = worker.stop();
    await waitFor("the unstarted two handed back", async () => {
      const states = await Promise.all(operationIds.slice(1).map(operation));
      return states.every((state) => state.status === "pending" && state.attempts === 0);
    });
    releases[0]!();
    await stopped;
    workers.splice(0);
    expect((await operation(operationIds[0]!)).status).toBe("completed");
    expect(releases).toHaveLength(1);
  });

  it("wakes the other workers for the rows it hands back, without waiting for their poll", async () => {
    const releases: (() => void)[] = [];
    const ran: number[] = [];
    const leaving = setup(
      { task: () => new Promise<void>((resolve) => releases.push(resolve)) },
      { concurrency: 1, prefetch: 2, batchSize: 3 },
    );
    const staying = setup(
      { task: (payload) => void ran.push(payload.n) },
      { pollIntervalMs: 60_000, listen: { connectionString: db.url } },
    );
    await leaving.worker.start();
    const { operationIds } = await leaving.ops.submitBatch({ tenantId: "t", type: "task", items: items(3) });
    await waitFor(
      "one running, two claimed ahead",
      () => releases.length === 1 && leaving.worker.inFlight === 3,
    );
    await staying.worker.start(); // its first claim finds nothing: all three are held
    const stopped = leaving.worker.stop();
    await waitFor("the other worker to run the two handed back", () => ran.length === 2, 5_000);
    releases[0]!();
    await stopped;
    expect(ran.sort()).toEqual([1, 2]);
    expect((await operation(operationIds[0]!)).status).toBe("completed");
  });

  it("aborts handlers still running at the timeout and hands their rows back without using the attempt", async () => {
    const { ops, worker } = setup(
      {
        task: (_payload, context) =>
          new Promise((_, reject) =>
            context.signal.addEventListener("abort", () => reject(context.signal.reason)),
          ),
      },
      { shutdownTimeoutMs: 100 },
    );
    await worker.start();
    const { operation: op } = await ops.submitOperation({ tenantId: "t", type: "task", payload: { n: 1 } });
    await waitFor("the handler to run", async () => (await operation(op.id)).status === "processing");
    await worker.stop();
    workers.splice(0);
    expect(await operation(op.id)).toMatchObject({ status: "pending", attempts: 0, locked_by: null });
  });
});

describe("cancel", () => {
  it("cancels a pending operation at once, and refuses to cancel a finished one", async () => {
    const delivered: DeliveredEvent[] = [];
    const ops = service(delivered);
    const { operation: op } = await ops.submitOperation({ tenantId: "t", type: "task", payload: { n: 1 } });
    const result = await ops.cancelOperation("t", op.id);
    expect(result.state).toBe("cancelled");
    expect(result.operation).toMatchObject({ status: "cancelled", finishedAt: expect.any(Date) });
    expect(delivered.map((e) => e.topic)).toContain("operation.cancelled");
    await expect(ops.cancelOperation("t", op.id)).rejects.toBeInstanceOf(ConflictError);
    await expect(ops.cancelOperation("other-tenant", op.id)).rejects.toMatchObject({ code: "not_found" });
  });

  // Issue 28, finding 6: LISTEN was off unless configured, so rows claimed ahead learnt of a
  // cancel only at the next heartbeat (a third of the lease), and started meanwhile.
  it("by default a worker listens: rows it claimed ahead never start once the cancel's notification is here", async () => {
    const starts: number[] = [];
    const { ops, worker } = setup(
      {
        task: async () => {
          starts.push(performance.now());
          await new Promise((resolve) => setTimeout(resolve, 30));
        },
      },
      // No `listen` given. Rows claimed ahead: 20 of them wait here behind the one slot.
      { concurrency: 1, prefetch: 20, pollIntervalMs: 1_000, leaseMs: 30_000 },
    );
    await worker.start();
    expect(worker.listenerConnections).toBe(1);
    const { batch } = await ops.submitBatch({ tenantId: "t", type: "task", items: items(50) });
    await waitFor("rows claimed ahead", () => starts.length >= 2 && worker.inFlight > 10);
    // This test's own LISTEN connection hears the cancel's notifications when the worker's does.
    const listener = new Client({ connectionString: db.url });
    await listener.connect();
    let heardAt = Infinity;
    listener.on("notification", () => (heardAt = Math.min(heardAt, performance.now())));
    await listener.query(`LISTEN ${CANCEL_CHANNEL}`);
    try {
      await ops.cancelBatch("t", batch.id);
      await waitFor("the notifications", () => heardAt < Infinity);
      await waitFor("the worker to hand back what it held", () => worker.inFlight === 0);
    } finally {
      await listener.end();
    }
    expect(starts.filter((at) => at > heardAt + 100)).toEqual([]);
    expect(await ops.getBatch("t", batch.id)).toMatchObject({ status: "cancelled" });
  });

  it("with `listen: false` it claims nothing ahead unless told to: a cancel cannot reach rows waiting here", async () => {
    const { ops, worker } = setup(
      { task: () => new Promise((resolve) => setTimeout(resolve, 5)) },
      {
        concurrency: 2,
        listen: false,
      },
    );
    await worker.start();
    expect(worker.listenerConnections).toBe(0);
    let mostHeld = 0;
    const sampler = setInterval(() => (mostHeld = Math.max(mostHeld, worker.inFlight)), 1);
    try {
      const { batch } = await ops.submitBatch({ tenantId: "t", type: "task", items: items(200) });
      await waitFor("the batch", async () => (await ops.getBatch("t", batch.id)).status === "completed");
    } finally {
      clearInterval(sampler);
    }
    expect(mostHeld).toBeGreaterThan(0);
    expect(mostHeld).toBeLessThanOrEqual(2);
  });

  it("aborts a running handler through its signal, and the row ends cancelled", async () => {
    const { ops, worker } = setup(
      {
        task: (_payload, context) =>
          new Promise((_, reject) =>
            context.signal.addEventListener("abort", () => reject(context.signal.reason)),
          ),
      },
      { listen: { connectionString: db.url } },
    );
    await worker.start();
    const { batch, operationIds } = await ops.submitBatch({ tenantId: "t", type: "task", items: items(1) });
    await waitFor(
      "the handler to run",
      async () => (await operation(operationIds[0]!)).status === "processing",
    );
    expect((await ops.cancelOperation("t", operationIds[0]!)).state).toBe("cancel_requested");
    await waitFor(
      "the row to end cancelled",
      async () => (await operation(operationIds[0]!)).status === "cancelled",
    );
    expect((await ops.getBatch("t", batch.id)).status).toBe("cancelled");
    expect(worker.stats.cancelled).toBe(1);
  });

  it("cascades a batch cancel to every child that has not finished", async () => {
    const started: number[] = [];
    const { ops, worker } = setup(
      {
        task: (payload, context) => {
          if (payload.mode === "quick") return "done";
          started.push(payload.n);
          return new Promise((_, reject) =>
            context.signal.addEventListener("abort", () => reject(new Error("stopped"))),
          );
        },
      },
      { concurrency: 2, listen: { connectionString: db.url } },
    );
    await worker.start();
    const quick = await ops.submitBatch({ tenantId: "t", type: "task", items: [{ n: 0, mode: "quick" }] });
    await waitFor(
      "the quick batch",
      async () => (await ops.getBatch("t", quick.batch.id)).status === "completed",
    );
    const { batch } = await ops.submitBatch({ tenantId: "t", type: "task", items: items(6) });
    await waitFor("two children running", () => started.length === 2);
    const afterCancel = await ops.cancelBatch("t", batch.id);
    // The pending four are cancelled at once; the running two follow when their handlers return.
    expect(afterCancel.counts.pending).toBe(0);
    expect(afterCancel.counts.cancelled).toBeGreaterThanOrEqual(4);
    await waitFor(
      "the running two to stop",
      async () => (await ops.getBatch("t", batch.id)).status === "cancelled",
    );
    const final = await ops.getBatch("t", batch.id);
    expect(final.counts).toMatchObject({ cancelled: 6, pending: 0, processing: 0 });
    await expect(ops.cancelBatch("t", batch.id)).rejects.toMatchObject({ code: "batch_finished" });
    expect(started).toHaveLength(2);
  });
});

describe("failure policies and the cancelled child", () => {
  it("wait_all: a cancelled child is terminal, so the batch completes as cancelled; any failure makes it failed", async () => {
    const { ops, worker } = setup({
      task: (payload) => {
        if (payload.mode === "fatal") throw new NonRetryableError("no");
        return "ok";
      },
    });
    const cancelledOne = await ops.submitBatch({ tenantId: "t", type: "task", items: items(3) });
    await ops.cancelOperation("t", cancelledOne.operationIds[1]!);
    const mixed = await ops.submitBatch({
      tenantId: "t",
      type: "task",
      items: [{ n: 0 }, { n: 1, mode: "fatal" }, { n: 2 }],
    });
    await ops.cancelOperation("t", mixed.operationIds[2]!);
    await worker.start();
    await waitFor("both batches to end", async () => {
      const [a, b] = await Promise.all([
        ops.getBatch("t", cancelledOne.batch.id),
        ops.getBatch("t", mixed.batch.id),
      ]);
      return (
        a.status !== "pending" &&
        a.status !== "processing" &&
        b.status !== "pending" &&
        b.status !== "processing"
      );
    });
    expect((await ops.getBatch("t", cancelledOne.batch.id)).status).toBe("cancelled");
    expect((await ops.getBatch("t", mixed.batch.id)).status).toBe("failed");
  });

  it("fail_fast: the first failure cancels pending siblings and stops running ones", async () => {
    const ran: number[] = [];
    const { ops, worker } = setup(
      {
        task: (payload, context) => {
          ran.push(payload.n);
          if (payload.mode === "fatal") throw new NonRetryableError("broken");
          return new Promise((_, reject) =>
            context.signal.addEventListener("abort", () => reject(new Error("stopped"))),
          );
        },
      },
      { concurrency: 2, listen: { connectionString: db.url } },
    );
    const { batch } = await ops.submitBatch({
      tenantId: "t",
      type: "task",
      failurePolicy: "fail_fast",
      items: [{ n: 0 }, { n: 1, mode: "fatal" }, { n: 2 }, { n: 3 }, { n: 4 }],
    });
    await worker.start();
    await waitFor("the batch to fail", async () => (await ops.getBatch("t", batch.id)).status === "failed");
    const final = await ops.getBatch("t", batch.id);
    expect(final.counts).toMatchObject({ failed: 1, cancelled: 4, completed: 0, pending: 0, processing: 0 });
    // The others never started — except, possibly, one claimed in the very instant of the failure,
    // which was then asked to stop like the running one.
    expect(ran).toEqual(expect.arrayContaining([0, 1]));
    expect(ran.length).toBeLessThanOrEqual(3);
    const { rows } = await db.pool.query(
      `SELECT topic, count(*)::int AS n FROM operation_outbox WHERE aggregate_id = $1 GROUP BY topic ORDER BY topic`,
      [batch.id],
    );
    expect(rows).toEqual([
      { topic: "batch.failed", n: 1 },
      { topic: "batch.submitted", n: 1 },
    ]);
  });
});

describe("retry", () => {
  it("re-runs only a batch's failed children, with fresh attempts, and completes it", async () => {
    const runs = new Map<number, number>();
    let broken = true;
    const handlers: Handlers<Types> = {
      task: (payload) => {
        runs.set(payload.n, (runs.get(payload.n) ?? 0) + 1);
        if (broken && payload.n % 2 === 1) throw new NonRetryableError("odd ones fail today");
        return "ok";
      },
    };
    const { ops, worker } = setup(handlers);
    await worker.start();
    const { batch } = await ops.submitBatch({ tenantId: "t", type: "task", items: items(6) });
    await waitFor("the batch to fail", async () => (await ops.getBatch("t", batch.id)).status === "failed");
    await worker.stop(); // so that the retried state can be read before anyone runs it
    workers.splice(0);

    broken = false;
    const retried = await ops.retryBatch("t", batch.id);
    expect(retried.status).toBe("processing");
    expect(retried.counts).toMatchObject({ failed: 0, completed: 3, pending: 3 });
    const { worker: second } = setup(handlers);
    await second.start();
    await waitFor(
      "the batch to complete",
      async () => (await ops.getBatch("t", batch.id)).status === "completed",
    );
    expect([...runs.entries()].sort()).toEqual([
      [0, 1],
      [1, 2],
      [2, 1],
      [3, 2],
      [4, 1],
      [5, 2],
    ]);
    const { rows } = await db.pool.query(
      `SELECT max(attempts)::int AS attempts FROM operations WHERE batch_id = $1`,
      [batch.id],
    );
    expect(rows[0].attempts).toBe(1);
    await expect(ops.retryBatch("t", batch.id)).rejects.toMatchObject({ code: "not_retryable" });
  });

  it("retries a cancelled operation, and refuses to retry a pending or completed one", async () => {
    const { ops, worker } = setup({ task: () => "ok" });
    const { operation: op } = await ops.submitOperation({ tenantId: "t", type: "task", payload: { n: 1 } });
    await expect(ops.retryOperation("t", op.id)).rejects.toMatchObject({ code: "not_retryable" });
    await ops.cancelOperation("t", op.id);
    expect((await ops.retryOperation("t", op.id)).status).toBe("pending");
    await worker.start();
    await waitFor("completion", async () => (await operation(op.id)).status === "completed");
    await expect(ops.retryOperation("t", op.id)).rejects.toBeInstanceOf(ConflictError);
  });
});

describe("the reaper", () => {
  it("takes back an expired lease: due again with the attempt counted, or failed when none are left", async () => {
    const ops = service([]);
    const { operation: a } = await ops.submitOperation({ tenantId: "t", type: "task", payload: { n: 1 } });
    const { operation: b } = await ops.submitOperation({
      tenantId: "t",
      type: "task",
      payload: { n: 2 },
      maxAttempts: 1,
    });
    // Two dead workers' claims, leases already expired (backdated rather than waited for).
    await db.pool.query(
      `UPDATE operations SET status = 'processing', attempts = 1, locked_by = 'dead-worker', lock_token = gen_random_uuid(), locked_until = now() - interval '1 second'`,
    );
    expect(await ops.createReaper().runOnce()).toEqual({ reaped: 2, reconciled: 0 });
    expect(await operation(a.id)).toMatchObject({ status: "pending", attempts: 1, locked_by: null });
    expect(await operation(b.id)).toMatchObject({ status: "failed", error: { name: "LeaseExpired" } });
  });

  it("reconciles a batch whose children are all terminal, and one whose children are gone", async () => {
    const ops = service([]);
    const done = await ops.submitBatch({ tenantId: "t", type: "task", items: items(3) });
    const orphan = await ops.submitBatch({ tenantId: "t", type: "task", items: items(2) });
    // Rows changed outside the module: children finished behind the counters' back, or deleted.
    await db.pool.query(`UPDATE operations SET status = 'completed' WHERE batch_id = $1`, [done.batch.id]);
    await db.pool.query(`DELETE FROM operations WHERE batch_id = $1`, [orphan.batch.id]);
    const reaper = ops.createReaper({ reconcileAfterMs: 60_000 });
    expect((await reaper.runOnce()).reconciled).toBe(0); // too recent: they might be moving
    await db.pool.query(`UPDATE operation_batches SET updated_at = now() - interval '2 minutes'`);
    expect((await reaper.runOnce()).reconciled).toBe(2);
    expect(await ops.getBatch("t", done.batch.id)).toMatchObject({
      status: "completed",
      counts: { completed: 3 },
    });
    expect(await ops.getBatch("t", orphan.batch.id)).toMatchObject({
      status: "failed",
      counts: { failed: 2 },
      error: { name: "MissingChildren" },
    });
    const { rows } = await db.pool.query(
      `SELECT topic FROM operation_outbox WHERE topic IN ('batch.completed', 'batch.failed') ORDER BY topic`,
    );
    expect(rows.map((row) => row.topic)).toEqual(["batch.completed", "batch.failed"]);
  });
});

describe("queue metrics", () => {
  it("splits depth by type and tenant, and never counts a batch as work", async () => {
    const ops = service([]);
    await ops.ready();
    await ops.submitBatch({ tenantId: "a", type: "task", items: items(5) });
    await ops.submitOperation({
      tenantId: "a",
      type: "task",
      payload: { n: 9 },
      runAt: new Date(Date.now() + 3_600_000),
    });
    await ops.submitOperation({ tenantId: "b", type: "slow", payload: { ms: 1 } });
    // Submitted in a plain $transaction: its event waits for a relay (the subscriber's backlog).
    await db.prisma.$transaction((tx) =>
      ops.submitOperation(
        { tenantId: "a", type: "task", payload: { n: 10 }, runAt: new Date(Date.now() + 3_600_000) },
        { tx },
      ),
    );
    await db.pool.query(
      `UPDATE operations SET status = 'processing', locked_by = 'w', lock_token = gen_random_uuid(), locked_until = now() + interval '1 minute', run_at = now() - interval '10 seconds'
       WHERE id = (SELECT id FROM operations WHERE tenant_id = 'a' ORDER BY id LIMIT 1)`,
    );
    await db.pool.query(`UPDATE operations SET run_at = now() - interval '30 seconds' WHERE tenant_id = 'b'`);
    const stats = await ops.queueStats();
    expect(stats.operations).toEqual([
      expect.objectContaining({
        type: "slow",
        tenantId: "b",
        claimable: 1,
        scheduled: 0,
        processing: 0,
        batchesInFlight: 0,
      }),
      expect.objectContaining({
        type: "task",
        tenantId: "a",
        claimable: 4,
        scheduled: 2,
        processing: 1,
        batchesInFlight: 1,
      }),
    ]);
    expect(stats.operations[0]!.oldestClaimableAgeSeconds).toBeGreaterThanOrEqual(29);
    expect(stats.totals).toMatchObject({
      claimable: 5,
      scheduled: 2,
      processing: 1,
      batchesInFlight: 1,
      deliveryBacklog: 1,
      deliveriesDead: 0,
    });
    const text = await ops.metrics();
    expect(text).toContain('prisma_operations_claimable{type="task",tenant="a"} 4');
    expect(text).toContain('prisma_operations_batches_in_flight{type="task",tenant="a"} 1');
    expect(text).toContain('prisma_operations_delivery_backlog{subscriber="recorder"} 1');
  });

  it("reads 0 for registered types, known tenants and subscribers when idle, rather than nothing", async () => {
    const ops = service([]);
    const idle = await ops.metrics();
    expect(idle).toContain('prisma_operations_claimable{type="task",tenant=""} 0');
    expect(idle).toContain('prisma_operations_claimable{type="slow",tenant=""} 0');
    const { operation } = await ops.submitOperation({ tenantId: "a", type: "task", payload: { n: 1 } });
    expect(await ops.metrics()).toContain('prisma_operations_claimable{type="task",tenant="a"} 1');
    await ops.cancelOperation("a", operation.id);
    const after = await ops.metrics();
    expect(after).toContain('prisma_operations_claimable{type="task",tenant="a"} 0');
    expect(after).toContain('prisma_operations_processing{type="task",tenant="a"} 0');
    expect(after).not.toContain('type="task",tenant=""');
    expect(after).toContain('prisma_operations_delivery_backlog{subscriber="recorder"} 0');
    expect(after).toContain('prisma_operations_deliveries_dead{subscriber="recorder"} 0');
  });
});
