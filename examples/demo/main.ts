// `npm start`: the seed system's job end to end. Many documents are submitted as one batch, split
// into children by a token budget; workers index the children (some fail once and are retried);
// the batch completes and every outbox event is delivered. Runs on an embedded PostgreSQL (PGlite)
// when DATABASE_URL is unset, otherwise on that server.
//
//   npm start -- --documents 2000 --workers 4
//   npm start -- --dashboard      then keeps the operations dashboard open (see ./dashboard.ts)
import { parseArgs } from "node:util";
import { PrismaPg } from "@prisma/adapter-pg";
import { Client, Pool } from "pg";
import { z } from "zod";
import {
  applyMigrations,
  createOperations,
  defineOperationType,
  silentLogger,
  type BatchView,
  type OperationsPrismaClient,
  type Worker,
} from "../../src";
import { openEmbeddedDatabase } from "../../src/embedded";
import { PrismaClient } from "../../src/generated/prisma/client";
import { keepDashboardOpen } from "./dashboard";

const { values: args } = parseArgs({
  options: {
    documents: { type: "string", default: "2000" },
    workers: { type: "string", default: "4" },
    "token-budget": { type: "string", default: "8000" },
    dashboard: { type: "boolean", default: false },
  },
});
const documentCount = positiveInt(args.documents, "--documents");
const workerCount = positiveInt(args.workers, "--workers");
const tokenBudget = positiveInt(args["token-budget"], "--token-budget");

function positiveInt(value: string | undefined, name: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1) {
    console.error(`${name} must be a whole number >= 1, got ${JSON.stringify(value)}`);
    process.exit(2);
  }
  return parsed;
}

const Document = z.object({
  id: z.string(),
  title: z.string(),
  tokens: z.number().int().positive(),
  text: z.string(),
});

const types = {
  "documents.ingest": defineOperationType({
    payload: z.object({ documents: z.array(Document).min(1), chunk: z.number().int() }),
    batch: {
      item: Document,
      toPayload: (documents, child) => ({ documents, chunk: child.index }),
      weigh: (document) => document.tokens,
    },
    maxAttempts: 3,
    retryBackoff: { baseMs: 100, maxMs: 400, jitter: 0.5 },
  }),
};

/** Deterministic "random" documents: 150 to 1,500 tokens each. */
function makeDocuments(count: number): z.input<typeof Document>[] {
  return Array.from({ length: count }, (_, i) => {
    const tokens = 150 + ((i * 7919) % 1351);
    return {
      id: `doc-${i + 1}`,
      title: `Annual report ${i + 1}`,
      tokens,
      text: `…${tokens} tokens of text…`,
    };
  });
}

function describeUrl(url: string): string {
  const parsed = new URL(url);
  parsed.password = "";
  return parsed.toString();
}

async function openDatabase(): Promise<{
  prisma: OperationsPrismaClient;
  /** On a server, the pool the client is built on (the README's quick start); PGlite has none. */
  pool?: Pool;
  label: string;
  close(): Promise<void>;
}> {
  const url = process.env.DATABASE_URL;
  if (!url) {
    const embedded = await openEmbeddedDatabase();
    return { prisma: embedded.prisma, label: "embedded PGlite (in memory)", close: () => embedded.close() };
  }
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    await applyMigrations(client);
  } finally {
    await client.end();
  }
  const pool = new Pool({ connectionString: url });
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });
  return {
    prisma,
    pool,
    label: describeUrl(url),
    close: async () => {
      await prisma.$disconnect();
      await pool.end();
    },
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function progressLine(batch: BatchView, retried: number): string {
  const width = 30;
  const filled = Math.round(batch.progress.ratio * width);
  const bar = "#".repeat(filled) + "-".repeat(width - filled);
  const percent = String(Math.floor(batch.progress.ratio * 100)).padStart(3);
  const { done, total } = batch.progress;
  return `[${bar}] ${percent}%  ${done}/${total} children · ${batch.counts.processing} running · ${retried} retried`;
}

async function main(): Promise<void> {
  const started = Date.now();
  const tty = process.stdout.isTTY === true;
  const database = await openDatabase();
  const delivered = new Map<string, number>();
  const ops = createOperations({
    prisma: database.prisma,
    pool: database.pool,
    types,
    logger: silentLogger,
    subscribers: [
      {
        name: "demo-counter",
        deliver: (event) => void delivered.set(event.topic, (delivered.get(event.topic) ?? 0) + 1),
      },
    ],
  });

  let retried = 0;
  const failedOnce = new Set<number>();
  const workers: Worker[] = Array.from({ length: workerCount }, (_, i) =>
    ops.createWorker({
      id: `demo-worker-${i + 1}`,
      concurrency: 4,
      pollIntervalMs: 50,
      leaseMs: 10_000,
      listen: process.env.DATABASE_URL ? { connectionString: process.env.DATABASE_URL } : false,
      relay: { pollIntervalMs: 50 },
      reaper: { intervalMs: 1_000 },
      handlers: {
        "documents.ingest": async (payload, context) => {
          // Every ninth child's first attempt meets a busy embedding service: it fails and is retried.
          if (payload.chunk % 9 === 4 && !failedOnce.has(payload.chunk)) {
            failedOnce.add(payload.chunk);
            retried++;
            throw new Error("embedding service busy (503); will retry");
          }
          const tokens = payload.documents.reduce((sum, document) => sum + document.tokens, 0);
          await sleep(Math.round(tokens / 80)); // "indexing": ~100 ms per 8,000 tokens
          if (context.signal.aborted) throw context.signal.reason;
          return { indexed: payload.documents.length, tokens };
        },
      },
    }),
  );
  await Promise.all(workers.map((worker) => worker.start()));

  console.log("prisma-operations demo: a document-ingestion batch, end to end");
  console.log(`  database   ${database.label}`);
  const submitted = await ops.submitBatch({
    tenantId: "demo-bank",
    type: "documents.ingest",
    items: makeDocuments(documentCount),
    split: { maxWeight: tokenBudget },
    idempotencyKey: `demo-${started}`,
    metadata: { source: "npm start" },
  });
  console.log(
    `  submitted  ${documentCount} documents → batch ${submitted.batch.id} with ${submitted.operationIds.length} children ` +
      `(≤ ${tokenBudget} tokens each), in one transaction`,
  );
  console.log(`  workers    ${workerCount} × concurrency 4`);

  let batch: BatchView;
  let lastPrinted = -1;
  for (;;) {
    batch = await ops.getBatch("demo-bank", submitted.batch.id);
    const terminal = ["completed", "failed", "cancelled"].includes(batch.status);
    if (tty) process.stdout.write(`\r${progressLine(batch, retried)}`);
    else if (terminal || Math.floor(batch.progress.ratio * 10) > lastPrinted) {
      lastPrinted = Math.floor(batch.progress.ratio * 10);
      console.log(progressLine(batch, retried));
    }
    if (terminal) break;
    await sleep(100);
  }
  if (tty) process.stdout.write("\n");

  // The batch is final; let the relays deliver what its last transitions wrote.
  while ((await ops.queueStats()).totals.deliveryBacklog > 0) await sleep(50);
  const shutdown = async () => {
    await Promise.all(workers.map((worker) => worker.stop()));
    await database.close();
  };
  // With --dashboard the workers keep running (and the database open) while the dashboard is.
  if (!args.dashboard) await shutdown();

  const eventsDelivered = [...delivered.values()].reduce((sum, n) => sum + n, 0);
  const children = {
    completed: batch.counts.completed,
    failed: batch.counts.failed,
    cancelled: batch.counts.cancelled,
    pending: batch.counts.pending,
    processing: batch.counts.processing,
  };
  const elapsedMs = Date.now() - started;
  console.log("\nSummary");
  console.log(`  database         ${database.label}`);
  console.log(`  batch            ${batch.id}: ${batch.status}`);
  console.log(
    `  children         ${Object.entries(children)
      .map(([status, n]) => `${status} ${n}`)
      .join(" · ")}`,
  );
  console.log(`  retried          ${retried} attempts failed once and ran again`);
  console.log(
    `  events delivered ${eventsDelivered} (${[...delivered.entries()].map(([topic, n]) => `${topic} ${n}`).join(", ")})`,
  );
  console.log(`  elapsed          ${(elapsedMs / 1000).toFixed(1)} s`);
  const done = {
    database: process.env.DATABASE_URL ? "postgresql" : "embedded",
    batchId: batch.id,
    status: batch.status,
    children,
    retried,
    eventsDelivered,
    elapsedMs,
  };
  console.log(`DONE ${JSON.stringify(done)}`);
  process.exitCode = batch.status === "completed" ? 0 : 1;
  if (args.dashboard) await keepDashboardOpen(ops, shutdown);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
