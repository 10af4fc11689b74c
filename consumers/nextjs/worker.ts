// The worker, as its own long-running process next to `next start`:
//   DATABASE_URL=postgresql://… npm run worker
// Not in the Next.js server: route handlers may run on serverless functions, which are frozen between
// requests and killed at will, and scale with traffic rather than with the queue. A worker holds
// leases and a LISTEN connection, and must stop gracefully (SIGTERM) — a process of its own does.
import { setTimeout as sleep } from "node:timers/promises";
import { NonRetryableError } from "prisma-operations";
import { operations } from "./lib/operations";
import { pool, prisma } from "./lib/prisma";

// Documents whose text is "fail-once" fail the first time this process sees them and succeed when
// retried: the e2e tests use them for POST /api/operations/:id/retry and /api/batches/:id/retry.
const failedOnce = new Set<string>();

const worker = operations.createWorker({
  concurrency: 8,
  listen: { connectionString: process.env.DATABASE_URL },
  handlers: {
    "documents.ingest": async (payload, { signal }) => {
      signal.throwIfAborted();
      for (const document of payload.documents) {
        if (document.text === "fail-once" && !failedOnce.has(document.id)) {
          failedOnce.add(document.id);
          throw new NonRetryableError(`document ${document.id} failed (once, on purpose)`);
        }
      }
      return { indexed: payload.documents.length };
    },
    // Rejects as soon as the signal aborts (a cancel, a shutdown): the operation is cancellable.
    "timers.wait": async (payload, { signal }) => {
      await sleep(payload.ms, undefined, { signal });
      return { waitedMs: payload.ms };
    },
  },
});

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    // stop(): claims nothing more, hands back what has not started, lets running handlers finish
    void worker.stop().then(async () => {
      await prisma.$disconnect();
      await pool.end();
      console.log(`worker ${worker.id} stopped`);
    });
  });
}

void worker.start().then(() => console.log(`worker ${worker.id} started`));
