import { Client } from "pg";
import { createOperations, NotFoundError, silentLogger, type DeliveredEvent } from "../../src";
import { createTestDatabase, type TestDatabase } from "../support/db";
import { countRows, documents, truncateAll, types, waitFor } from "../support/fixtures";

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.close());
beforeEach(() => truncateAll(db.pool));

function service(delivered: DeliveredEvent[] = []) {
  return createOperations({
    ...db.connection,
    types,
    logger: silentLogger,
    subscribers: [{ name: "recorder", deliver: (event) => void delivered.push(event) }],
  });
}

describe("submitBatch", () => {
  it("writes the parent, every child with its payload, and one event, and returns the children's ids", async () => {
    const delivered: DeliveredEvent[] = [];
    const ops = service(delivered);
    const result = await ops.submitBatch({
      tenantId: "bank-1",
      type: "documents.ingest",
      items: documents(10, 300), // 3 documents fit the 1,000-token budget: 4 children
      metadata: { source: "upload" },
    });

    expect(result.created).toBe(true);
    expect(result.operationIds).toHaveLength(4);
    expect(result.batch).toMatchObject({
      tenantId: "bank-1",
      type: "documents.ingest",
      status: "pending",
      failurePolicy: "wait_all",
      metadata: { source: "upload" },
      counts: { total: 4, pending: 4, processing: 0, completed: 0, failed: 0, cancelled: 0 },
      progress: { done: 0, total: 4, ratio: 0 },
    });

    const { rows: children } = await db.pool.query(
      `SELECT id, tenant_id, status, payload, attempts, max_attempts FROM operations WHERE batch_id = $1 ORDER BY id`,
      [result.batch.id],
    );
    expect(children.map((row) => row.id)).toEqual(result.operationIds);
    expect(children.map((row) => row.payload.documents.length)).toEqual([3, 3, 3, 1]);
    expect(children.map((row) => row.payload.chunk)).toEqual([0, 1, 2, 3]);
    expect(children.flatMap((row) => row.payload.documents.map((d: { id: string }) => d.id))).toEqual(
      documents(10).map((d) => d.id),
    );
    expect(children.every((row) => row.tenant_id === "bank-1" && row.status === "pending")).toBe(true);
    expect(children.every((row) => row.attempts === 0 && row.max_attempts === 3)).toBe(true);

    expect(delivered).toHaveLength(1);
    expect(delivered[0]).toMatchObject({
      topic: "batch.submitted",
      tenantId: "bank-1",
      aggregateId: result.batch.id,
      payload: { batchId: result.batch.id, type: "documents.ingest", childCount: 4 },
      attempt: 1,
    });
    expect(result.dispatch).toEqual({ status: "delivered" });
    // Delivered inline, so nothing is owed: the hold written with the event is settled, and no
    // delivery row is left (one is written only for a delivery that failed).
    const { rows: outbox } = await db.pool.query(
      `SELECT e.id::text AS id,
              (SELECT count(*) FROM operation_deliveries d WHERE d.event_id = e.id)::int AS rows,
              (SELECT count(*) FROM operation_delivery_holds)::int AS holds
       FROM operation_outbox e`,
    );
    expect(outbox).toEqual([{ id: delivered[0]!.id, rows: 0, holds: 0 }]);
  });

  it("takes a split rule per submit, overriding the type's", async () => {
    const result = await service().submitBatch({
      tenantId: "t",
      type: "documents.ingest",
      items: documents(7, 10),
      split: { maxItems: 2 },
    });
    expect(result.operationIds).toHaveLength(4);
  });

  it("makes each item its own child for a type without batch config", async () => {
    const result = await service().submitBatch({
      tenantId: "t",
      type: "email.send",
      items: [
        { to: "a@example.com", subject: "1" },
        { to: "b@example.com", subject: "2" },
      ],
    });
    const { rows } = await db.pool.query(`SELECT payload FROM operations ORDER BY id`);
    expect(rows.map((row) => row.payload)).toEqual([
      { to: "a@example.com", subject: "1" },
      { to: "b@example.com", subject: "2" },
    ]);
    expect(result.batch.counts.total).toBe(2);
  });

  it("writes a 10,000-child batch in one transaction", async () => {
    const result = await service().submitBatch({
      tenantId: "t",
      type: "documents.ingest",
      items: documents(10_000, 1000),
    });
    expect(result.operationIds).toHaveLength(10_000);
    const { rows } = await db.pool.query(
      `SELECT count(*)::int AS children, count(DISTINCT xmin::text)::int AS transactions FROM operations WHERE batch_id = $1`,
      [result.batch.id],
    );
    expect(rows[0]).toEqual({ children: 10_000, transactions: 1 });
  });
});

describe("idempotency", () => {
  it("returns the existing batch for a repeated tenant + key, writing nothing new", async () => {
    const delivered: DeliveredEvent[] = [];
    const ops = service(delivered);
    const input = {
      tenantId: "t",
      type: "documents.ingest" as const,
      items: documents(5),
      idempotencyKey: "upload-42",
    };
    const first = await ops.submitBatch(input);
    const before = await countRows(db.pool);
    const second = await ops.submitBatch(input);

    expect(second.created).toBe(false);
    expect(second.batch.id).toBe(first.batch.id);
    expect(second.operationIds).toEqual(first.operationIds);
    expect(second.dispatch).toEqual({ status: "none" });
    expect(await countRows(db.pool)).toEqual(before);
    expect(delivered).toHaveLength(1);
  });

  it("scopes keys by tenant", async () => {
    const ops = service();
    const a = await ops.submitBatch({
      tenantId: "a",
      type: "email.send",
      items: [{ to: "x@y.io", subject: "s" }],
      idempotencyKey: "k",
    });
    const b = await ops.submitBatch({
      tenantId: "b",
      type: "email.send",
      items: [{ to: "x@y.io", subject: "s" }],
      idempotencyKey: "k",
    });
    expect(a.batch.id).not.toBe(b.batch.id);
    expect(b.created).toBe(true);
  });

  it("refuses a key reused for another type", async () => {
    const ops = service();
    await ops.submitBatch({
      tenantId: "t",
      type: "email.send",
      items: [{ to: "x@y.io", subject: "s" }],
      idempotencyKey: "k",
    });
    await expect(
      ops.submitBatch({ tenantId: "t", type: "documents.ingest", items: documents(1), idempotencyKey: "k" }),
    ).rejects.toMatchObject({ code: "idempotency_key_reused" });
  });

  it("gives 20 concurrent submits with one key exactly one batch, and every caller its id", async () => {
    const prismas = Array.from({ length: 4 }, () => db.newPrisma({ max: 5 }));
    const callers = Array.from({ length: 20 }, (_, i) =>
      createOperations({ prisma: prismas[i % prismas.length]!, types, logger: silentLogger }).submitBatch({
        tenantId: "t",
        type: "documents.ingest",
        items: documents(30),
        idempotencyKey: "same-upload",
      }),
    );
    const results = await Promise.all(callers);
    const ids = new Set(results.map((result) => result.batch.id));
    expect(ids.size).toBe(1);
    expect(results.filter((result) => result.created)).toHaveLength(1);
    expect(await countRows(db.pool)).toEqual({ batches: 1, operations: 10, outbox: 1 });
    for (const result of results) expect(result.operationIds).toEqual(results[0]!.operationIds);
    await Promise.all(prismas.map((prisma) => prisma.$disconnect()));
  });

  it("does the same for standalone operations", async () => {
    const ops = service();
    const input = {
      tenantId: "t",
      type: "email.send" as const,
      payload: { to: "a@b.co", subject: "hi" },
      idempotencyKey: "mail-1",
    };
    const results = await Promise.all(Array.from({ length: 10 }, () => ops.submitOperation(input)));
    expect(new Set(results.map((result) => result.operation.id)).size).toBe(1);
    expect(results.filter((result) => result.created)).toHaveLength(1);
    expect(await countRows(db.pool)).toEqual({ batches: 0, operations: 1, outbox: 1 });
  });
});

describe("submitOperation", () => {
  it("writes one standalone operation and its event", async () => {
    const delivered: DeliveredEvent[] = [];
    const runAt = new Date(Date.now() + 60_000);
    const result = await service(delivered).submitOperation({
      tenantId: "t",
      type: "email.send",
      payload: { to: "a@b.co", subject: "hi" },
      runAt,
      maxAttempts: 5,
    });
    expect(result.operation).toMatchObject({
      batchId: null,
      status: "pending",
      payload: { to: "a@b.co", subject: "hi" },
      maxAttempts: 5,
      attempts: 0,
    });
    expect(result.operation.runAt.getTime()).toBe(runAt.getTime());
    expect(delivered.map((event) => [event.topic, event.aggregateId])).toEqual([
      ["operation.submitted", result.operation.id],
    ]);
  });
});

describe("reads", () => {
  it("reads a batch with per-status counts, and hides it from other tenants", async () => {
    const ops = service();
    const { batch, operationIds } = await ops.submitBatch({
      tenantId: "t",
      type: "documents.ingest",
      items: documents(9),
    });
    await db.pool.query(
      `UPDATE operations SET status = 'processing', locked_by = 'w', lock_token = gen_random_uuid(), locked_until = now() + interval '1 minute' WHERE id = $1`,
      [operationIds[0]],
    );
    const read = await ops.getBatch("t", batch.id);
    expect(read.counts).toEqual({
      total: 3,
      pending: 2,
      processing: 1,
      completed: 0,
      failed: 0,
      cancelled: 0,
    });
    await expect(ops.getBatch("other", batch.id)).rejects.toBeInstanceOf(NotFoundError);
    await expect(ops.getOperation("other", operationIds[0]!)).rejects.toBeInstanceOf(NotFoundError);
    expect((await ops.getOperation("t", operationIds[1]!)).batchId).toBe(batch.id);
  });

  it("lists newest first, filters, includes batches on request, and pages with a cursor", async () => {
    const ops = service();
    const first = await ops.submitBatch({ tenantId: "t", type: "documents.ingest", items: documents(6) }); // 2 children
    const single = await ops.submitOperation({
      tenantId: "t",
      type: "email.send",
      payload: { to: "a@b.co", subject: "s" },
    });
    await ops.submitOperation({
      tenantId: "other",
      type: "email.send",
      payload: { to: "a@b.co", subject: "s" },
    });

    const all = await ops.listOperations({ tenantId: "t" });
    expect(all.items.map((item) => item.id)).toEqual([
      single.operation.id,
      ...[...first.operationIds].reverse(),
    ]);
    expect(all.items.every((item) => item.kind === "operation")).toBe(true);
    expect(all.nextCursor).toBeNull();

    const withBatches = await ops.listOperations({ tenantId: "t", includeBatches: true });
    expect(withBatches.items.map((item) => item.kind)).toEqual([
      "operation",
      "operation",
      "operation",
      "batch",
    ]);

    const emails = await ops.listOperations({ tenantId: "t", type: "email.send" });
    expect(emails.items.map((item) => item.id)).toEqual([single.operation.id]);

    const children = await ops.listOperations({
      tenantId: "t",
      batchId: first.batch.id,
      includeBatches: true,
    });
    expect(children.items.map((item) => item.id).sort()).toEqual([...first.operationIds].sort());

    const pages: string[][] = [];
    let cursor: string | undefined;
    do {
      const page = await ops.listOperations({ tenantId: "t", includeBatches: true, limit: 1, cursor });
      pages.push(page.items.map((item) => item.id));
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    expect(pages.flat()).toEqual(withBatches.items.map((item) => item.id));
    expect(pages.every((page) => page.length === 1)).toBe(true);

    const failed = await ops.listOperations({ tenantId: "t", status: ["failed", "cancelled"] });
    expect(failed.items).toEqual([]);
  });
});

describe("the caller's transaction", () => {
  it("stores a submit's due time no later than its transaction's now(), so a claim woken by the commit finds it due", async () => {
    // run_at keeps milliseconds and rounds: a plain now() landed up to half a millisecond in the
    // future about half the time, and a worker claiming within that half millisecond found nothing
    // due and waited for its next poll (submit → start outliers of about a second in the bench).
    const ops = service();
    for (let attempt = 0; attempt < 40; attempt++) {
      const notYetDue = await db.prisma.$transaction(async (tx) => {
        const batch = await ops.submitBatch(
          { tenantId: "t", type: "documents.ingest", items: documents(3) },
          { tx },
        );
        const single = await ops.submitOperation(
          { tenantId: "t", type: "email.send", payload: { to: "a@b.co", subject: "hi" } },
          { tx },
        );
        const ids = [...batch.operationIds, single.operation.id];
        const rows = await tx.$queryRaw<{ n: number }[]>`
          SELECT count(*)::int AS n FROM operations WHERE id = ANY(${ids}::uuid[]) AND run_at > now()`;
        return rows[0]!.n;
      });
      expect(notYetDue).toBe(0);
    }
  });

  it("commits the app's own writes and the batch together", async () => {
    const ops = service();
    await db.pool.query(`CREATE TABLE IF NOT EXISTS uploads (id serial PRIMARY KEY, name text)`);
    await db.pool.query(`TRUNCATE uploads`);
    const result = await db.prisma.$transaction(async (tx) => {
      await tx.$executeRaw`INSERT INTO uploads (name) VALUES ('report.pdf')`;
      return ops.submitBatch({ tenantId: "t", type: "documents.ingest", items: documents(3) }, { tx });
    });
    expect(result.dispatch).toEqual({ status: "after_commit" });
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM uploads`)).rows[0].n).toBe(1);
    expect(await countRows(db.pool)).toEqual({ batches: 1, operations: 1, outbox: 1 });
  });

  it("rolls the batch back with the app's writes", async () => {
    const ops = service();
    await db.pool.query(`CREATE TABLE IF NOT EXISTS uploads (id serial PRIMARY KEY, name text)`);
    await db.pool.query(`TRUNCATE uploads`);
    await expect(
      db.prisma.$transaction(async (tx) => {
        await tx.$executeRaw`INSERT INTO uploads (name) VALUES ('report.pdf')`;
        await ops.submitBatch({ tenantId: "t", type: "documents.ingest", items: documents(3) }, { tx });
        throw new Error("the app changed its mind");
      }),
    ).rejects.toThrow("the app changed its mind");
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM uploads`)).rows[0].n).toBe(0);
    expect(await countRows(db.pool)).toEqual({ batches: 0, operations: 0, outbox: 0 });
  });

  it("transaction() dispatches after commit, and never for a rollback", async () => {
    const delivered: DeliveredEvent[] = [];
    const ops = service(delivered);
    let seenInside = -1;
    const result = await ops.transaction(async (tx) => {
      const submitted = await ops.submitBatch(
        { tenantId: "t", type: "documents.ingest", items: documents(3) },
        { tx },
      );
      await ops.submitOperation(
        { tenantId: "t", type: "email.send", payload: { to: "a@b.co", subject: "s" } },
        { tx },
      );
      seenInside = delivered.length;
      return submitted;
    });
    expect(seenInside).toBe(0);
    expect(delivered.map((event) => event.topic)).toEqual(["batch.submitted", "operation.submitted"]);
    expect(delivered[0]!.aggregateId).toBe(result.batch.id);

    delivered.length = 0;
    await expect(
      ops.transaction(async (tx) => {
        await ops.submitBatch({ tenantId: "t", type: "documents.ingest", items: documents(3) }, { tx });
        throw new Error("rolled back");
      }),
    ).rejects.toThrow("rolled back");
    expect(delivered).toEqual([]);
    expect((await countRows(db.pool)).batches).toBe(1);
  });

  it("leaves events of a plain $transaction to the relay, due at once", async () => {
    const delivered: DeliveredEvent[] = [];
    const ops = service(delivered);
    await db.prisma.$transaction((tx) =>
      ops.submitBatch({ tenantId: "t", type: "documents.ingest", items: documents(3) }, { tx }),
    );
    expect(delivered).toEqual([]);
    const pass = await ops.createRelay().runOnce();
    expect(pass).toEqual({ claimed: 1, delivered: 1, failed: 0 });
    expect(delivered.map((event) => event.topic)).toEqual(["batch.submitted"]);
  });
});

describe("task backends", () => {
  it("sync runs each handler after commit, where it sees the committed rows, and completes the batch", async () => {
    const delivered: DeliveredEvent[] = [];
    const seenByHandler: string[] = [];
    const ops = createOperations({
      ...db.connection,
      types,
      logger: silentLogger,
      subscribers: [{ name: "recorder", deliver: (event) => void delivered.push(event) }],
      backend: {
        sync: {
          "documents.ingest": async (payload, context) => {
            // Read through another connection: only committed rows are visible there.
            const { rows } = await db.pool.query(
              `SELECT b.status AS batch_status, o.status FROM operations o JOIN operation_batches b ON b.id = o.batch_id WHERE o.id = $1`,
              [context.operationId],
            );
            seenByHandler.push(`${rows[0]?.batch_status}/${rows[0]?.status}`);
            return { indexed: payload.documents.length };
          },
        },
      },
    });
    const result = await ops.submitBatch({ tenantId: "t", type: "documents.ingest", items: documents(6) });
    expect(seenByHandler).toEqual(["processing/processing", "processing/processing"]);
    const batch = await ops.getBatch("t", result.batch.id);
    expect(batch.status).toBe("completed");
    expect(batch.counts).toMatchObject({ completed: 2, pending: 0, processing: 0 });
    expect((await ops.getOperation("t", result.operationIds[0]!)).result).toEqual({ indexed: 3 });
    expect(delivered.map((event) => event.topic)).toEqual([
      "batch.submitted",
      "operation.completed",
      "operation.completed",
      "batch.completed",
    ]);
    const { rows } = await db.pool.query(
      `SELECT count(*)::int AS n FROM operation_deliveries WHERE delivered_at IS NULL`,
    );
    expect(rows[0].n).toBe(0);
  });

  it("sync retries a failing handler up to maxAttempts, then fails the operation and the batch", async () => {
    let calls = 0;
    const ops = createOperations({
      ...db.connection,
      types,
      logger: silentLogger,
      backend: {
        sync: {
          "email.send": () => {
            calls++;
            throw new Error("smtp down");
          },
        },
      },
    });
    const result = await ops.submitBatch({
      tenantId: "t",
      type: "email.send",
      items: [{ to: "a@b.co", subject: "s" }],
    });
    expect(calls).toBe(2);
    const operation = await ops.getOperation("t", result.operationIds[0]!);
    expect(operation).toMatchObject({
      status: "failed",
      attempts: 2,
      error: { message: "smtp down", retryable: false },
    });
    expect((await ops.getBatch("t", result.batch.id)).status).toBe("failed");
  });

  it("worker: the submit's commit wakes listening workers (NOTIFY), and a rollback wakes nobody", async () => {
    const listener = new Client({ connectionString: db.url });
    await listener.connect();
    const notes: string[] = [];
    listener.on("notification", (message) => notes.push(`${message.channel}:${message.payload}`));
    await listener.query(`LISTEN prisma_operations_wake`);
    const ops = service();
    await expect(
      ops.transaction(async (tx) => {
        await ops.submitBatch({ tenantId: "t", type: "documents.ingest", items: documents(3) }, { tx });
        throw new Error("rolled back");
      }),
    ).rejects.toThrow("rolled back");
    await ops.submitOperation({ tenantId: "t", type: "email.send", payload: { to: "a@b.co", subject: "s" } });
    await waitFor("the wake-up notification", () => notes.length > 0);
    // Only the committed one, naming its queue (type, tenant).
    expect(notes).toEqual([`prisma_operations_wake:["email.send", "t"]`]);
    await listener.end();
  });
});
