// Outcomes PostgreSQL cannot take as given: a handler's error whose name or message holds a NUL or
// a lone surrogate (Node 20's `JSON.parse("\u0000")` puts a NUL in its SyntaxError), a huge
// message, a result jsonb refuses. Each is made storable before it reaches a statement that other
// outcomes share; and should a value still be refused, the group commit records the others and
// that one as failed, instead of retrying the whole group until the lease runs out.
import { setImmediate as nextMacrotask } from "node:timers/promises";
import { PrismaPg } from "@prisma/adapter-pg";
import { Pool } from "pg";
import { z } from "zod";
import {
  createOperations,
  defineOperationType,
  OperationsError,
  silentLogger,
  type Handlers,
} from "../../src";
import { PrismaClient } from "../../src/generated/prisma/client";
import { Completer, type Recorded } from "../../src/execution/completer";
import type { Worker } from "../../src/execution/worker";
import type { HandlerOutcome } from "../../src/domain/retry";
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
  twice: defineOperationType({
    payload: z.object({ n: z.number().int(), mode: z.string() }),
    maxAttempts: 2,
    retryBackoff: { baseMs: 20, maxMs: 20, jitter: 0 },
  }),
};
type Types = typeof types;

const workers: Worker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((worker) => worker.stop()));
});

/** A SyntaxError whose message holds two NUL characters, as Node 20 words it. */
function nulSyntaxError(): SyntaxError {
  try {
    JSON.parse("\u0000");
  } catch (error) {
    return error as SyntaxError;
  }
  throw new Error("JSON.parse accepted a NUL");
}

class Unusual extends Error {
  constructor() {
    super("half a pair: a\ud800b, and the other half: \udc00");
    this.name = "Unusual\udc00Error";
  }
}

/** What each mode does: complete, or end in a way that puts an awkward value in the outcome. */
function behave(mode: string): unknown {
  switch (mode) {
    case "nul":
      throw nulSyntaxError();
    case "surrogate":
      throw new Unusual();
    case "huge":
      throw new Error("x".repeat(2_000_000));
    case "no-prototype":
      // String() throws for it: storing what it says must not.
      throw Object.create(null);
    case "nul-result":
      return { text: "a\u0000b" };
    case "surrogate-result":
      return { text: "a\ud800b" };
    case "huge-result":
      return { text: "x".repeat(1024 * 1024) };
    default:
      return { ok: true };
  }
}

async function rows(ids: readonly string[]) {
  const { rows } = await db.pool.query(
    `SELECT id, status::text, attempts, error, result FROM operations WHERE id = ANY($1::uuid[])`,
    [ids],
  );
  return new Map(rows.map((row) => [row.id as string, row]));
}

describe("a group commit with an outcome PostgreSQL would refuse", () => {
  it("records every other outcome of the group once, and the awkward ones failed with a cleaned error", async () => {
    const modes = [
      "ok",
      "ok",
      "ok",
      "nul",
      "surrogate",
      "huge",
      "nul-result",
      "surrogate-result",
      "no-prototype",
      "huge-result",
    ];
    const started = new Set<number>();
    const ended = new Set<number>();
    const calls = new Map<number, number>();
    let releaseFirst!: () => void;
    let releaseRest!: () => void;
    const first = new Promise<void>((resolve) => (releaseFirst = resolve));
    const rest = new Promise<void>((resolve) => (releaseRest = resolve));
    const ops = createOperations({ ...db.connection, types, logger: silentLogger });
    const handlers: Handlers<Types> = {
      twice: async ({ n, mode }) => {
        calls.set(n, (calls.get(n) ?? 0) + 1);
        started.add(n);
        await (n === 0 ? first : rest);
        try {
          return behave(mode);
        } finally {
          ended.add(n);
        }
      },
    };
    const worker = ops.createWorker({
      handlers,
      concurrency: modes.length,
      pollIntervalMs: 20,
      leaseMs: 2_000,
      relay: false,
      reaper: { intervalMs: 50 },
    });
    workers.push(worker);
    const { batch, operationIds } = await ops.submitBatch({
      tenantId: "t",
      type: "twice",
      items: modes.map((mode, n) => ({ n, mode })),
    });
    await worker.start();
    await waitFor("every handler to start", () => started.size === modes.length);

    // The first outcome's group commit waits for the batch row, held here; the others finish
    // meanwhile and go together in the next group commit.
    const locker = await db.pool.connect();
    try {
      await locker.query("BEGIN");
      await locker.query(`SELECT 1 FROM operation_batches WHERE id = $1 FOR UPDATE`, [batch.id]);
      releaseFirst();
      await waitFor("the first group commit to wait for the batch row", async () => {
        const { rows } = await db.pool.query(
          `SELECT count(*)::int AS n FROM pg_stat_activity
           WHERE datname = current_database() AND wait_event_type = 'Lock'`,
        );
        return rows[0].n >= 1;
      });
      releaseRest();
      await waitFor("every other handler to end", () => ended.size === modes.length);
      // The outcomes are queued in the microtasks that follow each handler's end.
      await nextMacrotask();
      await locker.query("COMMIT");
    } finally {
      locker.release();
    }

    await waitFor(
      "the batch to end",
      async () => (await ops.getBatch("t", batch.id)).status === "failed",
      30_000,
    );
    const byId = await rows(operationIds);
    const row = (n: number) => ({ n, calls: calls.get(n), ...byId.get(operationIds[n]!)! });
    // Recorded once, never run again (a lost outcome's row is reaped and runs a second time).
    for (const n of [0, 1, 2]) {
      expect(row(n)).toMatchObject({ n, calls: 1, status: "completed", attempts: 1, result: { ok: true } });
    }
    // Each error was stored cleaned on its first attempt (a retry) and its second (failed): NUL and
    // lone surrogates become U+FFFD, the name is kept (cleaned the same way).
    expect(row(3)).toMatchObject({
      calls: 2,
      status: "failed",
      attempts: 2,
      error: {
        name: "SyntaxError",
        message: `Unexpected token '\uFFFD', "\uFFFD" is not valid JSON`,
        retryable: false,
        attempt: 2,
      },
    });
    expect(row(4)).toMatchObject({
      calls: 2,
      status: "failed",
      error: { name: "Unusual\uFFFDError", message: "half a pair: a\uFFFDb, and the other half: \uFFFD" },
    });
    // A huge message is cut at 8,192 characters, and says how much was left out.
    expect(row(5)).toMatchObject({
      calls: 2,
      status: "failed",
      error: { name: "Error", message: `${"x".repeat(8_192)}… (1991808 more characters)` },
    });
    // A result jsonb would refuse fails its operation before any statement: the executor checks it.
    expect(row(6)).toMatchObject({
      calls: 1,
      status: "failed",
      attempts: 1,
      result: null,
      error: {
        name: "NonRetryableError",
        message: "handler result cannot be stored: string contains a NUL character",
      },
    });
    expect(row(7)).toMatchObject({
      calls: 1,
      status: "failed",
      error: { message: "handler result cannot be stored: string contains a lone UTF-16 surrogate" },
    });
    expect(row(8)).toMatchObject({
      calls: 2,
      status: "failed",
      error: { name: "Error", message: "[object Object]" },
    });
    // The limit on results is the payloads' (maxPayloadBytes, 1 MiB by default).
    expect(row(9)).toMatchObject({
      calls: 1,
      status: "failed",
      error: {
        message:
          "handler result cannot be stored: serialized size 1048587 bytes is over the limit of 1048576",
      },
    });
    expect(worker.stats).toMatchObject({ completed: 3, retried: 4, failed: 7, rejected: 0 });
  });
});

describe("the sync backend", () => {
  it("records a handler's NUL error cleaned, and the submit that committed returns normally", async () => {
    let calls = 0;
    const ops = createOperations({
      ...db.connection,
      types,
      logger: silentLogger,
      backend: {
        sync: {
          twice: () => {
            calls++;
            throw nulSyntaxError();
          },
        },
      },
    });
    const submitted = await ops.submitOperation({
      tenantId: "t",
      type: "twice",
      payload: { n: 1, mode: "nul" },
    });
    expect(calls).toBe(2);
    expect(await ops.getOperation("t", submitted.operation.id)).toMatchObject({
      status: "failed",
      attempts: 2,
      error: { name: "SyntaxError", message: `Unexpected token '\uFFFD', "\uFFFD" is not valid JSON` },
    });
  });
  it("surfaces a typed error, not the driver's, when an outcome cannot be recorded for another reason", async () => {
    // Statements of this pool give up on a lock after 200 ms (55P03: neither a refused value nor
    // an unreachable database).
    const pool = new Pool({ connectionString: db.url, max: 2, options: "-c lock_timeout=200" });
    const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });
    const locker = await db.pool.connect();
    try {
      const ops = createOperations({
        prisma,
        pool,
        types,
        logger: silentLogger,
        backend: {
          sync: {
            twice: async (_payload, context) => {
              await locker.query("BEGIN");
              await locker.query(`SELECT 1 FROM operations WHERE id = $1 FOR UPDATE`, [context.operationId]);
              return { ok: true };
            },
          },
        },
      });
      const submitting = ops.submitOperation({ tenantId: "t", type: "twice", payload: { n: 1, mode: "ok" } });
      await expect(submitting).rejects.toBeInstanceOf(OperationsError);
      await expect(submitting).rejects.toMatchObject({
        code: "database_error",
        message: expect.stringMatching(/^recording an outcome of the sync backend: .*lock/),
      });
    } finally {
      await locker.query("ROLLBACK");
      locker.release();
      await prisma.$disconnect();
      await pool.end();
    }
  });
});

describe("the group commit's second line of defence", () => {
  it("isolates a value the database refuses: the others are recorded, that one failed with why", async () => {
    const ops = createOperations({ ...db.connection, types, logger: silentLogger });
    const submitted = await ops.submitBatch({
      tenantId: "t",
      type: "twice",
      items: Array.from({ length: 6 }, (_, n) => ({ n, mode: "ok" })),
    });
    const store = storeOf(db.prisma);
    const claimed = await store.claimById(submitted.operationIds, "test-worker", 60_000);
    expect(claimed).toHaveLength(6);
    const byId = new Map(claimed.map((row) => [row.id, row]));
    const recorded: Recorded[] = [];
    const statements: number[] = [];
    const completer = new Completer(
      store,
      () => NO_INLINE,
      60_000,
      silentLogger,
      (entries) => {
        recorded.push(...entries);
        statements.push(entries.length);
      },
    );
    // An outcome the executor would have refused (its result check is what this skips): the
    // database refuses its NUL (22P05) in the statement that carries the whole group.
    const refused: HandlerOutcome = { kind: "completed", result: { text: "a\u0000b" } };
    const good: HandlerOutcome = { kind: "completed", result: { ok: true } };
    const ids = submitted.operationIds;
    // The first outcome goes alone (nothing else is waiting); the other five go together.
    const all = ids.map((id, n) => completer.record(byId.get(id)!, n === 3 ? refused : good));
    // Not retried as it was until the lease (60 s) runs out: a refused value is refused again.
    let timer: NodeJS.Timeout | undefined;
    const settled = await Promise.race([
      Promise.all(all).then(() => "recorded"),
      new Promise((resolve) => (timer = setTimeout(() => resolve("still retrying after 20 s"), 20_000))),
    ]);
    clearTimeout(timer);
    expect(settled).toBe("recorded");
    // The first alone; the other five refused together, then in halves: [1, 2] recorded, [3] refused
    // and recorded failed, [4, 5] recorded.
    expect(statements).toEqual([1, 2, 1, 2]);

    const after = await rows(ids);
    ids.forEach((id, n) => {
      if (n === 3) return;
      expect({ n, ...after.get(id) }).toMatchObject({
        n,
        status: "completed",
        attempts: 1,
        result: { ok: true },
      });
    });
    expect(after.get(ids[3]!)).toMatchObject({
      status: "failed",
      result: null,
      error: {
        name: "OutcomeNotStored",
        message: expect.stringMatching(/^the database refused to store this completed outcome: .*Unicode/),
        retryable: false,
        attempt: 1,
      },
    });
    expect(recorded.map((entry) => [entry.row.id, entry.outcome.kind, entry.status]).sort()).toEqual(
      ids.map((id, n) => [id, n === 3 ? "failed" : "completed", n === 3 ? "failed" : "completed"]).sort(),
    );
    expect((await ops.getBatch("t", submitted.batch.id)).status).toBe("failed");
  });
});
