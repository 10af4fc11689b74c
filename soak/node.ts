// One soak node: a worker (with its relay and reaper) in its own process, killed and restarted at
// random by the orchestrator. Every handler run and every event delivery is recorded in the soak
// database through a connection of its own, so the checks can count them whatever happens here.
import { PrismaPg } from "@prisma/adapter-pg";
import { Pool } from "pg";
import {
  createOperations,
  NonRetryableError,
  preparedStatementNames,
  silentLogger,
  type HandlerContext,
  type Payload,
} from "../src";
import { PrismaClient } from "../src/generated/prisma/client";
import {
  LEASE_MS,
  INLINE_LEASE_MS,
  OUTBOX_BACKOFF,
  soakSubscribers,
  soakTypes,
  type SoakTypes,
} from "./shared";

type SoakPayload = Payload<SoakTypes["soak.task"]>;

const url = process.env.SOAK_DATABASE_URL!;
const nodeId = process.env.SOAK_NODE_ID!;
const retentionSeconds = Number(process.env.SOAK_RETENTION_SECONDS ?? 0);

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    });
  });

async function main(): Promise<void> {
  // Node n1 runs as an app that gives the module no pool (every statement through Prisma, prepared
  // by the adapter); the others as the README's quick start does (the module's statements on the pool).
  const config = { connectionString: url, max: 6, application_name: `soak-node-${nodeId}` };
  const pool = nodeId === "n1" ? undefined : new Pool(config);
  pool?.on("error", () => undefined); // the orchestrator kills backends on purpose
  const prisma = new PrismaClient({
    adapter: pool
      ? new PrismaPg(pool)
      : new PrismaPg(config, { statementNameGenerator: preparedStatementNames() }),
  });
  const record = new Pool({ connectionString: url, max: 3, application_name: `soak-record-${nodeId}` });
  record.on("error", () => undefined); // the orchestrator kills backends on purpose
  const ops = createOperations({
    prisma,
    pool,
    types: soakTypes,
    logger: silentLogger,
    outbox: { backoff: OUTBOX_BACKOFF, inlineLeaseMs: INLINE_LEASE_MS },
    subscribers: soakSubscribers(record, nodeId),
    // With --retention-seconds, finished history is kept that long: the soak shows the tables stay bounded.
    retention:
      retentionSeconds > 0
        ? {
            completedDays: retentionSeconds / 86_400,
            failedDays: retentionSeconds / 86_400,
            deliveredEventHours: retentionSeconds / 3_600,
            deadEventDays: retentionSeconds / 86_400,
            intervalMs: 1_000,
          }
        : false,
  });
  const run = async (payload: SoakPayload, context: HandlerContext) => {
    await record.query(`INSERT INTO soak_runs (operation_id, node, attempt) VALUES ($1, $2, $3)`, [
      context.operationId,
      nodeId,
      context.attempt,
    ]);
    switch (payload.mode) {
      case "flaky":
        if (context.attempt === 1) throw new Error("flaky: first attempt fails");
        return { n: payload.n };
      case "broken":
        throw new Error("broken: always fails");
      case "fatal":
        throw new NonRetryableError("fatal: not worth retrying");
      case "slow":
        await sleep(payload.ms, context.signal);
        return { n: payload.n, slept: payload.ms };
      case "stuck":
        if (context.attempt === 1) await sleep(10_000, context.signal); // past the 1 s timeout
        return { n: payload.n };
      default:
        return { n: payload.n };
    }
  };
  const worker = ops.createWorker({
    id: `soak-${nodeId}-${process.pid}`,
    concurrency: 16,
    leaseMs: LEASE_MS,
    heartbeatIntervalMs: 500,
    pollIntervalMs: 200,
    shutdownTimeoutMs: 2_000,
    listen: { connectionString: url, application_name: `soak-listen-${nodeId}` },
    relay: { pollIntervalMs: 200, leaseMs: 5_000 },
    reaper: { intervalMs: 500, reconcileAfterMs: 5_000 },
    handlers: {
      "soak.task": run,
      "soak.limited": run,
    },
  });
  await worker.start();
  process.send?.({ ready: nodeId });
  process.on("SIGTERM", () => {
    void worker
      .stop()
      .then(() => prisma.$disconnect())
      .then(() => Promise.all([pool?.end(), record.end()]))
      .finally(() => process.exit(0));
  });
}

void main().catch((error) => {
  console.error(`soak node ${nodeId}:`, error);
  process.exit(1);
});
