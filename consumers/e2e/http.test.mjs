// End-to-end tests of a consumer app over HTTP, against its real PostgreSQL: no mocks.
// Run by ../run.mjs from inside the installed app (so that `pg` resolves from the app's node_modules):
//   BASE_URL=http://127.0.0.1:3000/api DATABASE_URL=postgresql://… node --test e2e.test.mjs
// The same file tests the NestJS app (routes at /) and the Next.js app (routes at /api).
/* global process, fetch, setTimeout -- Node.js globals */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import pg from "pg";

const BASE_URL = process.env.BASE_URL ?? "http://127.0.0.1:3000";
const DEADLINE_MS = Number(process.env.E2E_DEADLINE_MS ?? 30_000);
const run = randomUUID().slice(0, 8); // every tenant and document id is unique to this run
const tenant = `tenant-${run}`;
const otherTenant = `other-${run}`;

let db;
before(async () => {
  db = new pg.Client({ connectionString: process.env.DATABASE_URL });
  await db.connect();
});
after(() => db?.end());

async function api(method, path, { tenantId = tenant, body } = {}) {
  const headers = { accept: "application/json" };
  if (tenantId) headers["x-tenant-id"] = tenantId;
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(`${BASE_URL}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, json, text };
}

function expectStatus(response, status, what) {
  assert.equal(
    response.status,
    status,
    `${what}: expected HTTP ${status}, got ${response.status}: ${response.text.slice(0, 500)}`,
  );
}

/** Polls `read` until `done(value)`; on timeout fails with the last value seen. */
async function pollUntil(what, read, done, deadlineMs = DEADLINE_MS) {
  const deadline = Date.now() + deadlineMs;
  let last;
  for (;;) {
    last = await read();
    if (done(last)) return last;
    if (Date.now() > deadline) {
      assert.fail(`${what}: not reached within ${deadlineMs} ms; last state seen: ${JSON.stringify(last)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const readBatch =
  (id, tenantId = tenant) =>
  async () => {
    const response = await api("GET", `/batches/${id}`, { tenantId });
    expectStatus(response, 200, `GET /batches/${id}`);
    return response.json;
  };
const readOperation = (id) => async () => {
  const response = await api("GET", `/operations/${id}`);
  expectStatus(response, 200, `GET /operations/${id}`);
  return response.json;
};
const batchIs =
  (...statuses) =>
  (batch) =>
    statuses.includes(batch.status);
const doc = (name, tokens = 1500, text = "some text") => ({ id: `${name}-${run}`, tokens, text });

describe("consumer app over HTTP", () => {
  let completed; // a batch that completed, reused by the 404 and 409 tests

  test("a submitted batch reaches completed", async () => {
    const submitted = await api("POST", "/batches", {
      body: { type: "documents.ingest", items: [1, 2, 3, 4, 5].map((n) => doc(`d${n}`)) },
    });
    expectStatus(submitted, 201, "POST /batches");
    assert.equal(submitted.json.created, true);
    // 5 documents of 1,500 tokens, children of at most 4,000 tokens: 2 + 2 + 1
    assert.equal(submitted.json.operationIds.length, 3);
    assert.equal(submitted.json.batch.counts.total, 3);
    const batch = await pollUntil(
      "batch completed",
      readBatch(submitted.json.batch.id),
      batchIs("completed", "failed", "cancelled"),
    );
    assert.equal(batch.status, "completed", JSON.stringify(batch));
    assert.equal(batch.counts.completed, 3);
    assert.deepEqual(
      batch.children.items.map((item) => item.status),
      ["completed", "completed", "completed"],
    );
    completed = { batchId: batch.id, operationId: submitted.json.operationIds[0] };
  });

  test("POST /uploads commits the upload and its batch in one transaction", async () => {
    const response = await api("POST", "/uploads", {
      body: { name: `report-${run}.pdf`, documents: [doc("u1"), doc("u2")] },
    });
    expectStatus(response, 201, "POST /uploads");
    const { upload, batch } = response.json;
    assert.equal(upload.state, "queued");
    assert.equal(upload.batchId, batch.id);
    const uploads = await db.query("SELECT tenant_id, state, batch_id FROM uploads WHERE id = $1", [
      upload.id,
    ]);
    assert.deepEqual(uploads.rows, [{ tenant_id: tenant, state: "queued", batch_id: batch.id }]);
    const batches = await db.query("SELECT child_count FROM operation_batches WHERE id = $1", [batch.id]);
    assert.equal(batches.rowCount, 1, "the batch committed with the upload");
    await pollUntil("upload's batch completed", readBatch(batch.id), batchIs("completed"));
  });

  test("POST /uploads?fail=1 rolls back the upload and the batch", async () => {
    const failing = `failing-${run}`;
    const response = await api("POST", "/uploads?fail=1", {
      tenantId: failing,
      body: { name: `broken-${run}.pdf`, documents: [doc("f1")] },
    });
    expectStatus(response, 500, "POST /uploads?fail=1");
    for (const table of ["uploads", "operation_batches", "operations", "operation_outbox"]) {
      const { rows } = await db.query(`SELECT count(*)::int AS n FROM ${table} WHERE tenant_id = $1`, [
        failing,
      ]);
      assert.equal(rows[0].n, 0, `${table} has rows of the rolled-back transaction`);
    }
  });

  test("cancelling a running batch ends it cancelled", async () => {
    const submitted = await api("POST", "/batches", {
      body: { type: "timers.wait", items: [{ ms: 120_000 }, { ms: 120_000 }, { ms: 120_000 }] },
    });
    expectStatus(submitted, 201, "POST /batches (timers.wait)");
    const id = submitted.json.batch.id;
    await pollUntil("batch processing", readBatch(id), (batch) => batch.counts.processing > 0);
    const cancelled = await api("DELETE", `/batches/${id}`);
    expectStatus(cancelled, 200, `DELETE /batches/${id}`);
    const batch = await pollUntil(
      "batch cancelled",
      readBatch(id),
      batchIs("completed", "failed", "cancelled"),
    );
    assert.equal(batch.status, "cancelled", JSON.stringify(batch));
    assert.equal(batch.counts.cancelled, 3);
  });

  test("cancelling a running operation ends it cancelled", async () => {
    const submitted = await api("POST", "/batches", {
      body: { type: "timers.wait", items: [{ ms: 120_000 }] },
    });
    expectStatus(submitted, 201, "POST /batches (timers.wait)");
    const [operationId] = submitted.json.operationIds;
    const cancel = await api("DELETE", `/operations/${operationId}`);
    expectStatus(cancel, 200, `DELETE /operations/${operationId}`);
    assert.ok(["cancelled", "cancel_requested"].includes(cancel.json.state), cancel.text);
    const operation = await pollUntil(
      "operation cancelled",
      readOperation(operationId),
      (op) => op.status === "cancelled",
    );
    assert.equal(operation.status, "cancelled");
    await pollUntil("its batch cancelled", readBatch(submitted.json.batch.id), batchIs("cancelled"));
  });

  test("a failed operation, retried, runs again and completes", async () => {
    const submitted = await api("POST", "/batches", {
      body: { type: "documents.ingest", items: [doc("once-op", 10, "fail-once")] },
    });
    expectStatus(submitted, 201, "POST /batches (fail-once)");
    const [operationId] = submitted.json.operationIds;
    await pollUntil("batch failed", readBatch(submitted.json.batch.id), batchIs("failed"));
    const failed = await readOperation(operationId)();
    assert.equal(failed.status, "failed");
    const retried = await api("POST", `/operations/${operationId}/retry`);
    expectStatus(retried, 200, `POST /operations/${operationId}/retry`);
    const operation = await pollUntil("operation completed", readOperation(operationId), (op) =>
      ["completed", "failed"].includes(op.status),
    );
    assert.equal(operation.status, "completed", JSON.stringify(operation));
    await pollUntil("its batch completed", readBatch(submitted.json.batch.id), batchIs("completed"));
  });

  test("a failed batch, retried, runs its failed children again and completes", async () => {
    const submitted = await api("POST", "/batches", {
      body: { type: "documents.ingest", items: [doc("ok", 3000), doc("once-batch", 3000, "fail-once")] },
    });
    expectStatus(submitted, 201, "POST /batches (one child fails once)");
    const id = submitted.json.batch.id;
    const failed = await pollUntil(
      "batch failed",
      readBatch(id),
      batchIs("completed", "failed", "cancelled"),
    );
    assert.equal(failed.status, "failed", JSON.stringify(failed));
    assert.deepEqual([failed.counts.completed, failed.counts.failed], [1, 1]);
    const retried = await api("POST", `/batches/${id}/retry`);
    expectStatus(retried, 200, `POST /batches/${id}/retry`);
    const batch = await pollUntil("batch completed", readBatch(id), batchIs("completed"));
    assert.equal(batch.counts.completed, 2);
  });

  test("an invalid body is a 400 whose issues carry the path", async () => {
    const response = await api("POST", "/batches", {
      body: { type: "documents.ingest", items: [{ id: "x", tokens: "many", text: "" }] },
    });
    expectStatus(response, 400, "POST /batches with a bad item");
    assert.ok(Array.isArray(response.json.issues), response.text);
    assert.ok(
      response.json.issues.some(
        (issue) => JSON.stringify(issue.path) === JSON.stringify(["items", 0, "tokens"]),
      ),
      `no issue at ["items",0,"tokens"]: ${response.text}`,
    );
    const unknown = await api("POST", "/batches", { body: { type: "no.such.type", items: [{}] } });
    expectStatus(unknown, 400, "POST /batches with an unknown type");
  });

  test("a request without a tenant is a 400", async () => {
    expectStatus(
      await api("GET", `/batches/${randomUUID()}`, { tenantId: null }),
      400,
      "GET without x-tenant-id",
    );
  });

  test("another tenant's ids are 404", async () => {
    assert.ok(completed, "needs the completed batch of the first test");
    const as = { tenantId: otherTenant };
    expectStatus(await api("GET", `/batches/${completed.batchId}`, as), 404, "GET another tenant's batch");
    expectStatus(
      await api("DELETE", `/batches/${completed.batchId}`, as),
      404,
      "DELETE another tenant's batch",
    );
    expectStatus(
      await api("POST", `/batches/${completed.batchId}/retry`, as),
      404,
      "retry another tenant's batch",
    );
    expectStatus(
      await api("GET", `/operations/${completed.operationId}`, as),
      404,
      "GET another tenant's operation",
    );
    expectStatus(
      await api("DELETE", `/operations/${completed.operationId}`, as),
      404,
      "DELETE another tenant's operation",
    );
    expectStatus(
      await api("POST", `/operations/${completed.operationId}/retry`, as),
      404,
      "retry another tenant's operation",
    );
  });

  test("cancelling or retrying what has finished is a 409", async () => {
    assert.ok(completed, "needs the completed batch of the first test");
    expectStatus(await api("DELETE", `/batches/${completed.batchId}`), 409, "cancel a completed batch");
    expectStatus(
      await api("DELETE", `/operations/${completed.operationId}`),
      409,
      "cancel a completed operation",
    );
    expectStatus(
      await api("POST", `/batches/${completed.batchId}/retry`),
      409,
      "retry a batch with nothing to retry",
    );
    expectStatus(
      await api("POST", `/operations/${completed.operationId}/retry`),
      409,
      "retry a completed operation",
    );
  });

  test("GET /metrics is Prometheus text", async () => {
    const response = await api("GET", "/metrics", { tenantId: null });
    expectStatus(response, 200, "GET /metrics");
    assert.match(response.headers.get("content-type") ?? "", /^text\/plain/);
    assert.match(response.text, /prisma_operations_claimable/);
  });
});
