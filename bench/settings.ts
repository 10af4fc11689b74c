// Every system's settings, each with where it comes from. The run prints these beside the results
// and puts them in the BENCH line, so that a reader (a peer's maintainer included) can check each
// value against its source. Values chosen here rather than by a maintainer say so.

/** One setting: its value and its source (a URL, a doc or file, or "bench choice: why"). */
export interface Setting {
  value: unknown;
  source: string;
}

export interface SystemSettings {
  /** What the row is, in a few words. */
  label: string;
  /** Settings of the client or instance every scenario uses. */
  instance?: Record<string, Setting>;
  /** Settings of its submit path. */
  submit?: Record<string, Setting>;
  /** Settings of its worker for the drain (throughput). */
  throughput?: Record<string, Setting>;
  /** Settings of its worker for the latency scenario, when they differ from `throughput`. */
  latency?: Record<string, Setting>;
}

/** Handlers running at once, for every system that has the notion. */
export const CONCURRENCY = 16;

const SAME_FOR_ALL = "bench choice: the same for every system";

// --- graphile-worker 0.18 ------------------------------------------------------------------------

const GW_PERF =
  "https://worker.graphile.org/docs/performance (website/docs/performance.md, 'Quick stats' preset)";
const GW_CONFIG = "https://worker.graphile.org/docs/config";

export const GRAPHILE_PRESET = {
  concurrentJobs: CONCURRENCY,
  /** config.md: "we recommend setting it to `10` or `concurrentJobs + 2`, whichever is larger". */
  maxPoolSize: Math.max(10, CONCURRENCY + 2),
  localQueue: { size: 500 },
  completeJobBatchDelay: 0,
  failJobBatchDelay: 0,
};

const graphileWorker: Record<string, Setting> = {
  concurrentJobs: {
    value: GRAPHILE_PRESET.concurrentJobs,
    source: `${SAME_FOR_ALL} (the docs' preset uses 24)`,
  },
  maxPoolSize: {
    value: GRAPHILE_PRESET.maxPoolSize,
    source: `${GW_CONFIG}#workermaxpoolsize ("10 or concurrentJobs + 2, whichever is larger")`,
  },
  "localQueue.size": { value: GRAPHILE_PRESET.localQueue.size, source: GW_PERF },
  completeJobBatchDelay: { value: GRAPHILE_PRESET.completeJobBatchDelay, source: GW_PERF },
  failJobBatchDelay: { value: GRAPHILE_PRESET.failJobBatchDelay, source: GW_PERF },
  pollInterval: {
    value: "default (2000 ms)",
    source: `${GW_CONFIG}#workerpollinterval; new jobs arrive by LISTEN/NOTIFY, the poll is for future jobs`,
  },
  preparedStatements: { value: "default (true)", source: `${GW_CONFIG}#workerpreparedstatements` },
  pgPool: {
    value: "one pg.Pool (max = maxPoolSize) for the warm-up and the timed run",
    source: "perfTest/latencyTest.js in graphile/worker passes its own pgPool the same way",
  },
  logger: {
    value: "warnings and errors to stderr, info and debug dropped",
    source: "bench choice: the peer's warnings stay visible",
  },
};

/**
 * For latency the same page says: "if … you need high priority tasks to be executed ASAP then you
 * should set your localQueue size to either a low number (2+) or disable it entirely (-1). When
 * doing so, you can leave completeJobBatchDelay and failJobBatchDelay enabled."
 */
export const GRAPHILE_LATENCY_PRESET = { ...GRAPHILE_PRESET, localQueue: { size: -1 } };

export const GRAPHILE: SystemSettings = {
  label:
    "graphile-worker 0.18, the maintainers' performance preset; local queue off for latency, as they advise",
  submit: {
    api: { value: "addJobs(specs) per batch", source: "https://worker.graphile.org/docs/library/add-jobs" },
  },
  throughput: graphileWorker,
  latency: {
    "localQueue.size": {
      value: -1,
      source: `${GW_PERF}, 'localQueue': "you need high priority tasks to be executed ASAP … disable it entirely (-1)"`,
    },
    others: { value: "as for throughput (completeJobBatchDelay 0, maxPoolSize 18, …)", source: GW_PERF },
  },
};

// --- pg-boss 12 ----------------------------------------------------------------------------------

const PB_WORKERS = "https://pgboss.io/api/workers (docs/api/workers.md)";
const PB_NOTIFY = `${PB_WORKERS}, 'Low-latency dispatch with LISTEN/NOTIFY'`;
const PB_CONSTRUCTOR = "https://pgboss.io/api/constructor (docs/api/constructor.md)";

/**
 * pg-boss documents the throughput knobs (batchSize, localConcurrency, burstWhenBatchFull) but gives
 * no values: these are the best of a sweep on this machine (bench/sweep.ts, drain of 20,000).
 */
export const PGBOSS_THROUGHPUT = {
  batchSize: 100,
  localConcurrency: 4,
  burstWhenBatchFull: true,
};

const pgbossInstance: Record<string, Setting> = {
  useListenNotify: { value: true, source: PB_NOTIFY },
  "createQueue notify": { value: true, source: PB_NOTIFY },
  max: {
    value: 20,
    source: `${PB_CONSTRUCTOR} 'max' (default 10); raised so that localConcurrency never waits for a connection`,
  },
  supervise: {
    value: "default (true)",
    source: `${PB_CONSTRUCTOR}: "not something you would want to do under normal circumstances" to turn off`,
  },
  schedule: { value: false, source: `${PB_CONSTRUCTOR}: no cron here; "you may want to do for testing"` },
  events: {
    value: "'warning' and 'error' to stderr",
    source:
      "https://pgboss.io/api/events (docs/api/events.md); bench choice: the peer's warnings stay visible",
  },
};

export const PGBOSS: SystemSettings = {
  label: "pg-boss 12, documented options; throughput values from a sweep",
  instance: pgbossInstance,
  submit: { api: { value: "insert(queue, jobs) per batch", source: "https://pgboss.io/api/jobs#insert" } },
  throughput: {
    batchSize: {
      value: PGBOSS_THROUGHPUT.batchSize,
      source: `${PB_WORKERS} 'batchSize'; value: best of bench/sweep.ts on this machine`,
    },
    localConcurrency: {
      value: PGBOSS_THROUGHPUT.localConcurrency,
      source: `${PB_WORKERS} 'localConcurrency' (v10+ replacement of teamSize, timgit/pg-boss#483); value: best of bench/sweep.ts`,
    },
    burstWhenBatchFull: {
      value: PGBOSS_THROUGHPUT.burstWhenBatchFull,
      source: `${PB_WORKERS} 'burstWhenBatchFull': "keeps fetching continuously with no delay"`,
    },
    handler: { value: "batch handler, all-or-nothing completion (the default)", source: PB_WORKERS },
  },
  latency: {
    work: {
      value: "defaults (batchSize 1, localConcurrency 1, notifyPollingIntervalSeconds 30)",
      source: `${PB_NOTIFY}: "No polling tuning needed"`,
    },
  },
};

export const PGBOSS_FLOW: SystemSettings = {
  label: "pg-boss 12 flow(): the children and a parent depending on all of them",
  submit: {
    api: { value: "flow([...children, parent dependsOn all])", source: "https://pgboss.io/api/jobs (flow)" },
  },
};

// --- ours ----------------------------------------------------------------------------------------

const OUR_WORKER = "src/execution/worker.ts (WorkerOptions defaults)";

const oursCommon: Record<string, Setting> = {
  listen: { value: "{ connectionString }", source: "README 'Workers': createWorker({ handlers, listen })" },
  subscribers: {
    value: "one in-process subscriber (all topics), counting deliveries",
    source: "bench choice: every operation's outbox event is delivered, as in an application",
  },
  relay: { value: "default (on, poll 1,000 ms)", source: "src/outbox/relay.ts DEFAULT_RELAY_OPTIONS" },
  reaper: { value: "default (on, every 5,000 ms)", source: "src/execution/reaper.ts DEFAULT_REAPER_OPTIONS" },
  logger: { value: "default (consoleLogger: warnings and errors to stderr)", source: "src/logger.ts" },
};

export const OURS: SystemSettings = {
  label: "ours, defaults as users get them",
  instance: {
    client: {
      value:
        "pool = new Pool({ connectionString }) (default max 10); new PrismaPg(pool); createOperations({ prisma, pool }): the module's statements on the pool, its hot-path ones prepared (preparedStatements default true)",
      source: "README quick start",
    },
    ...oursCommon,
  },
  submit: { api: { value: "submitBatch (one statement, outbox event included)", source: "README" } },
  throughput: {
    concurrency: { value: CONCURRENCY, source: SAME_FOR_ALL },
    batchSize: { value: "default (100)", source: OUR_WORKER },
    prefetch: {
      value: 'default ("auto": about 200 ms of work at the current pace, ≤ 500)',
      source: OUR_WORKER,
    },
    pollIntervalMs: { value: "default (1,000)", source: OUR_WORKER },
    leaseMs: { value: "default (30,000)", source: OUR_WORKER },
  },
};

export const OURS_NO_POOL: SystemSettings = {
  label: "ours, the Prisma client alone (no `pool`): every statement through Prisma; worker defaults",
  instance: {
    client: {
      value:
        "new PrismaPg({ connectionString }, { statementNameGenerator: preparedStatementNames() }); createOperations({ prisma }) (pg pool default max 10; the module's hot-path statements prepared)",
      source: "README 'Without a pool'",
    },
    ...oursCommon,
  },
  submit: { api: { value: "submitBatch", source: "README" } },
  throughput: OURS.throughput,
};

export const RAW: SystemSettings = {
  label: "raw SQL via pg on our schema, the same work set-based: a ceiling for ours",
  submit: {
    api: {
      value:
        "one statement: parent, children (unnest), batch.submitted event and its hold; then delivered in process and the hold settled",
      source: "bench/systems.ts",
    },
  },
  throughput: {
    connections: {
      value: 4,
      source:
        "best of bench/sweep.ts (1, 2, 4, 6 connections; 2–6 within noise); a deadlock between two is retried",
    },
    claim: {
      value: "1,000 rows per statement (FOR UPDATE SKIP LOCKED), batch rows marked started",
      source: "bench choice: a claim as large as graphile's local queue or larger",
    },
    completion: {
      value:
        "one statement per claim: rows completed (fenced by lock token), batch counters and statuses, operation.completed + batch.completed events and their hold; then delivered in process and the hold settled in one statement",
      source: "bench/systems.ts: the work ours does per operation, with the fewest statements",
    },
  },
};

export const SYSTEMS: Record<string, SystemSettings> = {
  ours: OURS,
  oursNoPool: OURS_NO_POOL,
  pgboss: PGBOSS,
  pgbossFlow: PGBOSS_FLOW,
  graphile: GRAPHILE,
  raw: RAW,
};
