// `npm run soak -- --seconds N`: tries to break the guarantees for N seconds, then checks them.
//
// On a database of its own (created on DATABASE_URL's server, dropped afterwards) it runs worker
// nodes in separate processes and, from this process, N API clients racing each other: batch
// submits (1 to 300 children, some with reused idempotency keys), standalone operations (some
// running for seconds), submits rolled back on purpose, cancels and retries aimed at the same few
// recent batches and operations, and the outbox's operator actions (removing, registering and
// replaying to a subscriber, redelivering dead deliveries) — while SIGKILLing random nodes (and
// restarting them), terminating random backends (the clients' own included) and partitioning the
// node running long handlers from the database (every node reaches PostgreSQL through a TCP proxy
// of its own, soak/proxy.ts, in a network process, soak/network.ts; the soak cuts one for longer
// than the lease). Handlers succeed, fail retryably or not, time out or run long, throw errors and
// return results PostgreSQL cannot store as they are; a fast subscriber hiccups, a slow one takes
// seconds per delivery, a flaky one lets deliveries die. Every error a client sees must be typed
// (conflict, not found, or the database being unavailable); any other is a violation. Every
// handler run is reported by its node as it starts and stops. Then the chaos stops, the system
// settles, and every invariant is checked against the database, the recorded deliveries and runs.
// Last line: `SOAK {json}`; exit code 1 on any violation.
import { fork, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { PrismaPg } from "@prisma/adapter-pg";
import { Client, Pool } from "pg";
import {
  applyMigrations,
  ConflictError,
  createOperations,
  DatabaseUnavailableError,
  NotFoundError,
  silentLogger,
  type OutboxRelay,
} from "../src";
import { PrismaClient } from "../src/generated/prisma/client";
import { checkInvariants, measureRuns } from "./invariants";
import type { CutKind } from "./proxy";
import {
  clock,
  FLAKY,
  INLINE_LEASE_MS,
  LEASE_MS,
  LIMITS,
  OCCASIONAL,
  OPERATOR_OUTBOX,
  operatorSubscribers,
  OUTBOX_BACKOFF,
  SOAK_TABLES,
  soakSubscribers,
  soakTypes,
  type Mode,
  type NetworkReply,
  type NetworkRequest,
  type NodeMessage,
  type RunStart,
  type RunStop,
} from "./shared";

const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: "60" },
    nodes: { type: "string", default: "3" },
    clients: { type: "string", default: "8" },
    "retention-seconds": { type: "string", default: "0" },
    seed: { type: "string", default: "20261127" },
    keep: { type: "boolean", default: false },
  },
});
const seconds = Number(args.seconds);
const nodeCount = Number(args.nodes);
const clientCount = Number(args.clients);
const retentionSeconds = Number(args["retention-seconds"]);
if (!(seconds > 0) || !(nodeCount > 0) || !(clientCount > 0)) {
  console.error("--seconds, --nodes and --clients must be positive numbers");
  process.exit(2);
}
/** After the chaos, how long the work left may stay the same size before the soak gives up settling. */
const SETTLE_STALL_MS = 60_000;
/** The chaos ends with soak-occasional removed this long before its end, while the clients still write. */
const FINAL_REMOVAL_MS = 2_000;
const serverUrl = process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres";

/** A small seeded generator (mulberry32): the same seed gives the same sequence of actions. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = rng(Number(args.seed));
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function databaseUrl(name: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

const counts = {
  actions: {
    submitBatch: 0,
    submitBatchReusedKey: 0,
    submitOperation: 0,
    rolledBackSubmit: 0,
    cancelOperation: 0,
    cancelBatch: 0,
    retryOperation: 0,
    retryBatch: 0,
    submitThenCancel: 0,
    submitLong: 0,
    removeSubscriber: 0,
    registerSubscriber: 0,
    replayEvents: 0,
    redeliverDead: 0,
  } as Record<string, number>,
  outcomes: { ok: 0, conflict: 0, notFound: 0, unavailable: 0, untyped: 0 } as Record<string, number>,
  faults: { sigkill: 0, restart: 0, terminateBackend: 0, partition: 0 } as Record<string, number>,
  /** Partitions by kind, and the long runs of the partitioned nodes each cut in the middle. */
  partitions: { blackhole: 0, reset: 0, longRunsCut: 0 } as Record<string, number>,
  /**
   * The operator races' numbers: dead deliveries revived (one by one, tracked; or all at once),
   * deliveries replayed, and rows or holds of soak-occasional found while it was not registered,
   * just before a client registered it again (a correct module leaves none).
   */
  outbox: { revived: 0, revivedAll: 0, replayed: 0, orphansSeen: 0 } as Record<string, number>,
};

// --- what the checks compare with, in the soak's clock (see shared.ts) -------------------------------

const runs = new Map<string, RunStart & { stop?: RunStop }>();
/** Per batch, how many runs of its children have started. */
const batchRuns = new Map<string, number>();
/** Runs started and not stopped, of live processes: what a partition should cut. */
const openRuns = new Map<string, RunStart>();
const lives: { node: string; pid: number; started: number; exited: number; how: string }[] = [];
const partitions: { node: string; kind: CutKind; cut: number; restored: number }[] = [];
const stalls: { node: string; pid: number | null; began: number; ended: number }[] = [];
const logs: {
  node: string;
  pid: number;
  at: number;
  level: string;
  message: string;
  detail: string | null;
}[] = [];
const cancels: { target: string; called: number; returned: number }[] = [];
const retries: { target: string; called: number; returned: number }[] = [];
const revivals: { eventId: string; subscriber: string; called: number; returned: number }[] = [];
const removals: { subscriber: string; called: number; returned: number }[] = [];

// --- nodes ----------------------------------------------------------------------------------------

interface Node {
  id: string;
  child: ChildProcess;
  /** Resolves once the process has exited and every message it sent has been read. */
  exited: Promise<void>;
}

function startNode(id: string, urls: { module: string; record: string }): Promise<Node> {
  const child = fork(join(__dirname, "node.ts"), [], {
    execArgv: ["--import", "tsx"],
    env: {
      ...process.env,
      SOAK_DATABASE_URL: urls.module,
      SOAK_RECORD_URL: urls.record,
      SOAK_NODE_ID: id,
      SOAK_RETENTION_SECONDS: String(retentionSeconds),
    },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const life = { node: id, pid: child.pid!, started: clock(), exited: NaN, how: "" };
  const exit = new Promise<void>((resolve) =>
    child.once("exit", (code, signal) => {
      life.exited = clock();
      life.how = signal ?? `exit ${code}`;
      lives.push(life);
      resolve();
    }),
  );
  const disconnected = new Promise<void>((resolve) => child.once("disconnect", () => resolve()));
  const exited = Promise.all([exit, disconnected]).then(() => {
    for (const [runId, run] of openRuns) if (run.pid === life.pid) openRuns.delete(runId);
  });
  return new Promise((resolve, reject) => {
    child.on("message", (message: NodeMessage) => {
      if (message.kind === "ready") resolve({ id, child, exited });
      else if (message.kind === "start") {
        runs.set(message.run.runId, message.run);
        openRuns.set(message.run.runId, message.run);
        const batch = message.run.batchId;
        if (batch) batchRuns.set(batch, (batchRuns.get(batch) ?? 0) + 1);
      } else if (message.kind === "stall") {
        stalls.push({ node: id, pid: life.pid, began: message.began, ended: message.ended });
      } else if (message.kind === "log") {
        const { level, message: text, detail, at } = message;
        logs.push({ node: id, pid: life.pid, at, level, message: text, detail });
      } else {
        const run = runs.get(message.stop.runId);
        if (run) run.stop = message.stop;
        openRuns.delete(message.stop.runId);
      }
    });
    child.once("exit", (code, signal) =>
      reject(new Error(`node ${id} exited (${code ?? signal}) before it was ready`)),
    );
  });
}

/**
 * Starts the network process (soak/network.ts) with a proxy to `server` for each node: each node's
 * database URL through its proxy, cut and restore (each resolving with when it took effect, in
 * the soak's clock). Its stalls hold up every node's traffic: they count as each node's.
 */
async function startNetwork(server: URL, ids: string[]) {
  const child = fork(join(__dirname, "network.ts"), [], {
    execArgv: ["--import", "tsx"],
    env: { ...process.env, SOAK_PG_HOST: server.hostname, SOAK_PG_PORT: server.port || "5432" },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const waiting: ((reply: NetworkReply) => boolean)[] = [];
  child.on("message", (reply: NetworkReply) => {
    if (reply.kind === "stall") {
      for (const node of ids) stalls.push({ node, pid: null, began: reply.began, ended: reply.ended });
      return;
    }
    const index = waiting.findIndex((answers) => answers(reply));
    if (index >= 0) waiting.splice(index, 1);
  });
  const ask = <K extends NetworkReply["kind"]>(request: NetworkRequest, kind: K, node?: string) =>
    new Promise<Extract<NetworkReply, { kind: K }>>((resolve) => {
      waiting.push((reply) => {
        if (reply.kind !== kind || ("node" in reply && reply.node !== node)) return false;
        resolve(reply as Extract<NetworkReply, { kind: K }>);
        return true;
      });
      child.send(request);
    });
  const { ports } = await ask({ kind: "proxy", nodes: ids }, "ports");
  const urls = Object.fromEntries(
    ids.map((id) => {
      const proxied = new URL(server);
      proxied.hostname = "127.0.0.1";
      proxied.port = String(ports[id]);
      return [id, proxied.toString()];
    }),
  );
  return {
    urls,
    cut: async (node: string, how: CutKind) => (await ask({ kind: "cut", node, how }, "cut", node)).at,
    restore: async (node: string) => (await ask({ kind: "restore", node }, "restored", node)).at,
    stop: () => child.kill(),
  };
}

// --- the chaos ------------------------------------------------------------------------------------

const MODE_WEIGHTS: [Mode, number][] = [
  ["ok", 60],
  ["slow", 10],
  ["flaky", 10],
  ["broken", 8],
  ["fatal", 7],
  ["stuck", 5],
  // Odd errors and results, about 3% of the operations.
  ["nulError", 1],
  ["surrogateError", 0.5],
  ["hugeError", 0.25],
  ["nulResult", 0.5],
  ["surrogateResult", 0.25],
  ["deepResult", 0.25],
  ["largeResult", 0.25],
];
const TOTAL_MODE_WEIGHT = MODE_WEIGHTS.reduce((sum, [, weight]) => sum + weight, 0);

function mode(): Mode {
  let roll = random() * TOTAL_MODE_WEIGHT;
  for (const [candidate, weight] of MODE_WEIGHTS) {
    if ((roll -= weight) < 0) return candidate;
  }
  return "ok";
}

const task = (n: number) => {
  const m = mode();
  const ms =
    m === "slow"
      ? 20 + Math.floor(random() * 180)
      : m === "largeResult" // bytes: under or over the 1 MB a result may take
        ? pick([900_000, 1_500_000])
        : 0;
  return { n, mode: m, ms };
};

async function main(): Promise<void> {
  const database = `po_soak_${Date.now().toString(36)}`;
  const url = databaseUrl(database);
  const admin = new Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${database}`);
  await admin.end();
  const setup = new Client({ connectionString: url });
  await setup.connect();
  await applyMigrations(setup);
  await setup.query(SOAK_TABLES);
  await setup.end();

  const check = new Pool({ connectionString: url, max: 3, application_name: "soak-checker" });
  const started = Date.now();
  const log = (message: string) =>
    console.log(`[soak ${((Date.now() - started) / 1000).toFixed(1)}s] ${message}`);
  log(
    `database ${database}; ${nodeCount} worker nodes, ${clientCount} racing clients; ${seconds} s of chaos; seed ${args.seed}`,
  );

  // Each node reaches PostgreSQL through a proxy of its own in the network process; what it records
  // (the outside world) does not go through it.
  const ids = Array.from({ length: nodeCount }, (_, i) => `n${i + 1}`);
  const network = await startNetwork(new URL(url), ids);
  // A node restarted while its partition lasts cannot start (a reset cut refuses its connections):
  // it is started again until it is ready.
  const launch = async (id: string): Promise<Node> => {
    for (;;) {
      try {
        return await startNode(id, { module: network.urls[id]!, record: url });
      } catch {
        await sleep(500);
      }
    }
  };
  const nodes: (Node | undefined)[] = await Promise.all(ids.map((id) => launch(id)));
  // The racing clients as the README's quick start makes them: the module's statements on the pool.
  const pool = new Pool({ connectionString: url, max: 10, application_name: "soak-submitter" });
  pool.on("error", () => undefined);
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });
  const record = new Pool({ connectionString: url, max: 2, application_name: "soak-record-submitter" });
  record.on("error", () => undefined);
  const ops = createOperations({
    prisma,
    pool,
    types: soakTypes,
    logger: silentLogger,
    outbox: { backoff: OUTBOX_BACKOFF, inlineLeaseMs: INLINE_LEASE_MS },
    subscribers: soakSubscribers(record, "submitter", random),
  });
  await ops.ready();
  // The operator races' subscribers (see operatorSubscribers), registered before any write, each
  // delivered by a relay of this process — soak-occasional's only while it is registered, as a
  // subscriber is removed once no process has it; and a second writer that has soak-occasional
  // too, so that some writes hold deliveries for it (inline) while the clients remove it.
  let chaos = true;
  const operator = operatorSubscribers(record, () => chaos, random);
  const operatorService = (subscriber: typeof operator.flaky | typeof operator.occasional) =>
    createOperations({
      prisma,
      pool,
      types: soakTypes,
      logger: silentLogger,
      outbox: { backoff: OUTBOX_BACKOFF, ...OPERATOR_OUTBOX },
      subscribers: [subscriber],
    });
  const flaky = operatorService(operator.flaky);
  await flaky.ready();
  const relays = {
    flaky: flaky.createRelay({ pollIntervalMs: 200, leaseMs: 5_000 }).start(),
    occasional: undefined as OutboxRelay | undefined,
  };
  // Cancels go through a service with no subscribers of its own: it returns once the cancel has
  // committed, where one with subscribers returns after delivering the cancel's events to them (the
  // soak's recorder, a row per event) — which would hide how soon handlers stop starting.
  const canceller = createOperations({ prisma, pool, types: soakTypes, logger: silentLogger });
  const untypedErrors: string[] = [];

  const batchIds: string[] = [];
  const operationIds: string[] = [];
  const keyed = new Map<string, Set<string>>();
  const rolledBack: string[] = [];
  const keys = Array.from({ length: 30 }, (_, i) => `upload-${i}`);

  const actions: [string, number, () => Promise<unknown>][] = [
    [
      "submitBatch",
      25,
      async () => {
        const size = 1 + Math.floor(299 * random() ** 8); // 1 to 300, mostly small (mean ≈ 34)
        const key = random() < 0.2 ? pick(keys) : undefined;
        const writer = random() < 0.25 ? occasionalWriter : ops;
        const result = await writer.submitBatch({
          tenantId: pick(["bank-a", "bank-b", "bank-c"]),
          type: random() < 0.25 ? "soak.limited" : "soak.task",
          items: Array.from({ length: size }, (_, n) => task(n)),
          failurePolicy: random() < 0.2 ? "fail_fast" : "wait_all",
          idempotencyKey: key === undefined ? undefined : `${key}`,
        });
        if (result.created) batchIds.push(result.batch.id);
        if (key !== undefined) {
          if (!result.created) counts.actions.submitBatchReusedKey!++;
          const seen = keyed.get(key) ?? new Set<string>();
          seen.add(`${result.batch.tenantId}/${result.batch.id}`);
          keyed.set(key, seen);
        }
      },
    ],
    [
      "submitOperation",
      10,
      async () => {
        const result = await ops.submitOperation({ tenantId: "bank-a", type: "soak.task", payload: task(0) });
        operationIds.push(result.operation.id);
      },
    ],
    [
      "rolledBackSubmit",
      5,
      async () => {
        await ops
          .transaction(async (tx) => {
            const result = await ops.submitBatch(
              { tenantId: "bank-a", type: "soak.task", items: [task(0), task(1)] },
              { tx },
            );
            rolledBack.push(result.batch.id);
            throw new Error("rolled back on purpose");
          })
          .catch((error: unknown) => {
            if (!(error instanceof Error && error.message === "rolled back on purpose")) throw error;
          });
      },
    ],
    // Cancels and retries aim at the few most recent targets, so the clients collide on them.
    [
      "cancelOperation",
      15,
      async () => {
        const id = pick(operationIds.length && random() < 0.5 ? recent(operationIds) : await someChildren());
        if (id) await cancelled(id, await tenantOf(id), (tenant) => canceller.cancelOperation(tenant, id));
      },
    ],
    [
      "cancelBatch",
      15,
      async () => {
        const id = batchIds.length ? pick(recent(batchIds)) : undefined;
        if (id)
          await cancelled(id, await tenantOf(id, "batch"), (tenant) => canceller.cancelBatch(tenant, id));
      },
    ],
    [
      "retryOperation",
      15,
      async () => {
        const id = pick(await finished("operations"));
        if (id) await retried(id, async () => ops.retryOperation(await tenantOf(id), id));
      },
    ],
    [
      "retryBatch",
      15,
      async () => {
        const id = pick(await finished("operation_batches"));
        if (id) await retried(id, async () => ops.retryBatch(await tenantOf(id, "batch"), id));
      },
    ],
    // A user's second thoughts: a large batch of 20–200 ms children cancelled while the nodes
    // work through it (a claim holds rows ahead of its free slots until their turn).
    [
      "submitThenCancel",
      3,
      async () => {
        const result = await ops.submitBatch({
          tenantId: pick(["bank-a", "bank-b", "bank-c"]),
          type: "soak.task",
          items: Array.from({ length: 100 + Math.floor(random() * 100) }, (_, n) => ({
            n,
            mode: "slow" as const,
            ms: 20 + Math.floor(random() * 180),
          })),
        });
        cancelledOnPurpose.push(result.batch.id);
        // Once ten of its children have started (or 5 s have passed), the nodes are draining it.
        const until = Date.now() + 5_000;
        while ((batchRuns.get(result.batch.id) ?? 0) < 10 && Date.now() < until) await sleep(20);
        await cancelled(result.batch.id, result.batch.tenantId, (tenant) =>
          canceller.cancelBatch(tenant, result.batch.id),
        );
      },
    ],
    // Runs of seconds, so that a node is running some when it is cut.
    ["submitLong", 3, () => submitLong()],
    // The outbox's operator actions, racing the writes and the nodes' pruning.
    ["removeSubscriber", 3, () => removeOccasional()],
    [
      "registerSubscriber",
      3,
      async () => {
        if (Date.now() < deadline - FINAL_REMOVAL_MS - 3_000) await registerOccasional();
      },
    ],
    [
      "replayEvents",
      2,
      async () => {
        const since = new Date(Date.now() - 5_000 - random() * 10_000);
        counts.outbox.replayed! += await ops.replayEvents(OCCASIONAL, { since });
      },
    ],
    [
      "redeliverDead",
      4,
      async () => {
        // The oldest dead delivery: the one the pruner is about to delete with its event.
        const { rows } = await check.query(
          `SELECT event_id::text AS id FROM operation_deliveries
           WHERE subscriber = $1 AND dead_at IS NOT NULL ORDER BY dead_at LIMIT 1`,
          [FLAKY],
        );
        if (!rows[0] || random() < 0.25) {
          counts.outbox.revivedAll! += await ops.redeliverDead({ subscriber: FLAKY });
          return;
        }
        const called = clock();
        const revived = await ops.redeliverDead({ subscriber: FLAKY, eventIds: [rows[0].id] });
        if (revived === 1) {
          revivals.push({ eventId: rows[0].id, subscriber: FLAKY, called, returned: clock() });
          counts.outbox.revived!++;
        }
      },
    ],
  ];

  async function submitLong(): Promise<void> {
    const result = await ops.submitOperation({
      tenantId: pick(["bank-a", "bank-b"]),
      type: "soak.long",
      payload: { n: 0, mode: "long", ms: 4_000 + Math.floor(random() * 5_000) },
    });
    operationIds.push(result.operation.id);
  }

  /** A cancel that returned, with when: handler starts after it are counted (see measureRuns). */
  async function cancelled(
    target: string,
    tenant: string,
    cancel: (tenant: string) => Promise<unknown>,
  ): Promise<void> {
    const called = clock();
    await cancel(tenant);
    cancels.push({ target, called, returned: clock() });
  }
  /** A retry that returned, or may have committed before its connection was lost: it excuses later runs. */
  async function retried(target: string, retry: () => Promise<unknown>): Promise<void> {
    const called = clock();
    try {
      await retry();
    } catch (error) {
      if (error instanceof DatabaseUnavailableError) retries.push({ target, called, returned: clock() });
      throw error;
    }
    retries.push({ target, called, returned: clock() });
  }

  // soak-occasional is registered and removed by one client at a time, so that whether it is
  // registered is known: rows or holds of it found while it is not are orphans.
  let occasional = "registered" as "registered" | "removed" | "unknown";
  let operatorTurn = Promise.resolve();
  const inTurn = (action: () => Promise<void>): Promise<void> => {
    const turn = operatorTurn.then(action);
    operatorTurn = turn.catch(() => undefined);
    return turn;
  };
  const removeOccasional = () =>
    inTurn(async () => {
      await relays.occasional?.stop();
      relays.occasional = undefined;
      const called = clock();
      occasional = "unknown";
      try {
        await ops.removeSubscriber(OCCASIONAL);
      } finally {
        removals.push({ subscriber: OCCASIONAL, called, returned: clock() });
      }
      occasional = "removed";
    });
  const registerOccasional = () =>
    inTurn(async () => {
      if (occasional === "removed") {
        const { rows } = await check.query(
          `SELECT (SELECT count(*) FROM operation_deliveries WHERE subscriber = $1)
                + (SELECT count(*) FROM operation_delivery_holds WHERE subscriber = $1) AS n`,
          [OCCASIONAL],
        );
        counts.outbox.orphansSeen! += Number(rows[0].n);
      }
      occasional = "unknown";
      // A service registers its subscribers once: a new one registers soak-occasional again.
      const service = operatorService(operator.occasional);
      await service.ready();
      occasional = "registered";
      relays.occasional ??= service.createRelay({ pollIntervalMs: 200, leaseMs: 5_000 }).start();
    });
  await registerOccasional();
  const occasionalWriter = createOperations({
    prisma,
    pool,
    types: soakTypes,
    logger: silentLogger,
    outbox: { backoff: OUTBOX_BACKOFF, inlineLeaseMs: INLINE_LEASE_MS },
    subscribers: [...soakSubscribers(record, "submitter", random), operator.occasional],
  });
  await occasionalWriter.ready();

  const recent = <T>(list: T[]) => list.slice(-6);
  // N seconds of chaos from now, however long the nodes took to start on a busy machine.
  const deadline = Date.now() + seconds * 1000;

  async function someChildren(): Promise<string[]> {
    const { rows } = await check.query(
      `SELECT id FROM operations WHERE status IN ('pending', 'processing') LIMIT 20`,
    );
    return rows.map((row) => row.id);
  }
  // Retries leave alone the batches submitted then cancelled, whose starts after the cancel they would excuse.
  const cancelledOnPurpose: string[] = [];
  async function finished(table: "operations" | "operation_batches"): Promise<string[]> {
    const batch = table === "operations" ? "batch_id" : "id";
    const { rows } = await check.query(
      `SELECT id FROM ${table} WHERE status IN ('failed', 'cancelled') AND (${batch} IS NULL OR ${batch} <> ALL($1::uuid[]))
       ORDER BY updated_at DESC LIMIT 4`,
      [cancelledOnPurpose],
    );
    return rows.length ? rows.map((row) => row.id) : [undefined as never];
  }
  async function tenantOf(id: string, kind: "batch" | "operation" = "operation"): Promise<string> {
    const table = kind === "batch" ? "operation_batches" : "operations";
    const { rows } = await check.query(`SELECT tenant_id FROM ${table} WHERE id = $1`, [id]);
    return rows[0]?.tenant_id ?? "bank-a";
  }

  const totalWeight = actions.reduce((sum, [, weight]) => sum + weight, 0);
  /** What each client is doing, and since when: the progress line names actions that take long. */
  const busy = new Map<number, { name: string; since: number }>();
  const client = async (index: number) => {
    while (Date.now() < deadline) {
      let roll = random() * totalWeight;
      const [name, , run] = actions.find(([, weight]) => (roll -= weight) < 0) ?? actions[0]!;
      counts.actions[name]!++;
      busy.set(index, { name, since: Date.now() });
      try {
        await run();
        counts.outcomes.ok!++;
      } catch (error) {
        if (error instanceof ConflictError) counts.outcomes.conflict!++;
        else if (error instanceof NotFoundError) counts.outcomes.notFound!++;
        // A backend of ours was terminated mid-call: a typed error, and (with a key) safe to retry.
        else if (error instanceof DatabaseUnavailableError) counts.outcomes.unavailable!++;
        else if (!(error instanceof Error && error.message === "rolled back on purpose")) {
          counts.outcomes.untyped!++;
          untypedErrors.push(
            `${name}: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`,
          );
        }
      } finally {
        busy.delete(index);
      }
      await sleep(100 + random() * 200); // each client ~5 actions a second
    }
  };
  const submitter = Promise.all(Array.from({ length: clientCount }, (_, index) => client(index)));

  const faults = (async () => {
    while (Date.now() < deadline - 3_000) {
      await sleep(1_500 + random() * 2_500);
      if (random() < 0.5) {
        const index = Math.floor(random() * nodes.length);
        const victim = nodes[index];
        if (!victim) continue;
        victim.child.kill("SIGKILL");
        counts.faults.sigkill!++;
        nodes[index] = undefined;
        await victim.exited;
        await sleep(300 + random() * 1_200);
        nodes[index] = await launch(victim.id);
        counts.faults.restart!++;
      } else {
        const { rows } = await check.query(
          `SELECT pid FROM pg_stat_activity
           WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name LIKE 'soak-%'
             AND application_name NOT IN ('soak-checker')
           ORDER BY random() LIMIT 1`,
        );
        if (rows[0]) {
          await check.query(`SELECT pg_terminate_backend($1)`, [rows[0].pid]);
          counts.faults.terminateBackend!++;
        }
      }
    }
  })();
  // Partitions go on beside the other faults, one every 10 to 20 s.
  const partitioner = (async () => {
    for (;;) {
      await sleep(10_000 + random() * 10_000);
      if (Date.now() >= deadline - 3_000) return;
      await partition();
    }
  })();

  /**
   * Cuts a node off PostgreSQL for longer than its lease (its rows are reaped and claimed elsewhere
   * meanwhile), then heals: the node running the most long handlers (two more are submitted when
   * none runs any, and the nodes get 5 s to take one up), else a random one.
   */
  async function partition(): Promise<void> {
    const longRuns = (id: string) =>
      [...openRuns.values()].filter((run) => run.node === id && run.mode === "long").length;
    const busiest = () =>
      nodes
        .filter((node) => node !== undefined)
        .sort((a, b) => longRuns(b.id) - longRuns(a.id))
        .find((node) => longRuns(node.id) > 0);
    if (!busiest()) await Promise.all([1, 2].map(() => submitLong().catch(() => undefined)));
    const until = Date.now() + 5_000;
    while (!busiest() && Date.now() < until) await sleep(100);
    const node = busiest() ?? nodes[Math.floor(random() * nodes.length)];
    if (!node) return;
    const kind: CutKind = random() < 0.5 ? "blackhole" : "reset";
    counts.partitions.longRunsCut! += longRuns(node.id);
    const cut = await network.cut(node.id, kind);
    try {
      await sleep(LEASE_MS + 1_000 + random() * 2_000);
    } finally {
      partitions.push({ node: node.id, kind, cut, restored: await network.restore(node.id) });
    }
    counts.faults.partition!++;
    counts.partitions[kind]!++;
  }

  // The chaos ends with soak-occasional removed while the clients still write, and a small batch
  // written at the same moment: what the removal leaves behind stays for the checks. Up to five
  // times (registering it again in between), until a removal leaves something.
  const finalRemoval = (async () => {
    await sleep(deadline - FINAL_REMOVAL_MS - Date.now());
    for (let attempt = 1; attempt <= 5; attempt++) {
      try {
        if (attempt > 1) await registerOccasional();
        await Promise.all([
          removeOccasional(),
          ops.submitBatch({
            tenantId: "bank-c",
            type: "soak.task",
            items: Array.from({ length: 10 }, (_, n) => ({ n, mode: "ok" as const, ms: 0 })),
          }),
        ]);
      } catch (error) {
        if (!(error instanceof DatabaseUnavailableError)) throw error;
        if (occasional !== "removed") continue;
      }
      const { rows } = await check.query(
        `SELECT EXISTS (SELECT 1 FROM operation_deliveries WHERE subscriber = $1)
             OR EXISTS (SELECT 1 FROM operation_delivery_holds WHERE subscriber = $1) AS left`,
        [OCCASIONAL],
      );
      if (rows[0].left) break;
    }
    while (occasional !== "removed") await removeOccasional().catch(() => undefined);
  })();

  // The running limits of soak.limited, sampled from the database the whole time.
  const limitSamples = { samples: 0, maxRunning: 0, maxRunningPerTenant: 0 };
  let sampling = true;
  const limitSampler = (async () => {
    while (sampling) {
      try {
        const { rows } = await check.query(
          `SELECT tenant_id, count(*)::int AS n FROM operations
           WHERE type = 'soak.limited' AND status = 'processing' GROUP BY tenant_id`,
        );
        limitSamples.samples++;
        limitSamples.maxRunning = Math.max(
          limitSamples.maxRunning,
          rows.reduce((sum, row) => sum + row.n, 0),
        );
        limitSamples.maxRunningPerTenant = Math.max(
          limitSamples.maxRunningPerTenant,
          ...rows.map((row) => row.n),
          0,
        );
      } catch {
        // the checker's own backend is spared by the chaos; a blip costs one sample
      }
      await sleep(10);
    }
  })();

  // Table sizes over the run: with retention they stay bounded, without it they only grow.
  const TABLES = [
    "operations",
    "operation_batches",
    "operation_outbox",
    "operation_deliveries",
    "operation_delivery_holds",
  ] as const;
  const tableRows = { max: {} as Record<string, number>, final: {} as Record<string, number> };
  const countTables = async () => {
    const { rows } = await check.query(
      `SELECT ${TABLES.map((table) => `(SELECT count(*) FROM ${table})::int AS ${table}`).join(", ")}`,
    );
    return rows[0] as Record<string, number>;
  };
  const sizeSampler = setInterval(() => {
    void countTables()
      .then((sizes) => {
        for (const table of TABLES) tableRows.max[table] = Math.max(tableRows.max[table] ?? 0, sizes[table]!);
      })
      .catch(() => undefined);
  }, 2_000);

  const progress = setInterval(() => {
    void Promise.all([
      check.query(`SELECT status::text, count(*)::int AS n FROM operations GROUP BY 1 ORDER BY 1`),
      check.query(
        `SELECT subscriber, count(*)::int AS n FROM (
           SELECT subscriber FROM operation_deliveries WHERE delivered_at IS NULL AND dead_at IS NULL
           UNION ALL
           SELECT h.subscriber FROM operation_delivery_holds h CROSS JOIN LATERAL unnest(h.event_ids)) owed
         GROUP BY 1 ORDER BY 1`,
      ),
    ])
      .then(([operations, owed]) => {
        const slow = [...busy.values()]
          .filter((action) => Date.now() - action.since > 5_000)
          .map((action) => `${action.name} ${((Date.now() - action.since) / 1000).toFixed(0)} s`);
        log(
          `actions ${JSON.stringify(counts.actions)} faults ${JSON.stringify(counts.faults)} ` +
            `operations ${operations.rows.map((row) => `${row.status} ${row.n}`).join(", ")}; ` +
            `deliveries owed ${owed.rows.map((row) => `${row.subscriber} ${row.n}`).join(", ") || "none"}` +
            (slow.length ? `; clients busy for long: ${slow.join(", ")}` : ""),
        );
      })
      .catch(() => undefined);
  }, 5_000);

  await Promise.all([submitter, faults, partitioner, finalRemoval]);
  chaos = false; // the operator subscribers stop failing
  log("chaos over; letting the system settle");

  // Settle: every node alive, then wait until nothing is pending, running or undelivered. The
  // work left may be large after a long run (a limited type drains at its limit, the slow
  // subscriber at seconds per delivery), so the wait goes on while it shrinks, and gives up only
  // after SETTLE_STALL_MS without progress. Deliveries left dead by soak-flaky are revived as an
  // operator would; rows and holds of a subscriber no longer registered are no work anybody
  // will do (the checks report them).
  for (let i = 0; i < nodes.length; i++) nodes[i] ??= await launch(`n${i + 1}`);
  let settled = false;
  let least = Infinity;
  let lastProgress = Date.now();
  const registered = `EXISTS (SELECT 1 FROM operation_subscribers s WHERE s.name = subscriber)`;
  while (Date.now() - lastProgress < SETTLE_STALL_MS) {
    await ops.redeliverDead({ subscriber: FLAKY });
    const { rows } = await check.query(`
      SELECT (SELECT count(*) FROM operations WHERE status IN ('pending', 'processing'))::int AS active,
             (SELECT count(*) FROM operation_batches WHERE status IN ('pending', 'processing'))::int AS batches,
             (SELECT count(*) FROM operation_deliveries
              WHERE delivered_at IS NULL AND dead_at IS NULL AND ${registered})::int AS undelivered,
             (SELECT count(*) FROM operation_delivery_holds WHERE ${registered})::int AS held`);
    const left = rows[0].active + rows[0].batches + rows[0].undelivered + rows[0].held;
    if (left === 0) {
      settled = true;
      break;
    }
    if (left < least) {
      least = left;
      lastProgress = Date.now();
    }
    await sleep(250);
  }
  clearInterval(progress);
  clearInterval(sizeSampler);
  tableRows.final = await countTables();
  sampling = false;
  await limitSampler;
  log(settled ? "settled" : `did not settle: no progress for ${SETTLE_STALL_MS / 1000} s`);
  await Promise.all([
    ...nodes.map(async (node) => {
      node!.child.kill("SIGTERM");
      await node!.exited;
    }),
    relays.flaky.stop(),
    relays.occasional?.stop(),
  ]);
  network.stop();
  await saveRecords(check);

  const violations = [
    ...(limitSamples.maxRunning > LIMITS.total || limitSamples.maxRunningPerTenant > LIMITS.perTenant
      ? [`concurrency limit exceeded: ${JSON.stringify(limitSamples)} against ${JSON.stringify(LIMITS)}`]
      : []),
    ...untypedErrors.slice(0, 10).map((error) => `untyped error seen by a client: ${error.slice(0, 300)}`),
    ...(untypedErrors.length > 10 ? [`… and ${untypedErrors.length - 10} more untyped errors`] : []),
    ...(await checkInvariants(check, {
      settled,
      keyed,
      rolledBack,
      occasional: [OCCASIONAL],
      leaseMs: LEASE_MS,
    })),
  ];
  const measured = await measureRuns(check);
  const { rows: finalStatus } = await check.query(
    `SELECT status::text, count(*)::int AS n FROM operations GROUP BY 1 ORDER BY 1`,
  );
  const { rows: batchStatus } = await check.query(
    `SELECT status::text, count(*)::int AS n FROM operation_batches GROUP BY 1 ORDER BY 1`,
  );
  const { rows: totals } = await check.query(`
    SELECT (SELECT count(*) FROM soak_runs)::int AS "handlerRuns",
           (SELECT count(*) FROM soak_deliveries)::int AS deliveries,
           (SELECT count(*) FROM operation_outbox)::int AS events,
           (SELECT count(*) FROM operation_deliveries)::int AS "deliveryRows",
           -- Statements PostgreSQL chose as deadlock victims (each retried, after deadlock_timeout).
           (SELECT deadlocks FROM pg_stat_database WHERE datname = current_database())::int AS deadlocks`);
  await prisma.$disconnect();
  await Promise.all([pool.end(), record.end(), check.end()]);
  if (!args.keep) {
    const drop = new Client({ connectionString: serverUrl });
    await drop.connect();
    await drop.query(`DROP DATABASE ${database} WITH (FORCE)`);
    await drop.end();
  }
  const summary = {
    seconds,
    nodes: nodeCount,
    clients: clientCount,
    seed: Number(args.seed),
    settled,
    actions: counts.actions,
    actionOutcomes: counts.outcomes,
    faults: counts.faults,
    partitions: counts.partitions,
    outbox: counts.outbox,
    ...measured,
    limits: { ...LIMITS, ...limitSamples },
    tables: { retentionSeconds, ...tableRows },
    operations: Object.fromEntries(finalStatus.map((row) => [row.status, row.n])),
    batches: Object.fromEntries(batchStatus.map((row) => [row.status, row.n])),
    ...totals[0],
    elapsedSeconds: Math.round((Date.now() - started) / 1000),
    violations,
  };
  log(violations.length ? `${violations.length} VIOLATIONS` : "all invariants hold");
  console.log(`SOAK ${JSON.stringify(summary)}`);
  process.exit(violations.length ? 1 : 0);
}

/** Writes what the checks compare with (see SOAK_TABLES) into the soak's database. */
async function saveRecords(db: Pool): Promise<void> {
  const all = [...runs.values()];
  const column = <T>(rows: T[], pick: (row: T) => unknown) => rows.map(pick);
  await db.query(
    `INSERT INTO soak_runs (run_id, operation_id, batch_id, node, pid, attempt, mode, started, stopped, outcome, error_head,
                           aborted_by)
     SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::int[], $6::int[], $7::text[],
                          $8::float8[], $9::float8[], $10::text[], $11::text[], $12::text[])`,
    [
      column(all, (r) => r.runId),
      column(all, (r) => r.operationId),
      column(all, (r) => r.batchId),
      column(all, (r) => r.node),
      column(all, (r) => r.pid),
      column(all, (r) => r.attempt),
      column(all, (r) => r.mode),
      column(all, (r) => r.at),
      column(all, (r) => r.stop?.at ?? null),
      column(all, (r) => r.stop?.outcome ?? null),
      column(all, (r) => r.stop?.errorHead ?? null),
      column(all, (r) => r.stop?.abortedBy ?? null),
    ],
  );
  await db.query(
    `INSERT INTO soak_logs SELECT * FROM unnest($1::text[], $2::int[], $3::float8[], $4::text[], $5::text[], $6::text[])`,
    [
      column(logs, (l) => l.node),
      column(logs, (l) => l.pid),
      column(logs, (l) => l.at),
      column(logs, (l) => l.level),
      column(logs, (l) => l.message),
      column(logs, (l) => l.detail),
    ],
  );
  await db.query(
    `INSERT INTO soak_lives SELECT * FROM unnest($1::text[], $2::int[], $3::float8[], $4::float8[], $5::text[])`,
    [
      column(lives, (l) => l.node),
      column(lives, (l) => l.pid),
      column(lives, (l) => l.started),
      column(lives, (l) => l.exited),
      column(lives, (l) => l.how),
    ],
  );
  await db.query(
    `INSERT INTO soak_stalls SELECT * FROM unnest($1::text[], $2::int[], $3::float8[], $4::float8[])`,
    [
      column(stalls, (s) => s.node),
      column(stalls, (s) => s.pid),
      column(stalls, (s) => s.began),
      column(stalls, (s) => s.ended),
    ],
  );
  await db.query(
    `INSERT INTO soak_partitions SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $4::float8[])`,
    [
      column(partitions, (p) => p.node),
      column(partitions, (p) => p.kind),
      column(partitions, (p) => p.cut),
      column(partitions, (p) => p.restored),
    ],
  );
  for (const [table, rows] of [
    ["soak_cancels", cancels],
    ["soak_retries", retries],
  ] as const) {
    await db.query(`INSERT INTO ${table} SELECT * FROM unnest($1::uuid[], $2::float8[], $3::float8[])`, [
      column(rows, (r) => r.target),
      column(rows, (r) => r.called),
      column(rows, (r) => r.returned),
    ]);
  }
  await db.query(
    `INSERT INTO soak_revivals SELECT * FROM unnest($1::bigint[], $2::text[], $3::float8[], $4::float8[])`,
    [
      column(revivals, (r) => r.eventId),
      column(revivals, (r) => r.subscriber),
      column(revivals, (r) => r.called),
      column(revivals, (r) => r.returned),
    ],
  );
  await db.query(`INSERT INTO soak_removals SELECT * FROM unnest($1::text[], $2::float8[], $3::float8[])`, [
    column(removals, (r) => r.subscriber),
    column(removals, (r) => r.called),
    column(removals, (r) => r.returned),
  ]);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
