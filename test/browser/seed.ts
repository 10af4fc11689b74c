// A history that looks like a working system, for the browser tests and the screenshots: batches
// in every state, a batch in flight whose children wait for different reasons (running, backing
// off, due with nobody to take them), workers in the registry, an hour of throughput, dead
// deliveries and a hostile payload. Built through the service and the store's own statements;
// only times are moved by hand.
import type { Pool } from "pg";
import { z } from "zod";
import { createOperations, defineOperationType, silentLogger } from "../../src";
import type { PrismaClient } from "../../src/generated/prisma/client";
import { finish, storeOf } from "../support/store";

export const types = {
  "documents.ingest": defineOperationType({
    payload: z.object({
      documents: z.array(z.object({ id: z.string(), tokens: z.number() })),
      chunk: z.number(),
    }),
    maxAttempts: 5,
  }),
  "email.send": defineOperationType({
    payload: z.object({ to: z.string(), subject: z.string() }),
    maxAttempts: 3,
  }),
  "invoices.render": defineOperationType({
    payload: z.object({ invoice: z.string(), note: z.string().optional() }),
    maxAttempts: 3,
  }),
};

export type SeedTypes = typeof types;

export function seedService(prisma: PrismaClient) {
  return createOperations({
    prisma,
    types,
    logger: silentLogger,
    subscribers: [
      { name: "audit-log", deliver: () => undefined },
      {
        name: "billing-webhook",
        topics: ["batch.completed", "batch.failed"],
        // Down: every delivery to it fails, and leaves a delivery row (the seed then makes them dead).
        deliver: () => {
          throw new Error("POST https://billing.internal/hooks: 502 Bad Gateway");
        },
      },
    ],
  });
}

export type SeedService = ReturnType<typeof seedService>;

export const HOSTILE = '<script>window.__pwned = 1</script><img src="x" onerror="window.__pwned = 2">';

export interface Seeded {
  /** documents.ingest for acme-bank, in flight: its children wait for every kind of reason. */
  inFlight: string;
  /** Children of `inFlight` by what they wait for. */
  children: { running: string[]; backingOff: string[]; due: string[]; completed: string[]; failed: string[] };
  completed: string;
  failed: string;
  cancelled: string;
  /** invoices.render for globex, due for 3 minutes with no worker for its type. */
  stuck: string;
  /** A standalone operation whose payload and error are hostile HTML. */
  hostile: string;
  /** A standalone operation scheduled for tomorrow. */
  scheduled: string;
}

const documents = (count: number, chunk: number) =>
  Array.from({ length: count }, (_, i) => ({ id: `doc-${chunk}-${i}`, tokens: 400 + ((i * 97) % 700) }));

async function childIds(pool: Pool, batchId: string): Promise<string[]> {
  const { rows } = await pool.query(`SELECT id::text FROM operations WHERE batch_id = $1 ORDER BY id`, [
    batchId,
  ]);
  return rows.map((row) => row.id);
}

export async function seed(ops: SeedService, prisma: PrismaClient, pool: Pool): Promise<Seeded> {
  const store = storeOf(prisma);
  const items = (count: number) =>
    Array.from({ length: count }, (_, i) => ({ documents: documents(3, i), chunk: i }));

  // Finished batches, earlier in the hour.
  const completed = (
    await ops.submitBatch({
      tenantId: "globex",
      type: "email.send",
      items: Array.from({ length: 24 }, (_, i) => ({
        to: `user${i}@globex.example`,
        subject: "Your statement",
      })),
      idempotencyKey: "statements-2026-11",
    })
  ).batch.id;
  const completedChildren = await store.claimById(await childIds(pool, completed), "mailer-1", 60_000);
  for (const row of completedChildren) await finish(prisma, row, { to: "completed", result: { sent: true } });

  const failed = (
    await ops.submitBatch({
      tenantId: "acme-bank",
      type: "invoices.render",
      items: Array.from({ length: 6 }, (_, i) => ({ invoice: `INV-${1040 + i}` })),
    })
  ).batch.id;
  const failedChildren = await store.claimById(await childIds(pool, failed), "renderer-1", 60_000);
  for (const [i, row] of failedChildren.entries()) {
    await finish(
      prisma,
      row,
      i < 4
        ? { to: "completed", result: { pages: 2 } }
        : {
            to: "failed",
            error: { name: "TemplateError", message: "missing field 'vat_id'", retryable: false, attempt: 1 },
          },
    );
  }

  const cancelled = (await ops.submitBatch({ tenantId: "globex", type: "documents.ingest", items: items(5) }))
    .batch.id;
  await ops.cancelBatch("globex", cancelled);

  // The batch in flight: 30 children.
  const inFlight = (
    await ops.submitBatch({
      tenantId: "acme-bank",
      type: "documents.ingest",
      items: items(30),
      metadata: { upload: "annual-reports-2026.zip", requestedBy: "ops@acme-bank.example" },
    })
  ).batch.id;
  const ids = await childIds(pool, inFlight);
  const claimed = await store.claimById(ids.slice(0, 24), "ingest-worker-1", 60_000);
  const done = claimed.slice(0, 18);
  for (const row of done) await finish(prisma, row, { to: "completed", result: { indexed: 3 } });
  const failedRows = claimed.slice(18, 19);
  for (const row of failedRows) {
    await finish(prisma, row, {
      to: "failed",
      error: {
        name: "NonRetryableError",
        message: "document doc-18-2 is encrypted",
        retryable: false,
        attempt: 1,
      },
    });
  }
  const backingOff = claimed.slice(19, 21);
  for (const [i, row] of backingOff.entries()) {
    await finish(prisma, row, {
      to: "pending",
      error: { name: "Error", message: "embedding service busy (503)", retryable: true, attempt: 1 },
      delayMs: (90 + i * 60) * 1000,
      refundAttempt: false,
    });
  }
  const running = claimed.slice(21, 24); // still held by ingest-worker-1
  const due = ids.slice(24);

  // A type nobody works on: due for three minutes.
  const stuck = (
    await ops.submitBatch({
      tenantId: "globex",
      type: "invoices.render",
      items: Array.from({ length: 4 }, (_, i) => ({ invoice: `GX-${220 + i}` })),
    })
  ).batch.id;
  await pool.query(
    `UPDATE operations SET run_at = now() - interval '3 minutes', created_at = now() - interval '3 minutes'
     WHERE batch_id = $1`,
    [stuck],
  );
  await pool.query(
    `UPDATE operations SET run_at = now() - interval '20 seconds' WHERE id = ANY($1::uuid[])`,
    [due],
  );

  // Standalone operations: one with hostile HTML in its payload and error, one for tomorrow.
  const hostile = (
    await ops.submitOperation({
      tenantId: "acme-bank",
      type: "invoices.render",
      payload: { invoice: "INV-9", note: HOSTILE },
    })
  ).operation.id;
  const [hostileRow] = await store.claimById([hostile], "renderer-1", 60_000);
  await finish(prisma, hostileRow!, {
    to: "failed",
    error: { name: "RenderError", message: `could not render ${HOSTILE}`, retryable: false, attempt: 1 },
  });
  const scheduled = (
    await ops.submitOperation({
      tenantId: "globex",
      type: "email.send",
      payload: { to: "cfo@globex.example", subject: "Quarter close" },
      runAt: new Date(Date.now() + 86_400_000),
    })
  ).operation.id;

  // The workers' registry, as their heartbeats would have left it.
  await pool.query(`
    INSERT INTO operation_workers (id, hostname, pid, types, concurrency, heartbeat_ms, started_at, seen_at, stopped_at)
    VALUES ('ingest-worker-1', 'ip-10-0-3-17', 4121, '{documents.ingest}', 4, 10000, now() - interval '2 hours', now() - interval '3 seconds', NULL),
           ('mailer-1', 'ip-10-0-3-18', 977, '{email.send}', 8, 10000, now() - interval '5 hours', now() - interval '6 seconds', NULL),
           ('ingest-worker-0', 'ip-10-0-3-16', 3880, '{documents.ingest}', 4, 10000, now() - interval '9 hours', now() - interval '40 minutes', now() - interval '40 minutes')`);

  // Spread what finished over the last hour (for the throughput chart), moving each finished
  // operation's whole history — written, claimed, finished, its events — back together.
  await pool.query(`
    WITH moved AS (
      SELECT id, make_interval(secs => 60 + (abs(hashtext(id::text)) % 3300)) AS back FROM operations
      WHERE finished_at IS NOT NULL
    ), ops AS (
      UPDATE operations o SET finished_at = o.finished_at - m.back, updated_at = o.finished_at - m.back,
             started_at = o.started_at - m.back - interval '40 seconds', created_at = o.created_at - m.back - interval '90 seconds'
      FROM moved m WHERE o.id = m.id
    )
    UPDATE operation_outbox e SET created_at = e.created_at - m.back - CASE WHEN e.topic = 'operation.submitted'
      THEN interval '90 seconds' ELSE interval '0 seconds' END
    FROM moved m WHERE e.aggregate_id = m.id`);
  await pool.query(`UPDATE operations SET run_at = created_at WHERE finished_at IS NOT NULL`);
  await pool.query(`
    UPDATE operation_batches b
    SET created_at = c.created_at, started_at = c.started_at,
        finished_at = CASE WHEN b.finished_at IS NULL THEN NULL ELSE c.finished_at END
    FROM (SELECT batch_id, min(created_at) AS created_at, min(started_at) AS started_at, max(finished_at) AS finished_at
          FROM operations GROUP BY batch_id) c
    WHERE c.batch_id = b.id`);
  await pool.query(
    `UPDATE operations o SET created_at = b.created_at FROM operation_batches b WHERE o.batch_id = b.id`,
  );
  await pool.query(`
    UPDATE operation_outbox e
    SET created_at = CASE WHEN e.topic = 'batch.submitted' THEN b.created_at ELSE COALESCE(b.finished_at, e.created_at) END
    FROM operation_batches b
    WHERE e.aggregate_id = b.id AND e.topic <> 'batch.retried'`);

  // Deliveries: the billing webhook is down — its deliveries died; the audit log took everything.
  await pool.query(
    `UPDATE operation_deliveries SET delivered_at = now() WHERE delivered_at IS NULL AND dead_at IS NULL`,
  );
  await pool.query(`
    UPDATE operation_deliveries SET delivered_at = NULL, dead_at = now() - interval '12 minutes', attempts = 12,
           last_error = 'POST https://billing.internal/hooks: 502 Bad Gateway'
    WHERE subscriber = 'billing-webhook'`);

  return {
    inFlight,
    children: {
      running: running.map((row) => row.id),
      backingOff: backingOff.map((row) => row.id),
      due,
      completed: done.map((row) => row.id),
      failed: failedRows.map((row) => row.id),
    },
    completed,
    failed,
    cancelled,
    stuck,
    hostile,
    scheduled,
  };
}
