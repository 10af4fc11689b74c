// The dashboard over HTTP, on a real node:http server and a real database: access only through
// `authorize`, every read and action limited to the operator's tenants, CSRF and read-only
// refusals that change nothing, the reasons rows wait, the numbers the overview shows, and the
// actions going through the service's own rules.
import express from "express";
import type { AddressInfo } from "node:net";
import { z } from "zod";
import { createOperations, defineOperationType, silentLogger } from "../../src";
import { createDashboard, type DashboardGrant } from "../../src/dashboard";
import { createTestDatabase, type TestDatabase } from "../support/db";
import { DashboardClient, startDashboard, type DashboardServer } from "../support/dashboard";
import { afterRegistration, truncateAll } from "../support/fixtures";
import { finish, storeOf } from "../support/store";

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.close());
beforeEach(() => truncateAll(db.pool));

const types = {
  work: defineOperationType({ payload: z.object({ n: z.number().int(), note: z.string().optional() }) }),
  mail: defineOperationType({ payload: z.object({ to: z.string() }), maxAttempts: 2 }),
};

/** While true, the audit subscriber refuses every event, and its one attempt leaves it dead. */
let auditDown = false;
beforeEach(() => (auditDown = false));

function service() {
  return createOperations({
    ...db.connection,
    types,
    logger: silentLogger,
    subscribers: [
      {
        name: "audit",
        deliver: () => {
          if (auditDown) throw new Error("down");
        },
      },
    ],
    outbox: { maxAttempts: 1 },
  });
}
type Ops = ReturnType<typeof service>;

const servers: DashboardServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

/** A dashboard whose operator gets `grant` (a function: it can change between requests). */
async function dashboard(ops: Ops, grant: () => DashboardGrant | false | null, options = {}) {
  const server = await startDashboard({
    operations: ops,
    authorize: () => grant(),
    logger: silentLogger,
    ...options,
  });
  servers.push(server);
  return server;
}

const items = (count: number) => Array.from({ length: count }, (_, n) => ({ n }));

async function claim(ids: string[], worker = "worker-1") {
  return storeOf(db.prisma).claimById(ids, worker, 60_000);
}

async function statusOf(table: "operations" | "operation_batches", id: string): Promise<string> {
  const { rows } = await db.pool.query(`SELECT status::text FROM ${table} WHERE id = $1`, [id]);
  return rows[0].status;
}

describe("access", () => {
  it("refuses everything until authorize says yes: 401 for nobody, 403 for a refusal or no tenants", async () => {
    const ops = service();
    let answer: DashboardGrant | false | null = null;
    const server = await dashboard(ops, () => answer);
    const client = new DashboardClient(server.url);
    for (const path of ["", "dashboard.js", "api/session", "api/overview", "api/batches"]) {
      expect((await client.get(path)).status).toBe(401);
    }
    expect((await client.post("api/dead/redeliver", { subscriber: "audit", all: true })).status).toBe(401);
    answer = false;
    expect((await client.get("api/overview")).status).toBe(403);
    answer = { tenants: [] };
    expect((await client.get("api/overview")).json()).toEqual({
      error: "forbidden",
      message: "authorize granted no tenants",
    });
    const page = await client.get("");
    expect(page.status).toBe(403);
    expect(page.body).not.toContain("dashboard.js");
    answer = { tenants: "*" };
    expect((await client.get("api/overview")).status).toBe(200);
  });

  it("refuses every request when no authorize hook was given, and answers 500 (no data) when it throws", async () => {
    const ops = service();
    const unguarded = await startDashboard({ operations: ops, logger: silentLogger } as never);
    servers.push(unguarded);
    expect((await new DashboardClient(unguarded.url).get("api/overview")).status).toBe(403);
    const throwing = await startDashboard({
      operations: ops,
      logger: silentLogger,
      authorize: () => {
        throw new Error("session store down");
      },
    });
    servers.push(throwing);
    const answer = await new DashboardClient(throwing.url).get("api/overview");
    expect(answer.status).toBe(500);
    expect(answer.body).not.toContain("session store down");
  });

  it("hands authorize the request as the server has it", async () => {
    const ops = service();
    const server = await dashboard(ops, () => null, {
      authorize: (request: { headers: Record<string, string> }) =>
        request.headers["x-operator"] === "alice" ? { tenants: "*" } : null,
    });
    expect((await new DashboardClient(server.url).get("api/overview")).status).toBe(401);
    expect(
      (await new DashboardClient(server.url, { "x-operator": "alice" }).get("api/overview")).status,
    ).toBe(200);
  });
});

describe("the page", () => {
  it("is served with a strict content policy and a CSRF cookie (HttpOnly, SameSite=Strict, on its path)", async () => {
    const server = await dashboard(service(), () => ({ tenants: "*" }), { basePath: "/ops" });
    const client = new DashboardClient(server.url);
    const page = await client.get("");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
    expect(page.headers.get("x-content-type-options")).toBe("nosniff");
    expect(page.headers.get("x-frame-options")).toBe("DENY");
    expect(page.headers.get("set-cookie")).toMatch(
      /^prisma_operations_dashboard=[\w-]{32}; Path=\/ops\/; HttpOnly; SameSite=Strict$/,
    );
    expect(page.body).toContain('<script src="/ops/dashboard.js"></script>');
    // The same page without the trailing slash; nothing outside the base path.
    expect((await client.get(`${server.origin}/ops`)).status).toBe(200);
    expect((await client.get(`${server.origin}/elsewhere`)).status).toBe(404);
    const script = await client.get("dashboard.js");
    expect(script.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    const etag = script.headers.get("etag")!;
    expect((await client.get("dashboard.js", { "if-none-match": etag })).status).toBe(304);
    expect((await client.get("dashboard.css")).status).toBe(200);
  });

  it("mounts under any path in Express, and answers Fetch API requests (a Next.js route handler)", async () => {
    const ops = service();
    await ops.submitBatch({ tenantId: "a", type: "work", items: items(2) });
    const dashboard = createDashboard({
      operations: ops,
      authorize: () => ({ tenants: "*" }),
      logger: silentLogger,
    });
    const app = express();
    app.use(express.json());
    app.use("/admin/ops", dashboard.handle);
    const server = app.listen(0, "127.0.0.1");
    await new Promise((resolve) => server.once("listening", resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/admin/ops/`;
      const client = new DashboardClient(url);
      expect((await client.get("")).body).toContain('href="/admin/ops/dashboard.css"');
      expect((await client.get("api/batches")).json().items).toHaveLength(1);
      await client.open();
      const batchId = (await client.get("api/batches")).json().items[0].id;
      // express.json() has read the body already: the dashboard takes it from req.body.
      expect((await client.post(`api/batches/${batchId}/cancel`)).json().batch.status).toBe("cancelled");
    } finally {
      server.close();
    }

    const next = createDashboard({
      operations: ops,
      authorize: () => ({ tenants: ["a"] }),
      basePath: "/ops",
    });
    const answer = await next.fetch(new Request("http://localhost/ops/api/batches"));
    expect(answer.status).toBe(200);
    expect(((await answer.json()) as { items: { status: string }[] }).items[0]!.status).toBe("cancelled");
    expect((await next.fetch(new Request("http://localhost/other"))).status).toBe(404);
  });
});

describe("what the overview shows", () => {
  it("counts each queue as the database holds it, with the last hour's outcomes and batches in flight", async () => {
    const ops = service();
    await ops.submitBatch({ tenantId: "a", type: "work", items: items(6) });
    await ops.submitOperation({
      tenantId: "a",
      type: "work",
      payload: { n: 9 },
      runAt: new Date(Date.now() + 3_600_000),
    });
    await ops.submitOperation({
      tenantId: "a",
      type: "work",
      payload: { n: 10 },
      runAt: new Date(Date.now() + 3_600_000),
    });
    await ops.submitOperation({ tenantId: "b", type: "mail", payload: { to: "x" } });
    const children = await db.pool.query(
      `SELECT id::text FROM operations WHERE batch_id IS NOT NULL ORDER BY id`,
    );
    const [c1, c2, c3, c4] = children.rows.map((row) => row.id);
    const claimed = await claim([c1, c2, c3, c4]);
    await finish(db.prisma, claimed[0]!, { to: "completed", result: {} });
    await finish(db.prisma, claimed[1]!, { to: "completed", result: {} });
    await finish(db.prisma, claimed[2]!, { to: "failed", error: { name: "Error", message: "no" } });
    // Finished two hours ago: not in the last hour.
    await db.pool.query(`UPDATE operations SET finished_at = now() - interval '2 hours' WHERE id = $1`, [c2]);

    const server = await dashboard(ops, () => ({ tenants: "*" }));
    const overview = (await new DashboardClient(server.url).get("api/overview")).json();
    const queue = (type: string, tenantId: string) =>
      overview.queues.find(
        (q: { type: string; tenantId: string }) => q.type === type && q.tenantId === tenantId,
      );
    expect(queue("work", "a")).toMatchObject({
      claimable: 2, // of 6 children, 4 were claimed: 1 runs, 3 finished (one of them 2 hours ago)
      scheduled: 2,
      processing: 1,
      completedLastHour: 1,
      failedLastHour: 1,
      batchesInFlight: 1,
    });
    expect(queue("mail", "b")).toMatchObject({
      claimable: 1,
      scheduled: 0,
      processing: 0,
      batchesInFlight: 0,
    });
    // The same numbers, counted straight from the tables.
    const { rows } = await db.pool.query(`
      SELECT count(*) FILTER (WHERE status = 'pending' AND run_at <= now())::int AS claimable,
             count(*) FILTER (WHERE status = 'pending' AND run_at > now())::int AS scheduled,
             count(*) FILTER (WHERE status = 'processing')::int AS processing,
             count(*) FILTER (WHERE status = 'completed' AND finished_at > now() - interval '1 hour')::int AS completed,
             count(*) FILTER (WHERE status = 'failed' AND finished_at > now() - interval '1 hour')::int AS failed
      FROM operations WHERE type = 'work' AND tenant_id = 'a'`);
    expect(queue("work", "a")).toMatchObject({
      claimable: rows[0].claimable,
      scheduled: rows[0].scheduled,
      processing: rows[0].processing,
      completedLastHour: rows[0].completed,
      failedLastHour: rows[0].failed,
    });
    const minutes = overview.throughput;
    expect(minutes).toHaveLength(60);
    expect(minutes.reduce((sum: number, m: { completed: number }) => sum + m.completed, 0)).toBe(1);
    expect(minutes.reduce((sum: number, m: { failed: number }) => sum + m.failed, 0)).toBe(1);
    expect(overview.subscribers).toEqual([
      expect.objectContaining({ subscriber: "audit", backlog: expect.any(Number), dead: 0 }),
    ]);
    expect(overview.recentBatches).toHaveLength(1);
  });
});

describe("why rows wait", () => {
  it("gives every unfinished child of a batch its reason, and the batch its summary", async () => {
    const ops = service();
    const batch = (await ops.submitBatch({ tenantId: "a", type: "work", items: items(5) })).batch;
    const ids = (
      await db.pool.query(`SELECT id::text FROM operations WHERE batch_id = $1 ORDER BY id`, [batch.id])
    ).rows.map((row) => row.id);
    const [running, backingOff, scheduled, stuck, done] = ids;
    // A live worker (in the registry) holds one; another backs off after a failed attempt.
    await db.pool.query(
      `INSERT INTO operation_workers (id, hostname, pid, types, concurrency, heartbeat_ms) VALUES ('worker-1', 'h', 1, '{mail}', 2, 1000)`,
    );
    const [held, failing, finished] = await claim([running!, backingOff!, done!]);
    await finish(db.prisma, failing!, {
      to: "pending",
      error: { name: "Error", message: "503", retryable: true, attempt: 1 },
      delayMs: 120_000,
      refundAttempt: false,
    });
    await finish(db.prisma, finished!, { to: "completed", result: {} });
    await db.pool.query(`UPDATE operations SET run_at = now() + interval '1 hour' WHERE id = $1`, [
      scheduled,
    ]);
    await db.pool.query(`UPDATE operations SET run_at = now() - interval '90 seconds' WHERE id = $1`, [
      stuck,
    ]);

    const server = await dashboard(ops, () => ({ tenants: ["a"] }));
    const detail = (await new DashboardClient(server.url).get(`api/batches/${batch.id}`)).json();
    const reasonOf = (id: string) =>
      detail.children.items.find((child: { id: string }) => child.id === id).reason as {
        code: string;
        text: string;
      } | null;
    expect(reasonOf(running!)).toMatchObject({
      code: "running",
      text: expect.stringContaining("Held by worker worker-1 until"),
    });
    expect(held!.id).toBe(running);
    expect(reasonOf(backingOff!)).toMatchObject({
      code: "backing_off",
      text: expect.stringMatching(
        /^Backing off after attempt 1 of 3 failed, until .* \(in 1 min 5\d s\)\.$|^Backing off after attempt 1 of 3 failed, until .* \(in 2 min\)\.$/,
      ),
    });
    expect(reasonOf(scheduled!)).toMatchObject({
      code: "scheduled",
      text: expect.stringMatching(/^Due at .*\(in (59 min 5\d s|1 h)\)\.$/),
    });
    expect(reasonOf(stuck!)).toMatchObject({
      code: "no_worker",
      text: 'No worker has claimed this due row for 1 min 30 s — no live worker handles "work" (is a worker for this type running?).',
    });
    expect(reasonOf(done!)).toBeNull();
    expect(detail.batch.reason).toMatchObject({ code: "no_worker", severity: "stuck" });
    expect(detail.batch.reason.text).toMatch(
      /^1 running · 1 due: no worker has claimed this due row for 1 min 30 s/,
    );
    expect(detail.batch.counts).toEqual({
      total: 5,
      pending: 3,
      processing: 1,
      completed: 1,
      failed: 0,
      cancelled: 0,
    });
    expect(detail.events.map((event: { topic: string }) => event.topic)).toEqual(["batch.submitted"]);

    const operation = (await new DashboardClient(server.url).get(`api/operations/${running}`)).json();
    expect(operation.operation).toMatchObject({ id: running, lockedBy: "worker-1", payload: { n: 0 } });
    expect(operation.batch).toEqual({ id: batch.id, status: "processing" });
    expect(operation.reason.code).toBe("running");
  });

  it("says a running child of a cancelled batch waits for its handler to stop", async () => {
    const ops = service();
    const batch = (await ops.submitBatch({ tenantId: "a", type: "work", items: items(3) })).batch;
    const [first] = (
      await db.pool.query(`SELECT id::text FROM operations WHERE batch_id = $1 ORDER BY id`, [batch.id])
    ).rows;
    await claim([first.id]);
    await ops.cancelBatch("a", batch.id);
    const server = await dashboard(ops, () => ({ tenants: "*" }));
    const detail = (await new DashboardClient(server.url).get(`api/batches/${batch.id}`)).json();
    expect(detail.batch.reason).toMatchObject({ code: "batch_cancelled" });
    const child = detail.children.items.find((c: { id: string }) => c.id === first.id);
    expect(child.reason).toMatchObject({
      code: "batch_cancelled",
      text: expect.stringMatching(/^Batch cancelled at .*; waiting for worker worker-1 to stop its handler/),
    });
  });
});

describe("an event's deliveries", () => {
  it("tells each subscriber's: had inline (no row kept), held by its process, or a delivery row", async () => {
    const ops = service();
    await ops.ready();
    await afterRegistration(db.pool); // so that the next event reads as owed to audit
    const { batch } = await ops.submitBatch({ tenantId: "a", type: "work", items: items(1) });
    // A second event about the batch, held for audit by a process that has not settled it yet.
    await storeOf(db.prisma).insertEvents(
      [{ tenantId: "a", topic: "note", aggregateId: batch.id, payload: {} }],
      ops.dispatcher.inline,
    );
    // A third, refused by audit: its one attempt leaves a dead delivery row.
    auditDown = true;
    await ops.cancelBatch("a", batch.id);
    const server = await dashboard(ops, () => ({ tenants: ["a"] }));
    const client = new DashboardClient(server.url);
    await client.open();
    const detail = (await client.get(`api/batches/${batch.id}`)).json();
    const states = detail.events.map((event: { topic: string; deliveries: object[] }) => [
      event.topic,
      event.deliveries.map((d) => {
        const { subscriber, kind, deadAt } = d as { subscriber: string; kind: string; deadAt: string | null };
        return { subscriber, kind, dead: deadAt !== null };
      }),
    ]);
    expect(states).toEqual([
      ["batch.submitted", [{ subscriber: "audit", kind: "inline", dead: false }]],
      ["note", [{ subscriber: "audit", kind: "held", dead: false }]],
      ["batch.cancelled", [{ subscriber: "audit", kind: "row", dead: true }]],
    ]);
  });
});

describe("tenants", () => {
  it("shows an operator of tenant a nothing of tenant b, and lets them change none of it", async () => {
    const ops = service();
    auditDown = true;
    const mine = (await ops.submitBatch({ tenantId: "a", type: "work", items: items(2) })).batch;
    const theirs = (await ops.submitBatch({ tenantId: "b", type: "work", items: items(2) })).batch;
    const theirOperation = (
      await ops.submitOperation({ tenantId: "b", type: "mail", payload: { to: "secret@b" } })
    ).operation;
    auditDown = false;
    const server = await dashboard(ops, () => ({ tenants: ["a"] }));
    const client = new DashboardClient(server.url);
    await client.open();

    const overview = (await client.get("api/overview")).json();
    expect(overview.queues.map((q: { tenantId: string }) => q.tenantId)).toEqual(["a"]);
    expect(overview.recentBatches.map((b: { id: string }) => b.id)).toEqual([mine.id]);
    expect(overview.subscribers[0].dead).toBe(1); // a's batch.submitted only
    expect(overview.workers.every((w: { running: unknown }) => w.running === null)).toBe(true);
    expect((await client.get("api/batches")).json().items.map((b: { id: string }) => b.id)).toEqual([
      mine.id,
    ]);
    expect((await client.get("api/batches?tenant=b")).json().items).toEqual([]);
    expect((await client.get("api/operations")).json().items).toEqual([]);
    expect((await client.get("api/dead")).json().items.map((d: { tenantId: string }) => d.tenantId)).toEqual([
      "a",
    ]);
    for (const path of [`api/batches/${theirs.id}`, `api/operations/${theirOperation.id}`]) {
      const answer = await client.get(path);
      expect(answer.status).toBe(404);
      expect(answer.body).not.toContain("secret@b");
    }
    expect((await client.post(`api/batches/${theirs.id}/cancel`)).status).toBe(404);
    expect((await client.post(`api/operations/${theirOperation.id}/cancel`)).status).toBe(404);
    expect(await statusOf("operation_batches", theirs.id)).toBe("pending");
    expect(await statusOf("operations", theirOperation.id)).toBe("pending");
    // "Redeliver all" revives a's dead deliveries only.
    expect((await client.post("api/dead/redeliver", { subscriber: "audit", all: true })).json()).toEqual({
      redelivered: 1,
    });
    const { rows } = await db.pool.query(
      `SELECT e.tenant_id, d.dead_at IS NOT NULL AS dead FROM operation_deliveries d JOIN operation_outbox e ON e.id = d.event_id ORDER BY 1, 2`,
    );
    expect(rows).toEqual([
      { tenant_id: "a", dead: false },
      { tenant_id: "b", dead: true },
      { tenant_id: "b", dead: true },
    ]);
  });
});

describe("actions", () => {
  it("cancels and retries batches and operations through the service, with its typed errors", async () => {
    const ops = service();
    const batch = (await ops.submitBatch({ tenantId: "a", type: "work", items: items(3) })).batch;
    const operation = (await ops.submitOperation({ tenantId: "a", type: "mail", payload: { to: "x" } }))
      .operation;
    const server = await dashboard(ops, () => ({ tenants: ["a"] }));
    const client = new DashboardClient(server.url);
    await client.open();

    const cancelled = await client.post(`api/batches/${batch.id}/cancel`);
    expect(cancelled.status).toBe(200);
    expect(cancelled.json().batch.status).toBe("cancelled");
    expect(await statusOf("operation_batches", batch.id)).toBe("cancelled");
    const again = await client.post(`api/batches/${batch.id}/cancel`);
    expect(again.status).toBe(409);
    expect(again.json()).toEqual({
      error: "batch_finished",
      message: `batch ${batch.id} is already cancelled`,
    });
    expect((await client.post(`api/batches/${batch.id}/retry`)).json().batch.status).toBe("processing");
    expect(await statusOf("operation_batches", batch.id)).toBe("processing");

    expect((await client.post(`api/operations/${operation.id}/cancel`)).json().state).toBe("cancelled");
    expect(await statusOf("operations", operation.id)).toBe("cancelled");
    expect((await client.post(`api/operations/${operation.id}/retry`)).json().operation.status).toBe(
      "pending",
    );
    const notRetryable = await client.post(`api/operations/${operation.id}/retry`);
    expect(notRetryable.status).toBe(409);
    expect(notRetryable.json().error).toBe("not_retryable");
    expect((await client.post(`api/operations/not-a-uuid/cancel`)).json().error).toBe("invalid_id");
    expect((await client.post(`api/operations/${operation.id}/explode`)).status).toBe(404);
  });

  it("redelivers the dead deliveries named", async () => {
    const ops = service();
    auditDown = true;
    await ops.submitBatch({ tenantId: "a", type: "work", items: items(1) });
    await ops.submitBatch({ tenantId: "a", type: "work", items: items(1) });
    auditDown = false;
    const server = await dashboard(ops, () => ({ tenants: "*" }));
    const client = new DashboardClient(server.url);
    await client.open();
    const dead = (await client.get("api/dead")).json().items;
    expect(dead).toHaveLength(2);
    const answer = await client.post("api/dead/redeliver", {
      deliveries: [{ eventId: dead[0].eventId, subscriber: "audit" }],
    });
    expect(answer.json()).toEqual({ redelivered: 1 });
    expect((await client.get("api/dead")).json().items.map((d: { eventId: string }) => d.eventId)).toEqual([
      dead[1].eventId,
    ]);
    expect((await client.post("api/dead/redeliver", { deliveries: [{ eventId: "x" }] })).status).toBe(400);
  });
});

describe("CSRF and read-only", () => {
  async function armed() {
    const ops = service();
    const batch = (await ops.submitBatch({ tenantId: "a", type: "work", items: items(2) })).batch;
    const server = await dashboard(ops, () => ({ tenants: "*" }));
    const client = new DashboardClient(server.url);
    await client.open();
    return { ops, batch, server, client };
  }

  it("refuses a state change without the token, with another cookie's token, from another origin, or not as JSON", async () => {
    const { batch, server, client } = await armed();
    const path = `api/batches/${batch.id}/cancel`;
    const refusals = [
      await client.post(path, {}, { "x-dashboard-csrf": "" }),
      await client.post(path, {}, { "x-dashboard-csrf": "forged" }),
      await client.post(path, {}, { origin: "http://evil.example" }),
      await client.post(path, {}, { origin: "null" }),
      // No Origin header, but the browser says the request is cross-site.
      await client.request(path, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-dashboard-csrf": client.token!,
          "sec-fetch-site": "cross-site",
        },
        body: "{}",
      }),
      await client.request(path, {
        method: "POST",
        headers: { "content-type": "text/plain", "x-dashboard-csrf": client.token!, origin: server.origin },
        body: "{}",
      }),
    ];
    // A token is only good with the cookie it was made for.
    const other = new DashboardClient(server.url);
    await other.open();
    refusals.push(await client.post(path, {}, { "x-dashboard-csrf": other.token! }));
    expect(refusals.map((answer) => [answer.status, answer.json().error])).toEqual([
      [403, "csrf"],
      [403, "csrf"],
      [403, "cross_origin"],
      [403, "cross_origin"],
      [403, "cross_origin"],
      [403, "csrf"],
      [403, "csrf"],
    ]);
    expect(await statusOf("operation_batches", batch.id)).toBe("pending");
    // GET never changes anything.
    expect((await client.get(path)).status).toBe(404);
    expect((await client.post(path)).status).toBe(200);
  });

  it("refuses a token of the right length in characters but not in bytes (non-ASCII), as any wrong token", async () => {
    const { batch, client } = await armed();
    // Node reads header bytes as Latin-1: "é" is one character here and two bytes in UTF-8.
    const forged = `é${client.token!.slice(1)}`;
    expect(forged).toHaveLength(client.token!.length);
    const answer = await client.post(`api/batches/${batch.id}/cancel`, {}, { "x-dashboard-csrf": forged });
    expect([answer.status, answer.json().error]).toEqual([403, "csrf"]);
    expect(await statusOf("operation_batches", batch.id)).toBe("pending");
  });

  it("refuses actions to a read-only operator, and to everyone on a read-only dashboard", async () => {
    const ops = service();
    const batch = (await ops.submitBatch({ tenantId: "a", type: "work", items: items(2) })).batch;
    const reader = await dashboard(ops, () => ({ tenants: "*", readOnly: true }));
    const client = new DashboardClient(reader.url);
    expect((await client.open()).readOnly).toBe(true);
    expect((await client.post(`api/batches/${batch.id}/cancel`)).json().error).toBe("read_only");
    const global = await dashboard(ops, () => ({ tenants: "*" }), { readOnly: true });
    const anyone = new DashboardClient(global.url);
    expect((await anyone.open()).readOnly).toBe(true);
    expect((await anyone.post(`api/batches/${batch.id}/cancel`)).status).toBe(403);
    expect(await statusOf("operation_batches", batch.id)).toBe("pending");
  });
});

describe("user data", () => {
  it("returns payloads and error messages as JSON data, and puts none of it in the page", async () => {
    const ops = service();
    const hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>';
    const operation = (
      await ops.submitOperation({ tenantId: "a", type: "work", payload: { n: 1, note: hostile } })
    ).operation;
    const server = await dashboard(ops, () => ({ tenants: "*" }));
    const client = new DashboardClient(server.url);
    const answer = await client.get(`api/operations/${operation.id}`);
    expect(answer.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect(answer.json().operation.payload.note).toBe(hostile);
    expect((await client.get("")).body).not.toContain("alert");
  });

  it("refuses malformed filters and cursors with a typed 400", async () => {
    const server = await dashboard(service(), () => ({ tenants: "*" }));
    const client = new DashboardClient(server.url);
    expect((await client.get("api/batches?status=exploded")).json().error).toBe("validation_failed");
    expect((await client.get("api/batches?cursor=zzz")).json().error).toBe("validation_failed");
    expect((await client.get("api/batches?limit=100000")).status).toBe(400);
    expect((await client.get("api/nothing")).status).toBe(404);
  });
});
