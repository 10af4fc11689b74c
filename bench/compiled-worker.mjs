// A worker process as an application runs it in production: compiled JavaScript (dist/, from
// `npm run build`), plain `node`, no tsx. Drains `total` operations of type "bench" already due,
// and prints one JSON line with its peak RSS. Started by compiled-rss.ts; not part of `npm run bench`.
//
//   node bench/compiled-worker.mjs <database url> <total> [pool|nopool]
/* global process, console, performance, setInterval, clearInterval -- Node.js globals */
import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { z } from "zod";
import operations from "../dist/src/index.js";
import generated from "../dist/src/generated/prisma/client.js";

const { Pool } = pg;
const { createOperations, defineOperationType, silentLogger } = operations;
const { PrismaClient } = generated;

const [url, totalText, mode = "pool"] = process.argv.slice(2);
const total = Number(totalText);
const types = { bench: defineOperationType({ payload: z.object({ n: z.number().int() }), maxAttempts: 3 }) };

async function main() {
  const pool = new Pool({ connectionString: url });
  const usePool = mode === "pool";
  const prisma = new PrismaClient({
    adapter: usePool ? new PrismaPg(pool) : new PrismaPg({ connectionString: url }),
  });
  let delivered = 0;
  const ops = createOperations({
    prisma,
    pool: usePool ? pool : undefined,
    types,
    logger: silentLogger,
    subscribers: [{ name: "bench", deliver: () => void delivered++ }],
  });
  let handled = 0;
  let done;
  const all = new Promise((resolve) => (done = resolve));
  const worker = ops.createWorker({
    handlers: { bench: () => void (++handled === total && done()) },
    concurrency: 16,
    listen: { connectionString: url },
  });
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 20);
  const started = performance.now();
  await worker.start();
  await all;
  await worker.stop();
  clearInterval(sampler);
  const seconds = (performance.now() - started) / 1000;
  console.log(
    JSON.stringify({
      mode,
      total,
      opsPerSec: Math.round(total / seconds),
      peakRssMb: Math.round(peak / 2 ** 20),
      delivered,
    }),
  );
  await prisma.$disconnect();
  await pool.end();
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
