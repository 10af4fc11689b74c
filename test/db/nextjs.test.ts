// The Next.js example's route handlers, called with Request objects against PostgreSQL, the way
// Next.js calls them (dynamic params as a promise).
import { createTestDatabase, type TestDatabase } from "../support/db";
import { waitFor } from "../support/fixtures";

type Handler = (request: Request, context: { params: Promise<{ id: string }> }) => Promise<Response>;

let db: TestDatabase;
const serverUrl = process.env.DATABASE_URL;
let routes: {
  batches: { POST: Handler };
  batch: { GET: Handler; DELETE: Handler };
  batchRetry: { POST: Handler };
  operationsList: { GET: Handler };
  operation: { GET: Handler; DELETE: Handler };
  operationRetry: { POST: Handler };
  metrics: { GET: () => Promise<Response> };
};
let lib: typeof import("../../examples/nextjs/lib/operations");

beforeAll(async () => {
  db = await createTestDatabase();
  process.env.DATABASE_URL = db.url; // lib/prisma.ts reads it when first imported
  lib = await import("../../examples/nextjs/lib/operations");
  routes = {
    batches: await import("../../examples/nextjs/app/api/batches/route"),
    batch: await import("../../examples/nextjs/app/api/batches/[id]/route"),
    batchRetry: await import("../../examples/nextjs/app/api/batches/[id]/retry/route"),
    operationsList: await import("../../examples/nextjs/app/api/operations/route"),
    operation: await import("../../examples/nextjs/app/api/operations/[id]/route"),
    operationRetry: await import("../../examples/nextjs/app/api/operations/[id]/retry/route"),
    metrics: await import("../../examples/nextjs/app/api/metrics/route"),
  } as never;
});

afterAll(async () => {
  const { prisma } = await import("../../examples/nextjs/lib/prisma");
  await prisma.$disconnect();
  process.env.DATABASE_URL = serverUrl;
  await db.close();
});

const noParams = { params: Promise.resolve({ id: "" }) };
const withId = (id: string) => ({ params: Promise.resolve({ id }) });
const req = (path: string, init: { method?: string; tenant?: string | null; body?: unknown } = {}) =>
  new Request(`http://localhost${path}`, {
    method: init.method ?? "GET",
    headers: {
      ...(init.tenant === null ? {} : { "x-tenant-id": init.tenant ?? "acme" }),
      ...(init.body === undefined ? {} : { "content-type": "application/json" }),
    },
    body:
      init.body === undefined
        ? undefined
        : typeof init.body === "string"
          ? init.body
          : JSON.stringify(init.body),
  });
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = async (response: Response | Promise<Response>): Promise<any> => (await response).json();
const docs = (count: number) =>
  Array.from({ length: count }, (_, i) => ({ id: `d${i}`, tokens: 1500, text: "t" }));

describe("Next.js route handlers", () => {
  it("submit, read, and a worker completes the batch", async () => {
    const response = await routes.batches.POST(
      req("/api/batches", { method: "POST", body: { type: "documents.ingest", items: docs(4) } }),
      noParams,
    );
    expect(response.status).toBe(201);
    const submitted = await json(response);
    expect(submitted.operationIds).toHaveLength(2);

    const worker = lib.operations.createWorker({
      handlers: { "documents.ingest": () => "indexed" },
      pollIntervalMs: 20,
    });
    await worker.start();
    try {
      await waitFor("completion", async () => {
        const read = await routes.batch.GET(
          req(`/api/batches/${submitted.batch.id}`),
          withId(submitted.batch.id),
        );
        return (await json(read)).status === "completed";
      });
    } finally {
      await worker.stop();
    }
    const read = await json(
      routes.batch.GET(req(`/api/batches/${submitted.batch.id}`), withId(submitted.batch.id)),
    );
    expect(read.progress).toEqual({ done: 2, total: 2, ratio: 1 });
    expect(read.children.items).toHaveLength(2);
    const one = await routes.operation.GET(
      req(`/api/operations/${submitted.operationIds[0]}`),
      withId(submitted.operationIds[0]),
    );
    expect(await json(one)).toMatchObject({ status: "completed", result: "indexed" });
    const conflict = await routes.operation.DELETE(
      req(`/x`, { method: "DELETE" }),
      withId(submitted.operationIds[0]),
    );
    expect(conflict.status).toBe(409);
  });

  it("maps errors: 400 with issue paths, 400 without a tenant or JSON, 404 for another tenant", async () => {
    const invalid = await routes.batches.POST(
      req("/api/batches", {
        method: "POST",
        body: { type: "documents.ingest", items: [{ id: "a", tokens: 0, text: "t" }] },
      }),
      noParams,
    );
    expect(invalid.status).toBe(400);
    expect((await json(invalid)).issues[0].path).toEqual(["items", 0, "tokens"]);
    expect(
      (await routes.batches.POST(req("/api/batches", { method: "POST", body: "{not json" }), noParams))
        .status,
    ).toBe(400);
    expect((await routes.operationsList.GET(req("/api/operations", { tenant: null }), noParams)).status).toBe(
      400,
    );
    expect((await routes.operation.GET(req("/x"), withId("nope"))).status).toBe(400);

    const submitted = await json(
      routes.batches.POST(
        req("/api/batches", { method: "POST", body: { type: "documents.ingest", items: docs(1) } }),
        noParams,
      ),
    );
    const foreign = await routes.batch.GET(req("/x", { tenant: "globex" }), withId(submitted.batch.id));
    expect(foreign.status).toBe(404);
  });

  it("lists with filters and a cursor, cancels and retries", async () => {
    const runAt = new Date(Date.now() + 3_600_000).toISOString();
    const submitted = await json(
      routes.batches.POST(
        req("/api/batches", {
          method: "POST",
          tenant: "paging",
          body: { type: "documents.ingest", items: docs(6), runAt },
        }),
        noParams,
      ),
    );
    const ids: string[] = [];
    let cursor = "";
    do {
      const page = await json(
        routes.operationsList.GET(
          req(`/api/operations?limit=2&status=pending${cursor && `&cursor=${cursor}`}`, { tenant: "paging" }),
          noParams,
        ),
      );
      ids.push(...page.items.map((item: { id: string }) => item.id));
      cursor = page.nextCursor ?? "";
    } while (cursor);
    expect(ids.sort()).toEqual([...submitted.operationIds].sort());

    const cancelled = await routes.batch.DELETE(
      req("/x", { method: "DELETE", tenant: "paging" }),
      withId(submitted.batch.id),
    );
    expect(await json(cancelled)).toMatchObject({ status: "cancelled", counts: { cancelled: 3 } });
    const retriedOne = await routes.operationRetry.POST(
      req("/x", { method: "POST", tenant: "paging" }),
      withId(submitted.operationIds[0]),
    );
    expect((await json(retriedOne)).status).toBe("pending");
    const retried = await routes.batchRetry.POST(
      req("/x", { method: "POST", tenant: "paging" }),
      withId(submitted.batch.id),
    );
    expect(await json(retried)).toMatchObject({ status: "processing", counts: { pending: 3, cancelled: 0 } });
  });

  it("serves Prometheus text", async () => {
    const response = await routes.metrics.GET();
    expect(response.headers.get("content-type")).toMatch(/^text\/plain/);
    expect(await response.text()).toContain("prisma_operations_claimable");
  });
});
