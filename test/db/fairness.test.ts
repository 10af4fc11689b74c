// Claiming order and running limits: a fair claim shares the rows wanted between the tenants that
// have due work (one tenant's huge backlog does not make the others wait), FIFO takes the oldest;
// concurrency limits hold across racing claims in many processes and are freed by a reaped lease.
import { z } from "zod";
import { createOperations, defineOperationType, silentLogger } from "../../src";
import type { ClaimedRow, ClaimPolicy } from "../../src/store/statements/claims";
import { createTestDatabase, type TestDatabase } from "../support/db";
import { truncateAll, waitFor } from "../support/fixtures";
import { spawnWorker, stopWorkers, type WorkerProcess } from "../support/processes";
import { storeOf } from "../support/store";

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
  await db.pool.query(
    `CREATE TABLE IF NOT EXISTS handler_runs (operation_id uuid, worker_id text, attempt int,
       started_at timestamptz DEFAULT clock_timestamp())`,
  );
});
afterAll(() => db.close());
beforeEach(() => truncateAll(db.pool));

const types = {
  task: defineOperationType({ payload: z.object({ n: z.number().int() }) }),
  limited: defineOperationType({
    payload: z.object({ n: z.number().int() }),
    concurrency: { total: 3, perTenant: 2 },
  }),
};

function service() {
  return createOperations({ ...db.connection, types, logger: silentLogger });
}

const items = (count: number) => Array.from({ length: count }, (_, n) => ({ n }));
const tenantsOf = (rows: ClaimedRow[]) => rows.map((row) => row.tenantId);
const count = (values: string[]) =>
  Object.fromEntries([...new Set(values)].sort().map((v) => [v, values.filter((x) => x === v).length]));

function claim(limit: number, policy: ClaimPolicy, type = "task") {
  return storeOf(db.prisma).claimDue(limit, "w", 60_000, [type], policy);
}

/** Tenant A submits a big batch first; B–E a few rows each, later. */
async function backlog(ops: ReturnType<typeof service>, type: "task" | "limited" = "task") {
  await ops.submitBatch({ tenantId: "A", type, items: items(200) });
  for (const tenantId of ["B", "C", "D", "E"]) await ops.submitBatch({ tenantId, type, items: items(5) });
}

describe("which due rows a claim takes", () => {
  it("fair: the rows wanted are shared between the tenants with due work, each oldest first", async () => {
    const ops = service();
    await backlog(ops);
    const fair = await claim(10, { fair: true });
    expect(count(tenantsOf(fair))).toEqual({ A: 2, B: 2, C: 2, D: 2, E: 2 });
    // A's oldest rows first, even though A is the busiest.
    const { rows } = await db.pool.query(
      `SELECT id::text FROM operations WHERE tenant_id = 'A' ORDER BY run_at, id LIMIT 2`,
    );
    expect(fair.filter((row) => row.tenantId === "A").map((row) => row.id)).toEqual(rows.map((r) => r.id));
  });

  it("FIFO: the oldest due rows, whoever they belong to", async () => {
    const ops = service();
    await backlog(ops);
    expect(count(tenantsOf(await claim(10, { fair: false })))).toEqual({ A: 10 });
  });

  it("fair claims go on where the last one stopped, so small claims rotate through every tenant", async () => {
    const ops = service();
    await backlog(ops);
    const order: string[] = [];
    let after: ClaimPolicy["after"];
    for (let i = 0; i < 7; i++) {
      const [row] = await claim(1, { fair: true, after });
      order.push(row!.tenantId);
      after = { type: row!.type, tenantId: row!.tenantId };
    }
    expect(order).toEqual(["A", "B", "C", "D", "E", "A", "B"]);
  });

  it("what a tenant leaves unused goes to the others; weights tilt the shares", async () => {
    const ops = service();
    await backlog(ops);
    expect(count(tenantsOf(await claim(40, { fair: true })))).toEqual({ A: 20, B: 5, C: 5, D: 5, E: 5 });
    await truncateAll(db.pool);
    await backlog(ops);
    const weighted = await claim(16, { fair: true, weights: { A: 4 } });
    expect(count(tenantsOf(weighted))).toEqual({ A: 8, B: 2, C: 2, D: 2, E: 2 });
  });

  it("a tenant's rows not due yet are passed over, and due ones of others taken", async () => {
    const ops = service();
    await ops.submitBatch({
      tenantId: "A",
      type: "task",
      items: items(5),
      runAt: new Date(Date.now() + 3_600_000),
    });
    await ops.submitBatch({ tenantId: "B", type: "task", items: items(3) });
    expect(count(tenantsOf(await claim(10, { fair: true })))).toEqual({ B: 3 });
  });
});

describe("a worker's buffer", () => {
  /** A worker whose handlers for A block until released; every start recorded by tenant. */
  function blockedOnA(
    options: { concurrency: number; prefetch: number },
    logger = silentLogger,
    connection = db.connection,
  ) {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const starts: string[] = [];
    const worker = createOperations({ ...connection, types, logger }).createWorker({
      handlers: {
        task: async (_payload, { tenantId }) => {
          starts.push(tenantId);
          if (tenantId === "A") await gate;
        },
      },
      ...options,
      pollIntervalMs: 60_000, // only a notification can make it claim again
      listen: { connectionString: db.url },
    });
    return { worker, starts, release: () => release() };
  }
  const processing = async (tenantId: string) =>
    Number(
      (
        await db.pool.query(
          `SELECT count(*) AS n FROM operations WHERE tenant_id = $1 AND status = 'processing'`,
          [tenantId],
        )
      ).rows[0].n,
    );

  it("takes a new tenant's rows when notified even while full of another's, and runs them next", async () => {
    const ops = service();
    await ops.submitBatch({ tenantId: "A", type: "task", items: items(100) });
    const { worker, starts, release } = blockedOnA({ concurrency: 4, prefetch: 20 });
    await worker.start();
    try {
      // Four of A's rows run (blocked) and twenty wait in the buffer: it is full.
      await waitFor("A's rows to fill the buffer", async () => (await processing("A")) === 24, 5_000);
      // The notification names B's queue: B's rows are claimed on their own, past the full buffer.
      await ops.submitBatch({ tenantId: "B", type: "task", items: items(2) });
      await waitFor(
        "B's rows claimed while the buffer is full",
        async () => (await processing("B")) === 2,
        5_000,
      );
      expect(starts).toEqual(["A", "A", "A", "A"]);
      expect(await processing("A")).toBe(24); // none of A's came with them
      release();
      await waitFor("B's rows to start", () => starts.filter((t) => t === "B").length === 2, 5_000);
      // Served in turn with A's 20 buffered rows, not after them.
      expect(starts.slice(4, 9).filter((t) => t === "B")).toHaveLength(2);
    } finally {
      release();
      await worker.stop();
    }
  });

  it("a new tenant's batch comes in one claim of its own, not a share of a claim with the busy tenant", async () => {
    const ops = service();
    await ops.submitBatch({ tenantId: "A", type: "task", items: items(200) });
    const { worker, release } = blockedOnA({ concurrency: 16, prefetch: 40 });
    await worker.start();
    try {
      await waitFor("A's rows to fill the buffer", async () => (await processing("A")) === 56, 5_000);
      // A claim shared with A (16 rows: 8 each) would leave two of B's ten behind until a slot frees.
      await ops.submitBatch({ tenantId: "B", type: "task", items: items(10) });
      await waitFor("all of B's rows claimed", async () => (await processing("B")) === 10, 5_000);
      expect(await processing("A")).toBe(56);
    } finally {
      release();
      await worker.stop();
    }
  });

  it("without the announced claim's function (a migration not applied), the regular claims take the rows", async () => {
    const ops = service();
    await db.pool.query(
      `ALTER FUNCTION operations_pick_announced(text[], text[], integer) RENAME TO pick_announced_away`,
    );
    const errors: string[] = [];
    const logger = { ...silentLogger, error: (message: string) => void errors.push(message) };
    try {
      await ops.submitBatch({ tenantId: "A", type: "task", items: items(30) });
      const { worker, starts, release } = blockedOnA(
        { concurrency: 2, prefetch: 5 },
        logger,
        db.newConnection(), // no statement prepared before the rename
      );
      await worker.start();
      try {
        await waitFor("A's rows to fill the buffer", async () => (await processing("A")) === 7, 5_000);
        await ops.submitBatch({ tenantId: "B", type: "task", items: items(3) });
        await waitFor("the announced claim to fail", () => errors.length > 0, 5_000);
        expect(errors[0]).toMatch(/announced/);
        release();
        await waitFor("B's rows to run", () => starts.filter((t) => t === "B").length === 3, 5_000);
      } finally {
        release();
        await worker.stop();
      }
    } finally {
      await db.pool.query(
        `ALTER FUNCTION pick_announced_away(text[], text[], integer) RENAME TO operations_pick_announced`,
      );
    }
  });
});

describe("concurrency limits", () => {
  const limits = [{ type: "limited", total: 3, perTenant: 2 }];

  it("a claim takes no more than the free slots, per type and per tenant", async () => {
    const ops = service();
    await backlog(ops, "limited");
    const first = await claim(10, { fair: true, limits }, "limited");
    expect(first).toHaveLength(3);
    expect(Math.max(...Object.values(count(tenantsOf(first))))).toBeLessThanOrEqual(2);
    expect(await claim(10, { fair: true, limits }, "limited")).toEqual([]);
    const stats = await ops.queueStats();
    expect(stats.operations.find((row) => row.type === "limited" && row.tenantId === "A")).toMatchObject({
      limits: { total: 3, perTenant: 2 },
      waitingForSlot: true,
    });
  });

  it("the dashboard says a queue waits for a slot, naming the limit", async () => {
    const ops = service();
    await ops.submitBatch({ tenantId: "A", type: "limited", items: items(5) });
    await claim(10, { fair: true, limits }, "limited"); // A's two slots taken
    const overview = await ops.inspect("*").overview();
    const queue = overview.queues.find((q) => q.type === "limited" && q.tenantId === "A");
    expect(queue?.reason).toMatchObject({
      code: "waiting_for_slot",
      text: expect.stringContaining("at most 2 at once for tenant A (limit per tenant), and 2 are running"),
    });
  });

  it("a reaped lease frees its slot", async () => {
    const ops = service();
    await ops.submitBatch({ tenantId: "A", type: "limited", items: items(5) });
    expect(await claim(10, { fair: true, limits }, "limited")).toHaveLength(2); // A's two slots
    await db.pool.query(
      `UPDATE operations SET locked_until = now() - interval '1 second' WHERE status = 'processing'`,
    );
    expect((await ops.createReaper().runOnce()).reaped).toBe(2);
    expect(await claim(10, { fair: true, limits }, "limited")).toHaveLength(2);
  });

  it("8 worker processes racing for slots never run more than the limits, sampled continuously", async () => {
    const ops = service();
    // New tenants' work is announced while the workers are busy (a notification's claim must count too).
    const later = ["D", "E", "F", "G"];
    const workers: WorkerProcess[] = Array.from({ length: 8 }, (_, i) =>
      spawnWorker({ WORKER_DATABASE_URL: db.url, WORKER_ID: `w${i}`, WORKER_CONCURRENCY: "4" }),
    );
    let maxTotal = 0;
    let maxPerTenant = 0;
    let samples = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const { rows } = await db.pool.query(
          `SELECT tenant_id, count(*)::int AS n FROM operations WHERE type = 'limited' AND status = 'processing'
           GROUP BY tenant_id`,
        );
        samples++;
        maxTotal = Math.max(
          maxTotal,
          rows.reduce((sum, row) => sum + row.n, 0),
        );
        maxPerTenant = Math.max(maxPerTenant, ...rows.map((row) => row.n), 0);
      }
    })();
    try {
      await Promise.all(workers.map((worker) => worker.ready));
      // Submitted once every worker is up: written before, 120 rows could all be done by the first
      // workers before the last one started, and no slot would ever be seen taken below.
      for (const tenantId of ["A", "B", "C"])
        await ops.submitBatch({ tenantId, type: "limited", items: items(40) });
      for (const tenantId of later) {
        await waitFor("a slot taken", async () => {
          const { rows } = await db.pool.query(
            `SELECT count(*)::int AS n FROM operations WHERE type = 'limited' AND status = 'processing'`,
          );
          return rows[0].n > 0;
        });
        await ops.submitBatch({ tenantId, type: "limited", items: items(10) });
      }
      const total = 120 + later.length * 10;
      await waitFor(
        `all ${total} to complete`,
        async () => {
          const { rows } = await db.pool.query(
            `SELECT count(*)::int AS n FROM operations WHERE type = 'limited' AND status = 'completed'`,
          );
          return rows[0].n === total;
        },
        60_000,
      );
    } finally {
      sampling = false;
      await sampler;
      await stopWorkers(workers);
    }
    expect(samples).toBeGreaterThan(100);
    expect(maxTotal).toBe(3); // reached, and never passed
    expect(maxPerTenant).toBe(2);
  });
});
