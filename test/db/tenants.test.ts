// Tenant isolation and injection: every read and action is scoped by tenant (another tenant's id
// is not found, never data); SQL-looking text in every text input is stored as text; and the
// module's errors and logs never carry payload contents.
import { z } from "zod";
import { createOperations, defineOperationType, NotFoundError, type Logger } from "../../src";
import { finish, storeOf } from "../support/store";
import { createTestDatabase, type TestDatabase } from "../support/db";
import { countRows, truncateAll, waitFor } from "../support/fixtures";

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.close());
beforeEach(() => truncateAll(db.pool));

const INJECTION = `x'); DROP TABLE operations; --`;
const SECRET = "SECRET-7f3a9c-payload-content";

const types = {
  "note.save": defineOperationType({
    payload: z.object({ title: z.string(), body: z.string().max(200) }),
    maxAttempts: 1,
  }),
  [INJECTION]: defineOperationType({ payload: z.object({ text: z.string() }) }),
};

/** A logger that keeps every line, to look for what it must not contain. */
function capturingLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const keep = (message: string, context?: Record<string, unknown>) =>
    void lines.push(`${message} ${JSON.stringify(context ?? {})}`);
  return { logger: { debug: keep, info: keep, warn: keep, error: keep }, lines };
}

function service() {
  const { logger, lines } = capturingLogger();
  return { ops: createOperations({ ...db.connection, types, logger }), lines };
}

describe("tenants", () => {
  it("every method given another tenant's ids answers not found, never data", async () => {
    const { ops } = service();
    const mine = await ops.submitBatch({
      tenantId: "acme",
      type: "note.save",
      items: [{ title: "a", body: "b" }],
    });
    const single = await ops.submitOperation({
      tenantId: "acme",
      type: "note.save",
      payload: { title: "c", body: "d" },
    });
    const batchId = mine.batch.id;
    const operationId = single.operation.id;
    const calls: [string, () => Promise<unknown>][] = [
      ["getBatch", () => ops.getBatch("globex", batchId)],
      ["getOperation", () => ops.getOperation("globex", operationId)],
      ["getOperation (a child)", () => ops.getOperation("globex", mine.operationIds[0]!)],
      ["cancelOperation", () => ops.cancelOperation("globex", operationId)],
      ["cancelBatch", () => ops.cancelBatch("globex", batchId)],
      ["retryOperation", () => ops.retryOperation("globex", operationId)],
      ["retryBatch", () => ops.retryBatch("globex", batchId)],
    ];
    for (const [name, call] of calls) {
      const error = await call().then(
        () => new Error(`${name} answered another tenant`),
        (thrown: unknown) => thrown,
      );
      expect({ name, error }).toEqual({ name, error: expect.any(NotFoundError) });
    }
    const listed = await ops.listOperations({ tenantId: "globex", batchId, includeBatches: true });
    expect(listed.items).toEqual([]);
    expect((await ops.listOperations({ tenantId: "globex", includeBatches: true })).items).toEqual([]);
    // Nothing changed for the owner.
    expect((await ops.getOperation("acme", operationId)).status).toBe("pending");
    expect((await ops.getBatch("acme", batchId)).status).toBe("pending");
  });

  it("keeps idempotency keys apart per tenant", async () => {
    const { ops } = service();
    const a = await ops.submitBatch({
      tenantId: "acme",
      type: "note.save",
      items: [{ title: "a", body: "b" }],
      idempotencyKey: "k",
    });
    const b = await ops.submitBatch({
      tenantId: "globex",
      type: "note.save",
      items: [{ title: "a", body: "b" }],
      idempotencyKey: "k",
    });
    expect(b.created).toBe(true);
    expect(b.batch.id).not.toBe(a.batch.id);
  });

  it("refuses a child of one tenant's batch in another tenant's name, in the database itself", async () => {
    const { ops } = service();
    const { batch } = await ops.submitBatch({
      tenantId: "acme",
      type: "note.save",
      items: [{ title: "a", body: "b" }],
    });
    await expect(
      db.pool.query(
        `INSERT INTO operations (id, tenant_id, batch_id, type, payload, max_attempts)
         VALUES (gen_random_uuid(), 'globex', $1, 'note.save', '{}', 1)`,
        [batch.id],
      ),
    ).rejects.toThrow(/foreign key/);
  });
});

describe("SQL-looking text", () => {
  it("is stored and read back verbatim through every text input, and breaks nothing", async () => {
    const { ops } = service();
    const text = `${INJECTION} OR 1=1; SELECT pg_sleep(10); $$ \\ " ' \``;
    const batch = await ops.submitBatch({
      tenantId: text,
      type: INJECTION,
      items: [{ text }],
      idempotencyKey: text,
      metadata: { [text]: text },
    });
    const again = await ops.submitBatch({
      tenantId: text,
      type: INJECTION,
      items: [{ text }],
      idempotencyKey: text,
    });
    expect(again.batch.id).toBe(batch.batch.id);
    const operation = await ops.submitOperation({
      tenantId: text,
      type: INJECTION,
      payload: { text },
      idempotencyKey: text,
    });

    const read = await ops.getBatch(text, batch.batch.id);
    expect(read).toMatchObject({
      tenantId: text,
      type: INJECTION,
      idempotencyKey: text,
      metadata: { [text]: text },
    });
    expect((await ops.getOperation(text, operation.operation.id)).payload).toEqual({ text });
    const listed = await ops.listOperations({ tenantId: text, type: INJECTION, includeBatches: true });
    expect(listed.items).toHaveLength(3);
    await expect(ops.listOperations({ tenantId: text, cursor: text })).rejects.toMatchObject({
      code: "validation_failed",
    });
    await expect(ops.listOperations({ tenantId: text, type: text })).resolves.toMatchObject({ items: [] });
    expect(await countRows(db.pool)).toEqual({ batches: 1, operations: 2, outbox: 2 });
    const { rows } = await db.pool.query(`SELECT tenant_id FROM operations LIMIT 1`);
    expect(rows[0].tenant_id).toBe(text);
  });
});

describe("payload contents stay out of errors and logs", () => {
  it("in validation errors, size errors and jsonb refusals", async () => {
    const { ops } = service();
    const attempts: (() => Promise<unknown>)[] = [
      () =>
        ops.submitOperation({
          tenantId: "t",
          type: "note.save",
          payload: { title: SECRET, body: SECRET.repeat(20) },
        }),
      () =>
        ops.submitOperation({
          tenantId: "t",
          type: "note.save",
          payload: { title: 7 as never, body: SECRET },
        }),
      () =>
        ops.submitOperation({
          tenantId: "t",
          type: "note.save",
          payload: { title: `${SECRET}\ud800`, body: "" },
        }),
      () =>
        ops.submitBatch({
          tenantId: "t",
          type: "note.save",
          items: [{ title: SECRET, body: SECRET }, { nope: SECRET } as never],
        }),
      () =>
        ops.submitBatch({
          tenantId: "t",
          type: "note.save",
          items: [{ title: SECRET, body: "x" }],
          metadata: { note: SECRET.repeat(3000) },
        }),
    ];
    for (const attempt of attempts) {
      const error = (await attempt().catch((thrown: unknown) => thrown)) as Error & { issues?: unknown };
      expect(error).toBeInstanceOf(Error);
      expect(`${error.message} ${JSON.stringify(error.issues ?? [])}`).not.toContain(SECRET);
    }
  });

  it("in what workers and dispatch log when things go wrong", async () => {
    const { logger, lines } = capturingLogger();
    const ops = createOperations({
      ...db.connection,
      types,
      logger,
      subscribers: [{ name: "broken", deliver: () => Promise.reject(new Error("subscriber down")) }],
    });
    const { operation } = await ops.submitOperation({
      tenantId: "t",
      type: "note.save",
      payload: { title: SECRET, body: SECRET },
    });
    // A late outcome (the lease went elsewhere) and a reaped lease, both logged.
    const [row] = await storeOf(db.prisma).claimDue(1, "first", 60_000);
    await db.pool.query(`UPDATE operations SET locked_until = now() - interval '1 second'`);
    await ops.createReaper().runOnce();
    await finish(db.prisma, row!, { to: "completed", result: SECRET });
    const worker = ops.createWorker({
      handlers: { "note.save": () => Promise.reject(new Error("handler failed")) },
      pollIntervalMs: 20,
      relay: { pollIntervalMs: 20 },
    });
    await worker.start();
    await waitFor(
      "the handler's failure to be recorded",
      async () => (await ops.getOperation("t", operation.id)).status === "failed",
    );
    await worker.stop();
    expect((await ops.getOperation("t", operation.id)).status).toBe("failed");
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.join("\n")).not.toContain(SECRET);
  });
});
