// `npm run soak -- --seconds N`: tries to break the guarantees for N seconds, then checks them.
//
// On a database of its own (created on DATABASE_URL's server, dropped afterwards) it runs worker
// nodes in separate processes and, from this process, N API clients racing each other: batch
// submits (1 to 300 children, some with reused idempotency keys), standalone operations, submits
// rolled back on purpose, and cancels and retries aimed at the same few recent batches and
// operations — while SIGKILLing random nodes (and restarting them) and terminating random backends
// (the clients' own included). Handlers succeed, fail retryably or not, time out or run long; a
// fast subscriber hiccups, a slow one takes seconds per delivery. Every error a client sees must be
// typed (conflict, not found, or the database being unavailable); any other is a violation. Then
// the chaos stops, the system settles, and every invariant is checked against the database and the
// recorded deliveries. Last line: `SOAK {json}`; exit code 1 on any violation.
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
} from "../src";
import { PrismaClient } from "../src/generated/prisma/client";
import { checkInvariants } from "./invariants";
import {
  INLINE_LEASE_MS,
  LIMITS,
  OUTBOX_BACKOFF,
  SOAK_TABLES,
  soakSubscribers,
  soakTypes,
  type Mode,
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
  } as Record<string, number>,
  outcomes: { ok: 0, conflict: 0, notFound: 0, unavailable: 0, untyped: 0 } as Record<string, number>,
  faults: { sigkill: 0, restart: 0, terminateBackend: 0 } as Record<string, number>,
};

// --- nodes ----------------------------------------------------------------------------------------

interface Node {
  id: string;
  child: ChildProcess;
  exited: Promise<void>;
}

function startNode(url: string, id: string): Promise<Node> {
  const child = fork(join(__dirname, "node.ts"), [], {
    execArgv: ["--import", "tsx"],
    env: {
      ...process.env,
      SOAK_DATABASE_URL: url,
      SOAK_NODE_ID: id,
      SOAK_RETENTION_SECONDS: String(retentionSeconds),
    },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return new Promise((resolve, reject) => {
    child.once("message", () => resolve({ id, child, exited }));
    child.once("exit", (code, signal) =>
      reject(new Error(`node ${id} exited (${code ?? signal}) before it was ready`)),
    );
  });
}

// --- the chaos ------------------------------------------------------------------------------------

const MODE_WEIGHTS: [Mode, number][] = [
  ["ok", 60],
  ["slow", 10],
  ["flaky", 10],
  ["broken", 8],
  ["fatal", 7],
  ["stuck", 5],
];

function mode(): Mode {
  let roll = random() * 100;
  for (const [candidate, weight] of MODE_WEIGHTS) {
    if ((roll -= weight) < 0) return candidate;
  }
  return "ok";
}

const task = (n: number) => {
  const m = mode();
  return { n, mode: m, ms: m === "slow" ? 20 + Math.floor(random() * 180) : 0 };
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

  const nodes: (Node | undefined)[] = await Promise.all(
    Array.from({ length: nodeCount }, (_, i) => startNode(url, `n${i + 1}`)),
  );
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
        const result = await ops.submitBatch({
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
        if (id) await ops.cancelOperation(await tenantOf(id), id);
      },
    ],
    [
      "cancelBatch",
      15,
      async () => {
        const id = batchIds.length ? pick(recent(batchIds)) : undefined;
        if (id) await ops.cancelBatch(await tenantOf(id, "batch"), id);
      },
    ],
    [
      "retryOperation",
      15,
      async () => {
        const id = pick(await finished("operations"));
        if (id) await ops.retryOperation(await tenantOf(id), id);
      },
    ],
    [
      "retryBatch",
      15,
      async () => {
        const id = pick(await finished("operation_batches"));
        if (id) await ops.retryBatch(await tenantOf(id, "batch"), id);
      },
    ],
  ];
  const recent = <T>(list: T[]) => list.slice(-6);

  async function someChildren(): Promise<string[]> {
    const { rows } = await check.query(
      `SELECT id FROM operations WHERE status IN ('pending', 'processing') LIMIT 20`,
    );
    return rows.map((row) => row.id);
  }
  async function finished(table: string): Promise<string[]> {
    const { rows } = await check.query(
      `SELECT id FROM ${table} WHERE status IN ('failed', 'cancelled') ORDER BY updated_at DESC LIMIT 4`,
    );
    return rows.length ? rows.map((row) => row.id) : [undefined as never];
  }
  async function tenantOf(id: string, kind: "batch" | "operation" = "operation"): Promise<string> {
    const table = kind === "batch" ? "operation_batches" : "operations";
    const { rows } = await check.query(`SELECT tenant_id FROM ${table} WHERE id = $1`, [id]);
    return rows[0]?.tenant_id ?? "bank-a";
  }

  const deadline = started + seconds * 1000;
  const totalWeight = actions.reduce((sum, [, weight]) => sum + weight, 0);
  const client = async () => {
    while (Date.now() < deadline) {
      let roll = random() * totalWeight;
      const [name, , run] = actions.find(([, weight]) => (roll -= weight) < 0) ?? actions[0]!;
      counts.actions[name]!++;
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
      }
      await sleep(100 + random() * 200); // each client ~5 actions a second
    }
  };
  const submitter = Promise.all(Array.from({ length: clientCount }, () => client()));

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
        nodes[index] = await startNode(url, victim.id);
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
      .then(([operations, owed]) =>
        log(
          `actions ${JSON.stringify(counts.actions)} faults ${JSON.stringify(counts.faults)} ` +
            `operations ${operations.rows.map((row) => `${row.status} ${row.n}`).join(", ")}; ` +
            `deliveries owed ${owed.rows.map((row) => `${row.subscriber} ${row.n}`).join(", ") || "none"}`,
        ),
      )
      .catch(() => undefined);
  }, 5_000);

  await Promise.all([submitter, faults]);
  log("chaos over; letting the system settle");

  // Settle: every node alive, then wait until nothing is pending, running or undelivered. The
  // work left may be large after a long run (a limited type drains at its limit, the slow
  // subscriber at seconds per delivery), so the wait goes on while it shrinks, and gives up only
  // after SETTLE_STALL_MS without progress.
  for (let i = 0; i < nodes.length; i++) nodes[i] ??= await startNode(url, `n${i + 1}`);
  let settled = false;
  let least = Infinity;
  let lastProgress = Date.now();
  while (Date.now() - lastProgress < SETTLE_STALL_MS) {
    const { rows } = await check.query(`
      SELECT (SELECT count(*) FROM operations WHERE status IN ('pending', 'processing'))::int AS active,
             (SELECT count(*) FROM operation_batches WHERE status IN ('pending', 'processing'))::int AS batches,
             (SELECT count(*) FROM operation_deliveries WHERE delivered_at IS NULL AND dead_at IS NULL)::int AS undelivered,
             (SELECT count(*) FROM operation_delivery_holds)::int AS held`);
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
  await Promise.all(
    nodes.map(async (node) => {
      node!.child.kill("SIGTERM");
      await node!.exited;
    }),
  );

  const violations = [
    ...(limitSamples.maxRunning > LIMITS.total || limitSamples.maxRunningPerTenant > LIMITS.perTenant
      ? [`concurrency limit exceeded: ${JSON.stringify(limitSamples)} against ${JSON.stringify(LIMITS)}`]
      : []),
    ...untypedErrors.slice(0, 10).map((error) => `untyped error seen by a client: ${error.slice(0, 300)}`),
    ...(untypedErrors.length > 10 ? [`… and ${untypedErrors.length - 10} more untyped errors`] : []),
    ...(await checkInvariants(check, { settled, keyed, rolledBack })),
  ];
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

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
