// Events to the outside world: signed webhooks against a local HTTP server that fails on purpose,
// and BullMQ jobs on the Redis at 127.0.0.1:6379.
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Queue } from "bullmq";
import { createOperations, silentLogger } from "../../src";
import { bullmqSubscriber } from "../../src/outbox/transports/bullmq";
import {
  EVENT_ID_HEADER,
  SIGNATURE_HEADER,
  verifyWebhookSignature,
  webhookSubscriber,
} from "../../src/outbox/transports/webhook";
import { createTestDatabase, type TestDatabase } from "../support/db";
import { documents, truncateAll, types } from "../support/fixtures";

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.close());
beforeEach(() => truncateAll(db.pool));

const backdate = () =>
  db.pool.query(`UPDATE operation_deliveries SET available_at = now() - interval '1 second'`);

interface Received {
  body: string;
  signature: string | undefined;
  eventId: string | undefined;
}

/** A webhook receiver that answers `statuses` in turn (the last one thereafter). */
async function receiver(statuses: number[]): Promise<{ url: string; received: Received[]; server: Server }> {
  const received: Received[] = [];
  const server = createServer((request: IncomingMessage, response) => {
    let body = "";
    request.on("data", (chunk) => (body += chunk));
    request.on("end", () => {
      received.push({
        body,
        signature: request.headers[SIGNATURE_HEADER] as string | undefined,
        eventId: request.headers[EVENT_ID_HEADER] as string | undefined,
      });
      response.writeHead(statuses[Math.min(received.length - 1, statuses.length - 1)]!).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`, received, server };
}

describe("webhooks", () => {
  it("POSTs each event signed; failures are retried with backoff until the receiver accepts", async () => {
    const hook = await receiver([500, 503, 200]);
    const secret = "s3cret";
    const ops = createOperations({
      ...db.connection,
      types,
      logger: silentLogger,
      subscribers: [webhookSubscriber({ url: hook.url, secret, topics: ["batch.submitted"] })],
      outbox: { maxAttempts: 5, backoff: { baseMs: 60_000, maxMs: 60_000, jitter: 0 } },
    });
    const { batch, dispatch } = await ops.submitBatch({
      tenantId: "t",
      type: "documents.ingest",
      items: documents(2),
    });
    expect(dispatch).toMatchObject({
      status: "failed",
      failures: [{ error: expect.stringContaining("HTTP 500") }],
    });
    const relay = ops.createRelay();
    expect(await relay.runOnce()).toEqual({ claimed: 0, delivered: 0, failed: 0 }); // backing off
    await backdate();
    expect(await relay.runOnce()).toEqual({ claimed: 1, delivered: 0, failed: 1 });
    await backdate();
    expect(await relay.runOnce()).toEqual({ claimed: 1, delivered: 1, failed: 0 });

    expect(hook.received).toHaveLength(3);
    const ids = new Set(hook.received.map((r) => r.eventId));
    expect(ids.size).toBe(1); // the same event each time: the receiver de-duplicates on it
    for (const request of hook.received) {
      expect(verifyWebhookSignature(request.body, request.signature, secret)).toBe(true);
      expect(verifyWebhookSignature(request.body, request.signature, "wrong")).toBe(false);
      expect(
        verifyWebhookSignature(request.body.replace("documents", "d0cuments"), request.signature, secret),
      ).toBe(false);
    }
    expect(JSON.parse(hook.received[2]!.body)).toMatchObject({
      topic: "batch.submitted",
      tenantId: "t",
      aggregateId: batch.id,
      attempt: 3,
    });
    hook.server.close();
  });

  it("refuses a stale signature (replay) and marks an event dead when the receiver never accepts", async () => {
    const body = '{"id":"1"}';
    const hook = await receiver([500]);
    const ops = createOperations({
      ...db.connection,
      types,
      logger: silentLogger,
      subscribers: [webhookSubscriber({ url: hook.url, secret: "k" })],
      outbox: { maxAttempts: 2, backoff: { baseMs: 1, maxMs: 1, jitter: 0 } },
    });
    await ops.submitBatch({ tenantId: "t", type: "documents.ingest", items: documents(1) });
    await backdate();
    await ops.createRelay().runOnce();
    const { rows } = await db.pool.query(
      `SELECT attempts, dead_at IS NOT NULL AS dead, last_error FROM operation_deliveries`,
    );
    expect(rows).toEqual([{ attempts: 2, dead: true, last_error: "answered HTTP 500" }]);
    const signature = hook.received[0]!.signature!;
    const signedAt = Number(/t=(\d+)/.exec(signature)![1]);
    expect(verifyWebhookSignature(hook.received[0]!.body, signature, "k", 300, signedAt + 301)).toBe(false);
    expect(verifyWebhookSignature(body, "t=1,v1=zz", "k")).toBe(false);
    hook.server.close();
  });
});

describe("BullMQ on Redis", () => {
  it("adds each event as a job named after its topic, once per event id", async () => {
    const queueName = `po-test-${process.pid}-${Date.now()}`;
    const connection = { host: "127.0.0.1", port: 6379 };
    const subscriber = bullmqSubscriber({ connection, queueName });
    const ops = createOperations({
      ...db.connection,
      types,
      logger: silentLogger,
      subscribers: [subscriber],
    });
    const inspect = new Queue(queueName, { connection });
    try {
      const { batch } = await ops.submitBatch({
        tenantId: "t",
        type: "documents.ingest",
        items: documents(2),
      });
      const jobs = await inspect.getJobs(["waiting"]);
      expect(jobs.map((job) => [job.name, job.data.aggregateId])).toEqual([["batch.submitted", batch.id]]);
      // Delivered again (after a crash, say): still one job.
      await subscriber.deliver({
        ...jobs[0]!.data,
        createdAt: new Date(jobs[0]!.data.createdAt),
        attempt: 2,
      });
      expect(await inspect.getJobCounts("waiting")).toEqual({ waiting: 1 });
      expect(jobs[0]!.id).toBe(`event-${jobs[0]!.data.id}`);
    } finally {
      await inspect.obliterate({ force: true });
      await inspect.close();
      await subscriber.close();
    }
  });
});
