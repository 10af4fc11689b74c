// The NestJS example app end to end over HTTP (supertest), on a real PostgreSQL: the module's
// service injected into a controller, a worker started and stopped with the app, handlers found
// among the providers, and the module's errors mapped to 400/404/409.
import "reflect-metadata";
import type { INestApplication } from "@nestjs/common";
import { Test } from "@nestjs/testing";
import request from "supertest";
import { AppModule } from "../fixtures/nestjs-app/app.module";
import { SearchIndex } from "../fixtures/nestjs-app/ingest.handler";
import { PrismaService } from "../fixtures/nestjs-app/prisma.service";
import { OperationsWorkerHost } from "../../src/integrations/nestjs";
import { createTestDatabase, type TestDatabase } from "../support/db";
import { waitFor } from "../support/fixtures";

let db: TestDatabase;
let app: INestApplication;
const serverUrl = process.env.DATABASE_URL;

const docs = (count: number, tokens = 1500) =>
  Array.from({ length: count }, (_, i) => ({ id: `d${i}`, tokens, text: `text ${i}` }));

beforeAll(async () => {
  db = await createTestDatabase();
  process.env.DATABASE_URL = db.url; // the example app LISTENs on DATABASE_URL
  // The fixture's own PrismaService (and its pool, handed to the module) on this database.
  const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
  app = moduleRef.createNestApplication({ logger: false });
  await app.init();
});

afterAll(async () => {
  await app?.close();
  process.env.DATABASE_URL = serverUrl;
  await db.close();
});

const api = () => request(app.getHttpServer());
const as = (tenant: string) => ({ "x-tenant-id": tenant });

async function batchStatus(tenant: string, id: string): Promise<string> {
  return (await api().get(`/batches/${id}`).set(as(tenant))).body.status;
}

describe("NestJS: OperationsModule in an app", () => {
  it("submits a batch over HTTP; the app's worker runs it with an injected handler", async () => {
    const created = await api()
      .post("/batches")
      .set(as("acme"))
      .send({ type: "documents.ingest", items: docs(6) })
      .expect(201);
    expect(created.body.created).toBe(true);
    expect(created.body.operationIds).toHaveLength(3); // 2 documents of 1,500 tokens per 4,000-token child

    await waitFor(
      "the batch to complete",
      async () => (await batchStatus("acme", created.body.batch.id)) === "completed",
    );
    const batch = await api().get(`/batches/${created.body.batch.id}`).set(as("acme")).expect(200);
    expect(batch.body.progress).toEqual({ done: 3, total: 3, ratio: 1 });
    expect(batch.body.children.items.map((child: { id: string }) => child.id).sort()).toEqual(
      [...created.body.operationIds].sort(),
    );
    expect(app.get(SearchIndex).indexed).toEqual(expect.arrayContaining(["d0", "d5"]));
    expect(app.get(OperationsWorkerHost).runningWorker?.stats.completed).toBeGreaterThanOrEqual(3);
  });

  it("returns the first batch again for a repeated idempotency key (200, not 201)", async () => {
    const body = { type: "documents.ingest", items: docs(2), idempotencyKey: "upload-7" };
    const first = await api().post("/batches").set(as("acme")).send(body).expect(201);
    const again = await api().post("/batches").set(as("acme")).send(body).expect(200);
    expect(again.body.batch.id).toBe(first.body.batch.id);
    expect(again.body.created).toBe(false);
  });

  it("answers bad input with 400 and the zod issue paths, before writing anything", async () => {
    const before = (await db.pool.query(`SELECT count(*)::int AS n FROM operation_batches`)).rows[0].n;
    const items = docs(3);
    items[1] = { ...items[1]!, tokens: -5 };
    const bad = await api()
      .post("/batches")
      .set(as("acme"))
      .send({ type: "documents.ingest", items })
      .expect(400);
    expect(bad.body.error).toBe("validation_failed");
    expect(bad.body.issues[0].path).toEqual(["items", 1, "tokens"]);
    await api()
      .post("/batches")
      .set(as("acme"))
      .send({ type: "nope", items: docs(1) })
      .expect(400);
    await api().post("/batches").set(as("acme")).send({ type: "documents.ingest", items: [] }).expect(400);
    await api()
      .post("/batches")
      .send({ type: "documents.ingest", items: docs(1) })
      .expect(400); // no tenant
    const limit = await api().get("/operations?limit=lots").set(as("acme")).expect(400);
    expect(limit.body.issues[0].path).toEqual(["limit"]);
    await api().get("/operations/not-a-uuid").set(as("acme")).expect(400);
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM operation_batches`)).rows[0].n).toBe(before);
  });

  it("hides another tenant's rows behind 404", async () => {
    const created = await api()
      .post("/batches")
      .set(as("acme"))
      .send({ type: "documents.ingest", items: docs(1) })
      .expect(201);
    await api().get(`/batches/${created.body.batch.id}`).set(as("globex")).expect(404);
    await api().get(`/operations/${created.body.operationIds[0]}`).set(as("globex")).expect(404);
    await api().delete(`/operations/${created.body.operationIds[0]}`).set(as("globex")).expect(404);
    await api().post(`/batches/${created.body.batch.id}/retry`).set(as("globex")).expect(404);
    const list = await api().get("/operations").set(as("globex")).expect(200);
    expect(list.body.items).toEqual([]);
  });

  it("lists with filters and a cursor", async () => {
    await api()
      .post("/batches")
      .set(as("paging"))
      .send({ type: "documents.ingest", items: docs(10) })
      .expect(201);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: request.Response = await api()
        .get(`/operations?limit=2&includeBatches=true${cursor ? `&cursor=${cursor}` : ""}`)
        .set(as("paging"))
        .expect(200);
      seen.push(...page.body.items.map((item: { id: string }) => item.id));
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(seen).toHaveLength(6); // 5 children and their batch
    expect(new Set(seen).size).toBe(6);
    const batches = await api()
      .get("/operations?includeBatches=true&status=pending,processing,completed")
      .set(as("paging"));
    expect(batches.body.items.some((item: { kind: string }) => item.kind === "batch")).toBe(true);
  });

  it("cancels (200, then 409 when finished) and retries operations and batches", async () => {
    const created = await api()
      .post("/batches")
      .set(as("acme"))
      .send({ type: "documents.ingest", items: docs(4) })
      .expect(201);
    await waitFor(
      "completion",
      async () => (await batchStatus("acme", created.body.batch.id)) === "completed",
    );
    const finished = created.body.operationIds[0];
    const conflict = await api().delete(`/operations/${finished}`).set(as("acme")).expect(409);
    expect(conflict.body.error).toBe("operation_finished");
    await api().delete(`/batches/${created.body.batch.id}`).set(as("acme")).expect(409);
    await api().post(`/operations/${finished}/retry`).set(as("acme")).expect(409);

    // A batch scheduled for later: its children wait, so they can be cancelled, then retried.
    const runAt = new Date(Date.now() + 3_600_000).toISOString();
    const scheduled = (
      await api()
        .post("/batches")
        .set(as("acme"))
        .send({ type: "documents.ingest", items: docs(4), runAt })
        .expect(201)
    ).body;
    const cancelled = await api()
      .delete(`/operations/${scheduled.operationIds[0]}`)
      .set(as("acme"))
      .expect(200);
    expect(cancelled.body).toMatchObject({ state: "cancelled", operation: { status: "cancelled" } });
    const cancelledBatch = await api().delete(`/batches/${scheduled.batch.id}`).set(as("acme")).expect(200);
    expect(cancelledBatch.body).toMatchObject({ status: "cancelled", counts: { cancelled: 2 } });

    await api().post(`/operations/${scheduled.operationIds[0]}/retry`).set(as("acme")).expect(200);
    const retried = await api().post(`/batches/${scheduled.batch.id}/retry`).set(as("acme")).expect(200);
    // The app's worker may already have finished the re-queued children by the time this answers.
    expect(["processing", "completed"]).toContain(retried.body.status);
    expect(retried.body.counts.cancelled).toBe(0);
    await waitFor(
      "the retried batch to complete",
      async () => (await batchStatus("acme", scheduled.batch.id)) === "completed",
    );
  });

  it("serves Prometheus text on /metrics", async () => {
    const metrics = await api().get("/metrics").expect(200);
    expect(metrics.headers["content-type"]).toMatch(/^text\/plain/);
    expect(metrics.text).toContain("# TYPE prisma_operations_claimable gauge");
  });

  it("stops the worker with the application: a handler in flight finishes and is recorded before the pool closes", async () => {
    const host = app.get(OperationsWorkerHost);
    const worker = host.runningWorker!;
    const index = app.get(SearchIndex);
    let release!: () => void;
    index.gate = new Promise((resolve) => (release = resolve));
    const created = await api()
      .post("/batches")
      .set(as("acme"))
      .send({ type: "documents.ingest", items: docs(1) })
      .expect(201);
    const [child] = created.body.operationIds as string[];
    await waitFor("the handler to hold its operation", async () => {
      const { rows } = await db.pool.query(`SELECT status::text FROM operations WHERE id = $1`, [child]);
      return rows[0].status === "processing";
    });
    const stopping = jest.spyOn(worker, "stop");
    const closed = app.close();
    await waitFor("the app to stop its worker", () => stopping.mock.calls.length > 0);
    release();
    await closed;
    expect(worker.inFlight).toBe(0);
    expect(app.get(PrismaService).pool.ended).toBe(true);
    const { rows } = await db.pool.query(`SELECT status::text FROM operations WHERE id = $1`, [child]);
    expect(rows[0].status).toBe("completed");
    await waitFor("the worker's LISTEN connection to close", async () => {
      const { rows } = await db.pool.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'prisma-operations-listener'`,
      );
      return rows[0].n === 0;
    });
    app = undefined as never;
  });
});
