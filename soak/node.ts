// One soak node: a worker (with its relay and reaper) in its own process, killed and restarted at
// random, and partitioned from the database, by the orchestrator. Every handler run is reported to
// the orchestrator over IPC as it starts and stops; every event delivery is recorded in the soak
// database through a connection of its own. Both stand for the outside world, which a partition
// between this node and PostgreSQL does not cut: the module's own connections (SOAK_DATABASE_URL,
// through this node's proxy in the network process) are the ones cut.
import { randomUUID } from "node:crypto";
import { PrismaPg } from "@prisma/adapter-pg";
import { Pool } from "pg";
import {
  createOperations,
  NonRetryableError,
  preparedStatementNames,
  Snooze,
  type HandlerContext,
  type Logger,
  type Payload,
} from "../src";
import { PrismaClient } from "../src/generated/prisma/client";
import {
  clock,
  INLINE_LEASE_MS,
  LEASE_MS,
  OUTBOX_BACKOFF,
  soakSubscribers,
  soakTypes,
  type NodeMessage,
  type RunStop,
  type SoakTypes,
  watchStalls,
} from "./shared";

type SoakPayload = Payload<SoakTypes["soak.task"]>;

const url = process.env.SOAK_DATABASE_URL!;
const recordUrl = process.env.SOAK_RECORD_URL ?? url;
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

/** Resolves once the message is written to the IPC channel: the orchestrator gets it even if this process is killed next. */
const send = (message: NodeMessage) =>
  new Promise<void>((resolve, reject) =>
    process.send!(message, undefined, undefined, (error) => (error ? reject(error) : resolve())),
  );

/** The printable start of an error's message: what the checks look for in the stored error. */
const errorHead = (error: unknown) =>
  /^[\x20-\x7e]{0,40}/.exec(error instanceof Error ? error.message : String(error))![0];

/** What each mode does on one attempt (see MODES in shared.ts). */
async function behave(payload: SoakPayload, context: HandlerContext): Promise<unknown> {
  switch (payload.mode) {
    case "flaky":
      if (context.attempt === 1) throw new Error("flaky: first attempt fails");
      return { n: payload.n };
    case "broken":
      throw new Error("broken: always fails");
    case "fatal":
      throw new NonRetryableError("fatal: not worth retrying");
    case "slow":
    case "long":
      await sleep(payload.ms, context.signal);
      return { n: payload.n, slept: payload.ms };
    case "stuck":
      if (context.attempt === 1) await sleep(10_000, context.signal); // past the 1 s timeout
      return { n: payload.n };
    case "nulError":
      try {
        JSON.parse("\u0000"); // Node's SyntaxError quotes the NUL it met
      } catch (error) {
        (error as Error).message = `odd-nul: ${(error as Error).message}`;
        throw error;
      }
      return null;
    case "surrogateError": {
      const error = new NonRetryableError("odd-surrogate: a lone \ud800 half of a pair");
      error.name = "Surrogate\udc00Error";
      throw error;
    }
    case "hugeError":
      throw new Error(`odd-huge: ${"x".repeat(1 << 20)}`);
    case "nulResult":
      return { n: payload.n, text: "odd\u0000nul" };
    case "surrogateResult":
      return { n: payload.n, text: "odd \udc00 surrogate" };
    case "deepResult": {
      let deep: unknown = { n: payload.n };
      for (let level = 0; level < 1_000; level++) deep = { deep };
      return deep;
    }
    case "largeResult":
      return { n: payload.n, text: "y".repeat(payload.ms) };
    default:
      return { n: payload.n };
  }
}

/** The module's warnings and errors, to the orchestrator: what a lost outcome's reason may be found in. */
const forward =
  (level: "warn" | "error") =>
  (message: string, context?: Record<string, unknown>): void => {
    const detail = typeof context?.error === "string" ? context.error.slice(0, 200) : null;
    void send({ kind: "log", level, message, detail, at: clock() }).catch(() => undefined);
  };
const logger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: forward("warn"),
  error: forward("error"),
};

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
  const record = new Pool({ connectionString: recordUrl, max: 3, application_name: `soak-record-${nodeId}` });
  record.on("error", () => undefined); // the orchestrator kills backends on purpose
  const ops = createOperations({
    prisma,
    pool,
    types: soakTypes,
    logger,
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
  // Each run is reported as it starts (before the work: a run the orchestrator does not know of did
  // nothing) and as it stops; a process killed in between stops its runs when it dies.
  const run = async (payload: SoakPayload, context: HandlerContext) => {
    const runId = randomUUID();
    const at = clock();
    await send({
      kind: "start",
      run: {
        runId,
        operationId: context.operationId,
        batchId: context.batchId,
        node: nodeId,
        pid: process.pid,
        attempt: context.attempt,
        mode: payload.mode,
        at,
      },
    });
    let stop: Omit<RunStop, "runId" | "at" | "abortedBy"> = { outcome: "threw", errorHead: null };
    try {
      const result = await behave(payload, context);
      stop = { outcome: context.signal.aborted ? "aborted" : "returned", errorHead: null };
      return result;
    } catch (error) {
      const outcome = error instanceof Snooze ? "snoozed" : context.signal.aborted ? "aborted" : "threw";
      stop = { outcome, errorHead: errorHead(error) };
      throw error;
    } finally {
      const at = clock();
      const abortedBy = context.signal.aborted ? ((context.signal.reason as Error)?.name ?? null) : null;
      void send({ kind: "stop", stop: { runId, at, abortedBy, ...stop } }).catch(() => undefined);
    }
  };
  // The module's defaults for everything that decides how soon a cancel reaches a claimed row
  // (whether it LISTENs, the heartbeat, polling, prefetch): the soak's count of handlers started
  // after a cancel returned is then what users get. Concurrency as the README's quick start; a
  // short lease, so that a killed or partitioned node's rows come back within seconds.
  const worker = ops.createWorker({
    id: `soak-${nodeId}-${process.pid}`,
    concurrency: 16,
    leaseMs: LEASE_MS,
    shutdownTimeoutMs: 2_000,
    relay: { pollIntervalMs: 200, leaseMs: 5_000 },
    reaper: { intervalMs: 500, reconcileAfterMs: 5_000 },
    handlers: {
      "soak.task": run,
      "soak.limited": run,
      "soak.long": run,
    },
  });
  await worker.start();
  watchStalls((began, ended) => void send({ kind: "stall", began, ended }).catch(() => undefined));
  await send({ kind: "ready", node: nodeId });
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
