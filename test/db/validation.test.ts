// Bad input is refused before any write, with a typed error that says what and where.
import {
  createOperations,
  EmptyBatchError,
  InvalidIdError,
  PayloadTooLargeError,
  silentLogger,
  UnknownOperationTypeError,
  ValidationError,
} from "../../src";
import { createTestDatabase, type TestDatabase } from "../support/db";
import { countRows, documents, types } from "../support/fixtures";

let db: TestDatabase;
let queries = 0;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.close());

function service(limits = {}) {
  return createOperations({ ...db.connection, types, logger: silentLogger, limits });
}

/** Runs `submit`, expects it to throw, and checks that nothing was written. */
async function refused(submit: () => Promise<unknown>): Promise<ValidationError> {
  const error = await submit().then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(ValidationError);
  expect(await countRows(db.pool)).toEqual({ batches: 0, operations: 0, outbox: 0 });
  queries++;
  return error as ValidationError;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const untyped = (value: unknown) => value as any;

describe("submitBatch refuses bad input before writing", () => {
  it("names each invalid item by its path", async () => {
    const items = documents(5);
    items[1] = untyped({ id: "doc-1", tokens: -3, text: "x" });
    items[3] = untyped({ id: 7, tokens: 1, text: "x" });
    const error = await refused(() =>
      service().submitBatch({ tenantId: "t", type: "documents.ingest", items }),
    );
    expect(error.issues.map((issue) => issue.path)).toEqual([
      ["items", 1, "tokens"],
      ["items", 3, "id"],
    ]);
    expect(error.code).toBe("validation_failed");
  });

  it("refuses an unknown type, listing the registered ones", async () => {
    const error = await refused(() =>
      service().submitBatch({ tenantId: "t", type: untyped("documents.delete"), items: documents(1) }),
    );
    expect(error).toBeInstanceOf(UnknownOperationTypeError);
    expect(error.message).toContain("documents.ingest, email.send");
    expect(error.issues[0]!.path).toEqual(["type"]);
  });

  it("refuses an inherited property name as a type", async () => {
    const error = await refused(() =>
      service().submitBatch({ tenantId: "t", type: untyped("toString"), items: [{}] }),
    );
    expect(error).toBeInstanceOf(UnknownOperationTypeError);
  });

  it("refuses an empty batch", async () => {
    const error = await refused(() =>
      service().submitBatch({ tenantId: "t", type: "documents.ingest", items: [] }),
    );
    expect(error).toBeInstanceOf(EmptyBatchError);
    expect(error.issues[0]!.path).toEqual(["items"]);
  });

  it("refuses a child payload over the size limit, naming the child", async () => {
    const big = documents(3, 10).map((doc, i) => ({ ...doc, text: i === 2 ? "x".repeat(5000) : doc.text }));
    const error = await refused(() =>
      service({ maxPayloadBytes: 4096 }).submitBatch({
        tenantId: "t",
        type: "documents.ingest",
        items: big,
        split: { maxItems: 1 },
      }),
    );
    expect(error).toBeInstanceOf(PayloadTooLargeError);
    expect(error.issues[0]!.path).toEqual(["children", 2]);
    expect((error as PayloadTooLargeError).limitBytes).toBe(4096);
  });

  it("refuses metadata over its limit", async () => {
    const error = await refused(() =>
      service({ maxMetadataBytes: 100 }).submitBatch({
        tenantId: "t",
        type: "documents.ingest",
        items: documents(1),
        metadata: { note: "x".repeat(200) },
      }),
    );
    expect(error).toBeInstanceOf(PayloadTooLargeError);
    expect(error.issues[0]!.path).toEqual(["metadata"]);
  });

  it("refuses strings PostgreSQL's jsonb cannot store, with their path", async () => {
    const items = documents(2);
    items[1] = { ...items[1]!, text: "broken \ud800 surrogate" };
    const error = await refused(() =>
      service().submitBatch({ tenantId: "t", type: "documents.ingest", items }),
    );
    expect(error.issues[0]).toMatchObject({
      path: ["children", 0, "documents", 1, "text"],
      code: "invalid_json",
    });
    const nul = await refused(() =>
      service().submitBatch({
        tenantId: "t",
        type: "documents.ingest",
        items: documents(1),
        metadata: { a: "\u0000" },
      }),
    );
    expect(nul.issues[0]!.path).toEqual(["metadata", "a"]);
  });

  it("refuses a split rule that makes too many children, and too many items", async () => {
    const children = await refused(() =>
      service({ maxChildrenPerBatch: 3 }).submitBatch({
        tenantId: "t",
        type: "documents.ingest",
        items: documents(4, 1000),
      }),
    );
    expect(children.issues[0]!.code).toBe("too_many_children");
    const items = await refused(() =>
      service({ maxItemsPerBatch: 3 }).submitBatch({
        tenantId: "t",
        type: "documents.ingest",
        items: documents(4),
      }),
    );
    expect(items.issues[0]!.code).toBe("too_many_items");
  });

  it("refuses a bad split rule and grouping for a type without batch config", async () => {
    const rule = await refused(() =>
      service().submitBatch({
        tenantId: "t",
        type: "documents.ingest",
        items: documents(2),
        split: { maxItems: 0 },
      }),
    );
    expect(rule.issues[0]!.path).toEqual(["split", "maxItems"]);
    const grouping = await refused(() =>
      service().submitBatch({
        tenantId: "t",
        type: "email.send",
        items: [{ to: "a@b.co", subject: "s" }],
        split: { maxItems: 10 },
      }),
    );
    expect(grouping.issues[0]).toMatchObject({ path: ["split"], code: "split_unsupported" });
  });

  it("refuses a NaN or negative weight from the type's weigh function", async () => {
    const items = documents(3);
    items[2] = { ...items[2]!, tokens: Number.NaN };
    const error = await refused(() =>
      service().submitBatch({ tenantId: "t", type: "documents.ingest", items }),
    );
    expect(error.issues[0]!.path[0]).toBe("items");
  });

  it("refuses a missing tenant, a NUL in a key, unknown options and a bad date", async () => {
    const cases: [unknown, (string | number)[]][] = [
      [{ tenantId: "", type: "documents.ingest", items: documents(1) }, ["tenantId"]],
      [
        { tenantId: "t", type: "documents.ingest", items: documents(1), idempotencyKey: "a\u0000b" },
        ["idempotencyKey"],
      ],
      [{ tenantId: "t", type: "documents.ingest", items: documents(1), priority: 3 }, []],
      [{ tenantId: "t", type: "documents.ingest", items: documents(1), runAt: new Date("nope") }, ["runAt"]],
      [{ tenantId: "t", type: "documents.ingest", items: "not a list" }, ["items"]],
    ];
    for (const [input, path] of cases) {
      const error = await refused(() => service().submitBatch(untyped(input)));
      expect(error.issues[0]!.path).toEqual(path);
    }
  });
});

describe("submitOperation refuses bad input before writing", () => {
  it("validates the payload against the type's schema", async () => {
    const error = await refused(() =>
      service().submitOperation({
        tenantId: "t",
        type: "email.send",
        payload: untyped({ to: "not-an-email" }),
      }),
    );
    expect(error.issues.map((issue) => issue.path)).toEqual([
      ["payload", "to"],
      ["payload", "subject"],
    ]);
  });

  it("refuses a payload over the limit", async () => {
    const error = await refused(() =>
      service({ maxPayloadBytes: 64 }).submitOperation({
        tenantId: "t",
        type: "email.send",
        payload: { to: "a@b.co", subject: "x".repeat(100) },
      }),
    );
    expect(error).toBeInstanceOf(PayloadTooLargeError);
    expect(error.issues[0]!.path).toEqual(["payload"]);
  });
});

describe("reads refuse invalid ids and cursors", () => {
  it.each([["not-a-uuid"], ["'; DROP TABLE operations; --"], [""], [untyped(42)]])(
    "refuses the id %p",
    async (id) => {
      const ops = service();
      await expect(ops.getBatch("t", id)).rejects.toBeInstanceOf(InvalidIdError);
      await expect(ops.getOperation("t", id)).rejects.toBeInstanceOf(InvalidIdError);
      await expect(ops.listOperations({ tenantId: "t", batchId: id })).rejects.toBeInstanceOf(InvalidIdError);
    },
  );

  it("refuses a forged cursor", async () => {
    await expect(service().listOperations({ tenantId: "t", cursor: "bm90LWFuLWlk" })).rejects.toMatchObject({
      code: "validation_failed",
      issues: [{ path: ["cursor"], code: "invalid_cursor" }],
    });
  });

  it("refuses a bad page size and status", async () => {
    await expect(service().listOperations({ tenantId: "t", limit: 0 })).rejects.toMatchObject({
      issues: [{ path: ["limit"] }],
    });
    await expect(service().listOperations({ tenantId: "t", status: untyped("done") })).rejects.toBeInstanceOf(
      ValidationError,
    );
  });
});

describe("createWorker refuses bad options", () => {
  const handlers = { "documents.ingest": async () => undefined };
  it.each([
    [{ concurrency: 0 }, "`concurrency` must be an integer >= 1, got 0"],
    [{ batchSize: 2.5 }, "`batchSize` must be an integer >= 1, got 2.5"],
    [{ prefetch: -1 }, '`prefetch` must be an integer >= 0 or "auto", got -1'],
    [{ prefetch: untyped("lots") }, '`prefetch` must be an integer >= 0 or "auto", got "lots"'],
    [{ leaseMs: untyped("30s") }, '`leaseMs` must be an integer >= 1, got "30s"'],
    [{ tenantWeights: { a: 0 } }, 'tenantWeights["a"] must be a number > 0, got 0'],
    [
      { heartbeatIntervalMs: 20_000 },
      "`heartbeatIntervalMs` (20000) must be at most half of `leaseMs` (30000)",
    ],
    [
      { leaseMs: 1_000, heartbeatIntervalMs: 600 },
      "`heartbeatIntervalMs` (600) must be at most half of `leaseMs` (1000)",
    ],
  ])("%j", (options, message) => {
    expect(() => service().createWorker({ handlers: untyped(handlers), ...options })).toThrow(
      expect.objectContaining({ code: "invalid_options", message: expect.stringContaining(message) }),
    );
  });

  it("refuses a worker without handlers", () => {
    expect(() => service().createWorker({ handlers: {} })).toThrow(
      expect.objectContaining({ code: "invalid_options" }),
    );
  });
});

afterAll(() => {
  // Guards against this file silently running no refusal at all.
  expect(queries).toBeGreaterThan(10);
});
