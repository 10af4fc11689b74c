// The worker registry: a worker writes its row when it starts, refreshes it on every heartbeat
// and marks it stopped when it stops; the dashboard's reasons read it to tell "no worker handles
// this type" from "the workers are busy".
import { z } from "zod";
import { createOperations, defineOperationType, silentLogger } from "../../src";
import type { Worker } from "../../src/execution/worker";
import { createTestDatabase, type TestDatabase } from "../support/db";
import { truncateAll, waitFor } from "../support/fixtures";

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.close());
beforeEach(() => truncateAll(db.pool));

const types = {
  work: defineOperationType({ payload: z.object({ n: z.number() }) }),
  mail: defineOperationType({ payload: z.object({ to: z.string() }) }),
};

const workers: Worker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((worker) => worker.stop()));
});

function service() {
  return createOperations({ ...db.connection, types, logger: silentLogger });
}

async function registryRow(id: string) {
  const { rows } = await db.pool.query(
    `SELECT id, hostname, pid, types, concurrency, heartbeat_ms, started_at, seen_at, stopped_at
     FROM operation_workers WHERE id = $1`,
    [id],
  );
  return rows[0];
}

describe("the worker registry", () => {
  it("holds each worker from start to stop, seen on every heartbeat", async () => {
    const ops = service();
    const worker = ops.createWorker({
      id: "registry-worker",
      concurrency: 3,
      heartbeatIntervalMs: 50,
      pollIntervalMs: 20,
      relay: false,
      reaper: false,
      handlers: { mail: async () => ({}) },
    });
    workers.push(worker);
    await worker.start();
    const started = await registryRow("registry-worker");
    expect(started).toMatchObject({
      id: "registry-worker",
      pid: process.pid,
      types: ["mail"],
      concurrency: 3,
      heartbeat_ms: 50,
      stopped_at: null,
    });
    expect(typeof started.hostname).toBe("string");
    await waitFor("a heartbeat to mark the worker seen again", async () => {
      const row = await registryRow("registry-worker");
      return row.seen_at.getTime() > started.seen_at.getTime();
    });
    await worker.stop();
    workers.splice(0);
    const stopped = await registryRow("registry-worker");
    expect(stopped.stopped_at).toBeInstanceOf(Date);
    expect(stopped.started_at).toEqual(started.started_at);

    // A restart under the same id starts the row afresh.
    const again = ops.createWorker({
      id: "registry-worker",
      relay: false,
      reaper: false,
      handlers: { mail: async () => ({}) },
    });
    workers.push(again);
    await again.start();
    const restarted = await registryRow("registry-worker");
    expect(restarted.stopped_at).toBeNull();
    expect(restarted.started_at.getTime()).toBeGreaterThanOrEqual(stopped.stopped_at.getTime());
  });

  it("lets the overview tell a type nobody handles from one being worked on", async () => {
    const ops = service();
    await ops.submitOperation({ tenantId: "t", type: "work", payload: { n: 1 } });
    await db.pool.query(`UPDATE operations SET run_at = now() - interval '2 minutes'`);
    const worker = ops.createWorker({
      id: "mail-only",
      pollIntervalMs: 20,
      relay: false,
      reaper: false,
      handlers: { mail: async () => ({}) },
    });
    workers.push(worker);
    await worker.start();
    const overview = await ops.inspect("*").overview();
    expect(overview.workers).toEqual([
      expect.objectContaining({ id: "mail-only", types: ["mail"], state: "live", running: 0 }),
    ]);
    expect(overview.queues.find((q) => q.type === "work")?.reason).toMatchObject({
      code: "no_worker",
      text: expect.stringContaining('no live worker handles "work"'),
    });
    await worker.stop();
    workers.splice(0);
    expect((await ops.inspect("*").overview()).workers[0]).toMatchObject({
      id: "mail-only",
      state: "stopped",
    });
  });
});
