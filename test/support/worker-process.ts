// A worker in its own process, for the multi-process and crash tests. Configured by environment:
//   WORKER_DATABASE_URL  the test database
//   WORKER_ID            its id (locked_by)
//   WORKER_CONCURRENCY   handlers at once (default 8)
//   WORKER_LEASE_MS      lease (default 30000)
//   WORKER_HANG_ON       an item number whose handler never returns (to be SIGKILLed mid-handler)
// Every handler run is recorded in handler_runs (operation_id, worker_id, attempt) through its own
// connection, so the test can count runs whatever happens to this process.
import { PrismaPg } from "@prisma/adapter-pg";
import { Pool } from "pg";
import { createOperations, silentLogger } from "../../src";
import { PrismaClient } from "../../src/generated/prisma/client";
import { processTypes } from "./process-types";

const url = process.env.WORKER_DATABASE_URL!;
const workerId = process.env.WORKER_ID!;
const hangOn = process.env.WORKER_HANG_ON === undefined ? undefined : Number(process.env.WORKER_HANG_ON);

async function main() {
  const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: url, max: 6 }) });
  const runs = new Pool({ connectionString: url, max: 2 });
  const ops = createOperations({ prisma, types: processTypes, logger: silentLogger });
  const worker = ops.createWorker({
    id: workerId,
    concurrency: Number(process.env.WORKER_CONCURRENCY ?? 8),
    leaseMs: Number(process.env.WORKER_LEASE_MS ?? 30_000),
    pollIntervalMs: 50,
    listen: { connectionString: url },
    relay: { pollIntervalMs: 50 },
    reaper: { intervalMs: 100, reconcileAfterMs: 60_000 },
    handlers: {
      work: async (payload, context) => {
        await runs.query(`INSERT INTO handler_runs (operation_id, worker_id, attempt) VALUES ($1, $2, $3)`, [
          context.operationId,
          workerId,
          context.attempt,
        ]);
        if (payload.n === hangOn) {
          process.send?.({ hanging: context.operationId });
          await new Promise(() => undefined);
        }
        return { n: payload.n };
      },
      limited: async (payload) => {
        await new Promise((resolve) => setTimeout(resolve, 30));
        return { n: payload.n };
      },
    },
  });
  await worker.start();
  process.send?.({ ready: workerId });
  process.on("SIGTERM", () => {
    void worker
      .stop()
      .then(() => Promise.all([prisma.$disconnect(), runs.end()]))
      .then(() => process.exit(0));
  });
}

void main().catch((error) => {
  console.error(error);
  process.exit(1);
});
