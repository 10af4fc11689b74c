// An application that keeps its tables in another PostgreSQL schema: the adapter's `schema` option
// for Prisma's queries, the same name given to the module for its raw statements; or a connection
// whose search_path names the schema. Either way every statement, function and trigger of the
// module finds its own tables there — even when another copy of them sits in `public`.
import { PrismaPg } from "@prisma/adapter-pg";
import { Client } from "pg";
import { z } from "zod";
import {
  applyMigrations,
  createOperations,
  DatabaseUnavailableError,
  defineOperationType,
  SchemaMissingError,
  silentLogger,
  type DeliveredEvent,
} from "../../src";
import { PrismaClient } from "../../src/generated/prisma/client";
import { createTestDatabase, type TestDatabase } from "../support/db";
import { waitFor } from "../support/fixtures";

let db: TestDatabase;
const clients: PrismaClient[] = [];

const SCHEMA = "tenant_ops";

beforeAll(async () => {
  db = await createTestDatabase(); // its public schema has the module's tables too: a decoy
  await db.pool.query(`CREATE SCHEMA ${SCHEMA}`);
  const migrator = new Client({ connectionString: db.url, options: `-c search_path=${SCHEMA}` });
  await migrator.connect();
  try {
    await applyMigrations(migrator); // what `prisma migrate deploy` does with ?schema= in its URL
  } finally {
    await migrator.end();
  }
});
afterAll(async () => {
  await Promise.all(clients.map((client) => client.$disconnect()));
  await db.close();
});

const types = {
  "schema.task": defineOperationType({ payload: z.object({ n: z.number().int() }), maxAttempts: 1 }),
};

function client(options: { adapterSchema?: string; searchPath?: string }): PrismaClient {
  const prisma = new PrismaClient({
    adapter: new PrismaPg(
      {
        connectionString: db.url,
        ...(options.searchPath ? { options: `-c search_path=${options.searchPath}` } : {}),
      },
      options.adapterSchema ? { schema: options.adapterSchema } : {},
    ),
  });
  clients.push(prisma);
  return prisma;
}

async function rowsIn(schema: string) {
  const { rows } = await db.pool.query(
    `SELECT (SELECT count(*) FROM ${schema}.operation_batches)::int AS batches,
            (SELECT count(*) FROM ${schema}.operations)::int AS operations,
            (SELECT count(*) FROM ${schema}.operation_deliveries)::int AS deliveries,
            (SELECT count(*) FROM ${schema}.operation_delivery_holds)::int AS holds`,
  );
  return rows[0];
}

describe("the module's tables in another PostgreSQL schema", () => {
  it.each([
    ["the adapter's `schema` option (the module follows it)", { adapterSchema: SCHEMA }],
    [
      "the adapter's `schema` option, and the same `schema` given to the module",
      { adapterSchema: SCHEMA, module: SCHEMA },
    ],
    ["a connection whose search_path names the schema", { searchPath: SCHEMA }],
  ])("%s: submit, run, cancel, retry, deliver and count all happen there", async (_name, setup) => {
    await db.pool.query(
      `TRUNCATE ${SCHEMA}.operation_deliveries, ${SCHEMA}.operation_delivery_holds, ${SCHEMA}.operation_subscribers,
                ${SCHEMA}.operation_outbox, ${SCHEMA}.operations, ${SCHEMA}.operation_batches`,
    );
    const before = await rowsIn("public");
    const delivered: DeliveredEvent[] = [];
    const ops = createOperations({
      prisma: client(setup),
      types,
      logger: silentLogger,
      ...("module" in setup ? { schema: setup.module } : {}),
      subscribers: [{ name: "audit", deliver: (event) => void delivered.push(event) }],
    });
    const { batch, operationIds } = await ops.submitBatch({
      tenantId: "t",
      type: "schema.task",
      items: [{ n: 1 }, { n: 2 }, { n: 3 }],
    });
    await ops.cancelOperation("t", operationIds[2]!);
    const worker = ops.createWorker({
      handlers: { "schema.task": (payload) => ({ doubled: payload.n * 2 }) },
      pollIntervalMs: 20,
      relay: { pollIntervalMs: 20 },
    });
    await worker.start();
    try {
      await waitFor(
        "the batch to end",
        async () => (await ops.getBatch("t", batch.id)).status === "cancelled",
      );
      await ops.retryOperation("t", operationIds[2]!);
      await waitFor("the retry to complete the batch", async () => {
        return (await ops.getBatch("t", batch.id)).status === "completed";
      });
    } finally {
      await worker.stop();
    }
    expect((await ops.getOperation("t", operationIds[0]!)).result).toEqual({ doubled: 2 });
    expect(await rowsIn(SCHEMA)).toMatchObject({ batches: 1, operations: 3 });
    expect(await rowsIn("public")).toEqual(before); // the decoy copy was never touched
    expect(delivered.map((event) => event.topic)).toEqual(
      expect.arrayContaining(["batch.submitted", "batch.cancelled", "operation.retried", "batch.completed"]),
    );
    expect((await ops.queueStats()).deliveries).toEqual([
      { subscriber: "audit", backlog: 0, dead: 0, oldestUndeliveredAgeSeconds: 0 },
    ]);
  });

  it("refuses a `schema` that differs from the adapter's, before anything runs", () => {
    expect(() =>
      createOperations({ prisma: client({ adapterSchema: SCHEMA }), types, schema: "public" }),
    ).toThrow(/`schema` is "public" but the PrismaPg adapter puts Prisma's queries in "tenant_ops"/);
  });

  it("a schema that holds no tables is a typed error that says what to do", async () => {
    await db.pool.query(`CREATE SCHEMA IF NOT EXISTS empty_schema`);
    const ops = createOperations({
      prisma: client({}),
      types,
      logger: silentLogger,
      schema: "empty_schema",
    });
    const attempt = ops.submitOperation({ tenantId: "t", type: "schema.task", payload: { n: 1 } });
    await expect(attempt).rejects.toBeInstanceOf(SchemaMissingError);
    await expect(attempt).rejects.toThrow(/apply its migrations[\s\S]*pass `schema` to createOperations/);
  });

  it("a worker's start fails fast, with a typed error, when the tables or the database are missing", async () => {
    const handlers = { "schema.task": () => null };
    const noTables = createOperations({
      prisma: client({}),
      types,
      logger: silentLogger,
      schema: "empty_schema",
    });
    await expect(noTables.createWorker({ handlers }).start()).rejects.toBeInstanceOf(SchemaMissingError);
    const unreachable = new PrismaClient({
      adapter: new PrismaPg({ connectionString: "postgresql://postgres@127.0.0.1:1/nowhere" }),
    });
    clients.push(unreachable);
    const noDatabase = createOperations({ prisma: unreachable, types, logger: silentLogger });
    await expect(noDatabase.createWorker({ handlers, relay: false }).start()).rejects.toBeInstanceOf(
      DatabaseUnavailableError,
    );
  });

  it("a database without this version's newest migration fails a worker's start, not its reaper", async () => {
    // Migrated by the version before: the worker would start, and its reaper would fail every pass
    // (logged only), so no crashed worker's operations would ever be taken back.
    const older = await createTestDatabase();
    try {
      // The newest migration's function (20261208020000): its group commits would fail on a failure.
      await older.pool.query(`DROP FUNCTION operations_fail_fast_siblings(uuid[])`);
      const ops = createOperations({ ...older.connection, types, logger: silentLogger });
      const start = ops.createWorker({ handlers: { "schema.task": () => null } }).start();
      await expect(start).rejects.toBeInstanceOf(SchemaMissingError);
      await expect(start).rejects.toThrow(/apply its migrations/);
    } finally {
      await older.close();
    }
  });
});
