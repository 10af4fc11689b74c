// `createOperations({ prisma, pool })`: the module's own statements go straight to the pool the
// application's PrismaPg adapter is built on; only statements inside a transaction go through
// Prisma. Proved from the outside: what reaches the client, what the pool's connections prepare,
// that both ways read the same values, a pool on the wrong database, and a pool backend killed.
import { z } from "zod";
import { Pool } from "pg";
import {
  createOperations,
  DatabaseUnavailableError,
  defineOperationType,
  NonRetryableError,
  OperationsError,
  silentLogger,
  type DeliveredEvent,
} from "../../src";
import type { PrismaClient } from "../../src/generated/prisma/client";
import { createTestDatabase, type TestDatabase } from "../support/db";
import { countRows, OWED_DELIVERIES_SQL, truncateAll, waitFor } from "../support/fixtures";

const types = {
  task: defineOperationType({
    payload: z.object({ n: z.number().int(), fail: z.boolean().default(false) }),
    maxAttempts: 2,
  }),
};

const items = (count: number) => Array.from({ length: count }, (_, n) => ({ n, fail: n === 2 }));

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.close();
});
afterEach(async () => {
  await truncateAll(db.pool);
});

/** `prisma`, counting the statements sent on the client itself (not inside its transactions). */
function counting(prisma: PrismaClient) {
  const seen = { outside: [] as string[], transactions: 0 };
  const client = new Proxy(prisma, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof value !== "function") return value;
      const call = (...args: unknown[]) => (value as (...a: unknown[]) => unknown).apply(target, args);
      if (property === "$transaction") {
        return (...args: unknown[]) => {
          seen.transactions++;
          return call(...args);
        };
      }
      if (typeof property === "string" && /^\$(query|execute)Raw/.test(property)) {
        return (...args: unknown[]) => {
          seen.outside.push(property);
          return call(...args);
        };
      }
      return call;
    },
  });
  return { client, seen };
}

it("sends nothing through the client outside a transaction: submits, workers, deliveries, reads, cancels", async () => {
  const { client, seen } = counting(db.prisma);
  const delivered: DeliveredEvent[] = [];
  const ops = createOperations({
    prisma: client,
    pool: db.connection.pool,
    types,
    logger: silentLogger,
    subscribers: [{ name: "audit", deliver: (event) => void delivered.push(event) }],
  });
  const worker = ops.createWorker({
    handlers: {
      task: (payload) => {
        if (payload.fail) throw new NonRetryableError("this child fails");
        return { doubled: payload.n * 2 };
      },
    },
    concurrency: 4,
    listen: { connectionString: db.url },
    reaper: { intervalMs: 50 },
    relay: { pollIntervalMs: 50 },
  });
  await worker.start();
  const { batch, operationIds } = await ops.submitBatch({ tenantId: "t", type: "task", items: items(5) });
  const later = await ops.submitOperation({
    tenantId: "t",
    type: "task",
    payload: { n: 9 },
    runAt: new Date(Date.now() + 3_600_000),
  });
  await waitFor("the batch to fail", async () => (await ops.getBatch("t", batch.id)).status === "failed");
  await ops.getOperation("t", operationIds[0]!);
  await ops.listOperations({ tenantId: "t", includeBatches: true });
  await ops.queueStats();
  await ops.metrics();
  const inspector = ops.inspect("*");
  await inspector.overview();
  await inspector.batch(batch.id);
  await inspector.operation(operationIds[2]!);
  expect((await ops.cancelOperation("t", later.operation.id)).state).toBe("cancelled");
  await ops.cancelBatch("t", batch.id).catch(() => undefined); // finished: a conflict, read first
  await waitFor("every event delivered", async () => {
    const { rows } = await db.pool.query(OWED_DELIVERIES_SQL);
    return rows[0].owed === 0;
  });
  await worker.stop();

  expect(seen.outside).toEqual([]);
  expect(seen.transactions).toBe(0);
  expect(delivered.map((event) => event.topic)).toEqual(expect.arrayContaining(["batch.failed"]));

  // A retry is a transaction of the module's own: that, and only that, goes through Prisma.
  await ops.retryOperation("t", operationIds[2]!);
  expect(seen.transactions).toBe(1);
  expect(seen.outside).toEqual([]);
});

it("reads the same values through the pool as through the client", async () => {
  const viaPool = createOperations({ ...db.connection, types, logger: silentLogger });
  const viaClient = createOperations({ prisma: db.newPrisma(), types, logger: silentLogger });
  const { batch, operationIds } = await viaPool.submitBatch({
    tenantId: "t",
    type: "task",
    items: items(4),
    metadata: { upload: "u-1", sizes: [1, 2.5, null], nested: { ok: true } },
  });
  const worker = viaPool.createWorker({
    handlers: {
      task: (payload) => {
        if (payload.fail) throw new NonRetryableError("child 2 fails");
        return { doubled: payload.n * 2, at: "2026-12-02T00:00:00.000Z" };
      },
    },
  });
  await worker.start();
  await waitFor(
    "the batch to finish",
    async () => (await viaPool.getBatch("t", batch.id)).status === "failed",
  );
  await worker.stop();
  await viaPool.submitOperation({ tenantId: "u", type: "task", payload: { n: 1 }, idempotencyKey: "k" });

  const read = (ops: typeof viaPool) =>
    Promise.all([
      ops.getBatch("t", batch.id),
      Promise.all(operationIds.map((id) => ops.getOperation("t", id))),
      ops.listOperations({ tenantId: "t", includeBatches: true }),
      ops.listOperations({ tenantId: "u" }),
      // (Per-series rows also list what this process has seen; the totals are the database's.)
      ops.queueStats().then((stats) => stats.totals),
      // (`now` is when each was read.)
      ops
        .inspect("*")
        .batch(batch.id)
        .then(({ now: _, ...view }) => view),
      ops
        .inspect("*")
        .operation(operationIds[2]!)
        .then(({ now: _, ...view }) => view),
      ops.inspect("*").batches(),
    ]);
  const [fromPool, fromClient] = await Promise.all([read(viaPool), read(viaClient)]);
  expect(fromPool).toEqual(fromClient);
  // Not vacuous: the values are there, with their JavaScript types.
  expect(fromPool[0].createdAt).toBeInstanceOf(Date);
  expect(fromPool[0].metadata).toEqual({ upload: "u-1", sizes: [1, 2.5, null], nested: { ok: true } });
  expect(fromPool[1][0]!.result).toEqual({ doubled: 0, at: "2026-12-02T00:00:00.000Z" });
  expect(typeof fromPool[1][0]!.attempts).toBe("number");
});

describe("prepared statements on the pool", () => {
  async function preparedOn(pool: Pool): Promise<{ name: string; statement: string }[]> {
    const { rows } = await pool.query(`SELECT name, statement FROM pg_prepared_statements ORDER BY name`);
    return rows;
  }

  it("prepares the module's hot-path statements once per connection, and none of the application's", async () => {
    // One connection, so that everything below runs on the session whose statements are read.
    const { prisma, pool } = db.newConnection({ max: 1 });
    const ops = createOperations({ prisma, pool, types, logger: silentLogger });
    for (let n = 0; n < 3; n++) await ops.submitBatch({ tenantId: "t", type: "task", items: items(2) });
    for (let n = 0; n < 4; n++) await ops.listOperations({ tenantId: "t" });
    await prisma.operationBatch.findMany({ where: { tenantId: "t" } });
    await pool.query("SELECT 1 AS app_query");

    const prepared = await preparedOn(pool);
    const submits = prepared.filter((p) => p.statement.includes('INSERT INTO "operation_batches"'));
    expect(submits).toHaveLength(1);
    expect(submits[0]!.name).toMatch(/^po_[0-9a-f]{20}$/);
    expect(prepared.filter((p) => !p.name.startsWith("po_"))).toEqual([]);
    expect(prepared.filter((p) => /app_query|ORDER BY o\.id DESC/.test(p.statement))).toEqual([]);
  });

  it("prepares nothing with preparedStatements: false (PgBouncer in transaction mode)", async () => {
    const { prisma, pool } = db.newConnection({ max: 1 });
    const ops = createOperations({ prisma, pool, preparedStatements: false, types, logger: silentLogger });
    for (let n = 0; n < 3; n++) await ops.submitBatch({ tenantId: "t", type: "task", items: items(2) });
    expect(await preparedOn(pool)).toEqual([]);
  });

  it("refuses preparedStatements without a pool, saying what to use instead", () => {
    expect(() =>
      createOperations({ prisma: db.prisma, preparedStatements: true, types, logger: silentLogger }),
    ).toThrow(/`preparedStatements` applies to `pool`.*preparedStatementNames/);
  });
});

describe("a pool on another database than the client", () => {
  let migrated: TestDatabase;
  let empty: Pool;
  beforeAll(async () => {
    migrated = await createTestDatabase();
    await db.pool.query(`CREATE DATABASE "${db.name}_empty"`);
    empty = new Pool({ connectionString: `${db.url}_empty`, max: 2 });
  });
  afterAll(async () => {
    await empty.end();
    await migrated.close();
    await db.pool.query(`DROP DATABASE IF EXISTS "${db.name}_empty" WITH (FORCE)`);
  });

  it("is refused by the first call, a worker's start included, naming both databases, before anything is written", async () => {
    const ops = createOperations({
      prisma: db.prisma,
      pool: migrated.connection.pool,
      types,
      logger: silentLogger,
    });
    const refused = {
      code: "invalid_options",
      message: expect.stringContaining(`reaches database "${migrated.name}"`),
    };
    await expect(ops.submitBatch({ tenantId: "t", type: "task", items: items(3) })).rejects.toMatchObject(
      refused,
    );
    await expect(
      ops.transaction((tx) => ops.submitBatch({ tenantId: "t", type: "task", items: items(3) }, { tx })),
    ).rejects.toThrow(`but \`prisma\` reaches "${db.name}"`);
    const worker = ops.createWorker({ handlers: { task: () => undefined } });
    await expect(worker.start()).rejects.toBeInstanceOf(OperationsError);
    expect(await countRows(db.pool)).toEqual({ batches: 0, operations: 0, outbox: 0 });
    expect(await countRows(migrated.pool)).toEqual({ batches: 0, operations: 0, outbox: 0 });
  });

  it("names the pool's side as having no tables, not the client's tables as missing", async () => {
    const ops = createOperations({ prisma: db.prisma, pool: empty, types, logger: silentLogger });
    await expect(ops.ready()).rejects.toMatchObject({
      code: "invalid_options",
      message: expect.stringContaining(`reaches database "${db.name}_empty" (no operations table)`),
    });
  });

  it("a pool that is not the adapter's but reaches the same tables is checked once and accepted", async () => {
    const { client, seen } = counting(db.prisma);
    const ops = createOperations({
      prisma: client,
      pool: db.newConnection().pool,
      types,
      logger: silentLogger,
    });
    await ops.submitBatch({ tenantId: "t", type: "task", items: items(2) });
    await ops.submitBatch({ tenantId: "t", type: "task", items: items(2) });
    expect(seen.outside).toEqual(["$queryRaw"]); // the one look at what the client reaches
  });
});

it("a pool backend killed under a waiting submit: a typed error, nothing committed, the next submit works", async () => {
  const { prisma, pool } = db.newConnection({ applicationName: "pool-victim", max: 2 });
  const ops = createOperations({ prisma, pool, types, logger: silentLogger });
  await ops.ready();
  // Hold the batches table so that the submit's statement waits inside the database.
  const holder = await db.pool.connect();
  await holder.query("BEGIN");
  await holder.query("LOCK TABLE operation_batches IN ACCESS EXCLUSIVE MODE");
  const submit = ops.submitBatch({ tenantId: "t", type: "task", items: items(3) });
  submit.catch(() => undefined);
  let pid = 0;
  await waitFor("the submit to wait for the lock", async () => {
    const { rows } = await db.pool.query(
      `SELECT pid FROM pg_stat_activity WHERE application_name = 'pool-victim' AND wait_event_type = 'Lock'`,
    );
    pid = rows[0]?.pid ?? 0;
    return pid !== 0;
  });
  await db.pool.query(`SELECT pg_terminate_backend($1)`, [pid]);
  await expect(submit).rejects.toBeInstanceOf(DatabaseUnavailableError);
  await holder.query("ROLLBACK");
  holder.release();
  expect(await countRows(db.pool)).toEqual({ batches: 0, operations: 0, outbox: 0 });
  const next = await ops.submitBatch({ tenantId: "t", type: "task", items: items(3) });
  expect(next.operationIds).toHaveLength(3);
});
