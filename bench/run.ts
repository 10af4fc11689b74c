// `npm run bench [-- --quick] [-- --runs N] [-- --scenario drain,latency] [-- --only ours,graphile]`
// (scenarios: submit = submit1000 + submit10, drain, latency, aggregation, scale, batch100k, fairness)
//
// Every scenario against every system on the same PostgreSQL. Each (system, scenario, run) runs in a
// fresh process on a freshly created database; every system gets its setup, `ANALYZE`, a checkpoint
// and an untimed warm-up before anything is timed. Runs are interleaved (run 1 of every system, then
// run 2, …) so that a disturbance on the machine spreads over all of them. Prints each system's
// settings with their sources, the medians with their spread (min–max), the ratios of ours to the
// best peer, and `BENCH {json}`.
import { cpus, loadavg, totalmem } from "node:os";
import { parseArgs } from "node:util";
import { COMPILED, withClient } from "./common";
import { admin, createDatabase, databaseUrl, dropDatabase, fresh, step } from "./steps";
import { CONCURRENCY, SYSTEMS, type Setting } from "./settings";
import { percentile, round, spread, type Spread } from "./stats";

const SCENARIOS = [
  "submit1000",
  "submit10",
  "drain",
  "latency",
  "aggregation",
  "scale",
  "batch100k",
  "fairness",
] as const;
type Scenario = (typeof SCENARIOS)[number];

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    scenario: { type: "string" },
    runs: { type: "string" },
  },
});
const quick = args.quick!;
const runs = Number(args.runs ?? (quick ? 1 : 3));
if (!Number.isInteger(runs) || runs < 1) throw new Error("--runs takes a positive integer");
const only = args.only?.split(",");
const wantedScenarios = new Set<Scenario>(
  (args.scenario?.split(",") ?? [...SCENARIOS]).flatMap((name) => {
    if (name === "submit") return ["submit1000", "submit10"] as Scenario[];
    if (!SCENARIOS.includes(name as Scenario)) {
      throw new Error(`unknown scenario "${name}"; one of submit, ${SCENARIOS.join(", ")}`);
    }
    return [name as Scenario];
  }),
);
const wanted = (system: string) => !only || only.includes(system);

const sizes = {
  runs,
  concurrency: 16,
  submitBatches1000: quick ? 10 : 100,
  submitBatches10: quick ? 200 : 1000,
  /** Untimed warm-up submits of the same size, per system, before the timed ones. */
  submitWarmup: { 1000: 3, 10: 20 },
  drainTotal: quick ? 10_000 : 100_000,
  drainBatch: 100,
  /** Untimed warm-up drain (another job type) before the timed drain. */
  drainWarmup: 1_000,
  latencySamples: quick ? 500 : 5_000,
  latencyWarmup: quick ? 50 : 100,
  aggregationChildren: quick ? 1_000 : 10_000,
  scaleRows: quick ? [10_000, 100_000] : [10_000, 1_000_000],
  /** Timed drain at scale: the backlog of the 10k case is 5,000, minus the warm-up. */
  scaleDrain: 4_000,
  scaleWarmup: 500,
  bigBatchChildren: quick ? 20_000 : 100_000,
  /**
   * Fairness: tenant A's due children (seeded by a separate process in batches of `seedBatch`);
   * `smallTenants` other tenants (B–E) each submit one `smallBatch`-child batch every `intervalMs`
   * for `windowMs`. Sized so that 3 runs of its three modes take under 3 minutes.
   */
  fairness: {
    bigTenant: quick ? 20_000 : 100_000,
    seedBatch: 1_000,
    smallTenants: 4,
    smallBatch: 10,
    intervalMs: 200,
    windowMs: quick ? 3_000 : 10_000,
    warmBatches: 20,
  },
};

const FAIRNESS_MODES = ["idle", "fair", "fifo"] as const;

const SYSTEMS_BY_SCENARIO: Record<Scenario, string[]> = {
  submit1000: ["ours", "oursNoPool", "pgboss", "pgbossFlow", "graphile", "raw"],
  submit10: ["ours", "oursNoPool", "pgboss", "pgbossFlow", "graphile", "raw"],
  drain: ["ours", "oursNoPool", "pgboss", "graphile", "raw"],
  latency: ["ours", "oursNoPool", "pgboss", "graphile"],
  aggregation: ["ours"],
  scale: ["ours"],
  batch100k: ["ours"],
  fairness: ["ours"],
};

const PEERS = ["pgboss", "graphile"];

/** Steps that failed, reported at the end and in BENCH. */
const failures: string[] = [];

/** Everything measured, per metric path and system: one value per run. */
const measured = new Map<string, Map<string, number[]>>();
function record(path: string, system: string, value: number): void {
  if (!measured.has(path)) measured.set(path, new Map());
  const bySystem = measured.get(path)!;
  if (!bySystem.has(system)) bySystem.set(system, []);
  bySystem.get(system)!.push(value);
}

const log = (message: string) => console.log(message);
const fmt = (n: number, digits = 0) =>
  n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });

async function busyElsewhere(): Promise<string[]> {
  return admin(async (client) => {
    const { rows } = await client.query<{ datname: string; n: number }>(
      `SELECT datname, count(*)::int AS n FROM pg_stat_activity
       WHERE state = 'active' AND pid <> pg_backend_pid() AND backend_type = 'client backend'
       GROUP BY datname`,
    );
    return rows.map((row) => `${row.datname}: ${row.n} active`);
  });
}

/** The commit probe's result, for the BENCH line. */
let hostCommitProbe: { p50: number; p99: number; max: number } | undefined;

/**
 * How long this host takes to commit one row when commits come spaced out, as in the latency and
 * fairness scenarios (one every 25 ms): on a host whose disk stalls such flushes, those scenarios
 * measure the disk. Back-to-back commits (the throughput scenarios) can look fine on the same host.
 */
async function commitProbe(): Promise<{ p50: number; p99: number; max: number }> {
  const name = "po_bench_commit_probe";
  await createDatabase(name);
  try {
    return await withClient(databaseUrl(name), async (client) => {
      await client.query("CREATE TABLE probe (id serial PRIMARY KEY, at timestamptz DEFAULT now())");
      const samples: number[] = [];
      for (let i = 0; i < 200; i++) {
        const at = performance.now();
        await client.query("INSERT INTO probe DEFAULT VALUES");
        samples.push(performance.now() - at);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      return { p50: percentile(samples, 50), p99: percentile(samples, 99), max: Math.max(...samples) };
    });
  } finally {
    await dropDatabase(name);
  }
}

const RUNTIME = COMPILED
  ? "compiled JavaScript (tsc → dist-bench/) under plain node for every system's processes, as in production"
  : "every system's processes under tsx (about 35 MB more RSS each); `npm run bench` runs them compiled";

async function main(): Promise<void> {
  const started = Date.now();
  const postgres = await admin(
    async (client) => (await client.query("SHOW server_version")).rows[0].server_version,
  );
  log(
    `prisma-operations benchmark — node ${process.version}, PostgreSQL ${postgres}, ${cpus().length} CPUs, ` +
      `${Math.round(totalmem() / 2 ** 30)} GiB${quick ? " (QUICK: small sizes, not for publishing)" : ""}`,
  );
  log(
    `load average ${loadavg()
      .map((n) => n.toFixed(2))
      .join(" ")}; other active sessions: ${(await busyElsewhere()).join(", ") || "none"}`,
  );
  const probe = await commitProbe();
  hostCommitProbe = { p50: round(probe.p50, 2), p99: round(probe.p99, 2), max: round(probe.max, 2) };
  log(
    `commit probe (a one-row insert and commit every 25 ms, 200 samples): p50 ${fmt(probe.p50, 2)} ms, ` +
      `p99 ${fmt(probe.p99, 2)} ms, max ${fmt(probe.max, 2)} ms — a p99 far above the p50 means this ` +
      `host's disk stalls spaced-out commits, and the latency and fairness figures measure it`,
  );
  log(`runtime: ${RUNTIME}`);
  log(`sizes: ${JSON.stringify(sizes)}`);
  log(`scenarios: ${[...wantedScenarios].join(", ")}; ${runs} run(s) each, interleaved\n`);

  const systemsFor = (scenario: Scenario) => SYSTEMS_BY_SCENARIO[scenario].filter(wanted);
  const used = new Set<string>();

  for (const scenario of SCENARIOS) {
    if (!wantedScenarios.has(scenario)) continue;
    const systems = systemsFor(scenario);
    if (systems.length === 0) continue;
    systems.forEach((system) => used.add(system));
    let template: Map<number, string> | undefined;
    if (scenario === "scale") {
      template = new Map();
      for (const rows of sizes.scaleRows) {
        const name = `po_bench_scale_${rows}`;
        await createDatabase(name);
        const built = await step(name, "ours", "scaleTemplate", { rows });
        log(
          `scale: built ${fmt(rows)} rows set-based in ${fmt(Number(built.ms) / 1000, 1)} s (VACUUM ANALYZE included)`,
        );
        template.set(rows, name);
      }
    }
    if (scenario === "fairness") {
      const f = sizes.fairness;
      const perSecond = (f.smallTenants * f.smallBatch * 1000) / f.intervalMs;
      log(
        `fairness: tenant A ${fmt(f.bigTenant)} due children (written beforehand in batches of ${fmt(f.seedBatch)} ` +
          `by a separate process; none in "idle"); ${f.smallTenants} other tenants (B–E) each submit one batch of ${f.smallBatch} every ` +
          `${f.intervalMs} ms, staggered (${fmt(perSecond)} ops/s in all) for ${fmt(f.windowMs / 1000, 1)} s; ` +
          `worker concurrency ${CONCURRENCY}: "idle" its defaults, "fair" fair: true, "fifo" fair: false`,
      );
    }
    try {
      for (let run = 1; run <= runs; run++) {
        for (const system of systems) {
          const tag = `${scenario.padEnd(11)} run ${run}/${runs}  ${system.padEnd(10)}`;
          try {
            if (scenario === "submit1000" || scenario === "submit10") {
              const size = scenario === "submit1000" ? 1000 : 10;
              const batches = scenario === "submit1000" ? sizes.submitBatches1000 : sizes.submitBatches10;
              const result = await fresh(system, "submit", {
                batches,
                size,
                warmBatches: sizes.submitWarmup[size],
              });
              const rowsPerSec = (batches * size) / (Number(result.ms) / 1000);
              record(size === 1000 ? "submit.rowsPerSec" : "submit.rowsPerSecBatch10", system, rowsPerSec);
              log(`${tag} ${fmt(rowsPerSec).padStart(9)} rows/s`);
            } else if (scenario === "drain") {
              const result = await fresh(
                system,
                "drain",
                { total: sizes.drainTotal, warm: sizes.drainWarmup },
                { seed: { total: sizes.drainTotal, batch: sizes.drainBatch } },
              );
              const opsPerSec = sizes.drainTotal / (Number(result.ms) / 1000);
              record("drain.opsPerSec", system, opsPerSec);
              record("drain.peakRssMb", system, Number(result.peakRssMb));
              log(
                `${tag} ${fmt(opsPerSec).padStart(9)} ops/s  (handlers done at ${fmt(Number(result.handlersMs))} ms, ` +
                  `all recorded at ${fmt(Number(result.ms))} ms; peak RSS ${fmt(Number(result.peakRssMb))} MB)`,
              );
            } else if (scenario === "latency") {
              const result = await fresh(system, "latency", {
                count: sizes.latencySamples,
                warmup: sizes.latencyWarmup,
              });
              const samples = result.samples as number[];
              record("latency.p50Ms", system, percentile(samples, 50));
              record("latency.p99Ms", system, percentile(samples, 99));
              log(
                `${tag} p50 ${fmt(percentile(samples, 50), 2)} ms, p99 ${fmt(percentile(samples, 99), 2)} ms, ` +
                  `max ${fmt(Math.max(...samples), 2)} ms (${samples.length} samples)`,
              );
            } else if (scenario === "aggregation") {
              for (const batchSize of [10, sizes.aggregationChildren]) {
                const result = await fresh(system, "aggregation", {
                  batchSize,
                  children: sizes.aggregationChildren,
                });
                const key = batchSize === 10 ? "batch10" : "batch10000";
                record(`aggregation.perChildMs.${key}`, system, Number(result.perChildMs));
                log(`${tag} batch of ${fmt(batchSize)}: ${fmt(Number(result.perChildMs), 3)} ms per child`);
              }
            } else if (scenario === "scale") {
              for (const rows of sizes.scaleRows) {
                const key = rowsKey(rows);
                const result = await fresh(
                  system,
                  "scale",
                  { total: sizes.scaleDrain, warmup: sizes.scaleWarmup },
                  { template: template!.get(rows)! },
                );
                record(`scale.claimMs.${key}`, system, Number(result.claimMs));
                record(`scale.drainOpsPerSec.${key}`, system, Number(result.drainOpsPerSec));
                log(
                  `${tag} ${key}: claim median ${fmt(Number(result.claimMs), 2)} ms (p95 ${fmt(Number(result.claimP95Ms), 2)}, ` +
                    `${result.claims} claims), drain ${fmt(Number(result.drainOpsPerSec))} ops/s`,
                );
              }
            } else if (scenario === "fairness") {
              const f = sizes.fairness;
              for (const mode of FAIRNESS_MODES) {
                const bigTenant = mode === "idle" ? 0 : f.bigTenant;
                const result = await fresh(
                  system,
                  "fairness",
                  {
                    bigTenant,
                    fair: mode === "fifo" ? 0 : 1,
                    windowMs: f.windowMs,
                    intervalMs: f.intervalMs,
                    smallTenants: f.smallTenants,
                    smallBatch: f.smallBatch,
                    warmBatches: f.warmBatches,
                  },
                  bigTenant
                    ? { seed: { total: bigTenant, batch: f.seedBatch }, seedScenario: "fairnessSeed" }
                    : {},
                );
                record(`fairness.smallTenantsP99Ms.${mode}`, system, Number(result.p99Ms));
                // Not a target: the part of each sample spent in the submit call itself.
                record(`fairness.smallTenantsSubmitCallP99Ms.${mode}`, system, Number(result.submitP99Ms));
                // Nor this: the sample without the submit call (how long after it returned a child started).
                record(
                  `fairness.smallTenantsAfterSubmitP99Ms.${mode}`,
                  system,
                  Number(result.afterSubmitP99Ms),
                );
                if (mode !== "idle") {
                  record(`fairness.bigTenantOpsPerSec.${mode}`, system, Number(result.bigTenantOpsPerSec));
                }
                log(
                  `${tag} ${mode}: B–E submit → start p50 ${fmt(Number(result.p50Ms), 2)} ms, ` +
                    `p99 ${fmt(Number(result.p99Ms), 2)} ms, max ${fmt(Number(result.maxMs), 2)} ms ` +
                    `(${fmt(Number(result.samples))} samples; the submit call alone p50 ${fmt(Number(result.submitP50Ms), 2)} ms, ` +
                    `p99 ${fmt(Number(result.submitP99Ms), 2)} ms; started after the call returned p99 ` +
                    `${fmt(Number(result.afterSubmitP99Ms), 2)} ms)` +
                    (mode === "idle"
                      ? ""
                      : `; A ${fmt(Number(result.bigTenantOpsPerSec))} ops/s, all ${fmt(Number(result.totalOpsPerSec))} ops/s`) +
                    ` over ${fmt(Number(result.windowMs) / 1000, 1)} s; last B–E start ${fmt(Number(result.tailMs))} ms after the window`,
                );
              }
            } else if (scenario === "batch100k") {
              const result = await fresh(system, "batch100k", { children: sizes.bigBatchChildren });
              record("scale.batch100k.seconds", system, Number(result.seconds));
              record("scale.batch100k.peakRssMb", system, Number(result.peakRssMb));
              log(
                `${tag} one batch of ${fmt(sizes.bigBatchChildren)}: ${fmt(Number(result.seconds), 2)} s, ` +
                  `peak RSS ${fmt(Number(result.peakRssMb))} MB, ${result.transactions} transaction`,
              );
            }
          } catch (error) {
            // One failed step does not end the run: it is reported, and left out of the medians.
            const message = (error as Error).message.split("\n")[0]!;
            failures.push(`${scenario} run ${run} ${system}: ${message}`);
            log(`${tag} FAILED: ${message} (details on stderr)`);
            console.error(error);
          }
        }
      }
    } finally {
      for (const name of template?.values() ?? []) await dropDatabase(name);
    }
  }

  summarize(postgres, [...used], started);
}

/** The issue's targets for fairness, as pass/fail lines; they never fail the bench. */
function fairnessTargets(median: (path: string, system: string) => Spread | undefined): void {
  const p99 = (mode: string) => median(`fairness.smallTenantsP99Ms.${mode}`, "ours")?.median;
  const ops = (mode: string) => median(`fairness.bigTenantOpsPerSec.${mode}`, "ours")?.median;
  const idle = p99("idle");
  const fair = p99("fair");
  const fifo = p99("fifo");
  if (idle === undefined || fair === undefined) return;
  log("\n=== fairness targets (reported, never failing the bench) ===");
  log(
    `  B–E p99 with fair claiming ≤ 2 × idle: ${fmt(fair, 2)} ms vs 2 × ${fmt(idle, 2)} = ${fmt(2 * idle, 2)} ms — ` +
      `${fair <= 2 * idle ? "PASS" : "FAIL"} (${round(fair / idle, 2)} × idle` +
      `${fifo === undefined ? "" : `; with fair: false ${fmt(fifo, 2)} ms, ${round(fifo / idle, 1)} × idle`})`,
  );
  const after = (mode: string) => median(`fairness.smallTenantsAfterSubmitP99Ms.${mode}`, "ours")?.median;
  const afterIdle = after("idle");
  const afterFair = after("fair");
  if (afterIdle !== undefined && afterFair !== undefined) {
    log(
      `  (not a target) the same p99 counted from the submit call's return: idle ${fmt(afterIdle, 2)} ms, ` +
        `fair ${fmt(afterFair, 2)} ms — the claiming alone, without the host's commit latency`,
    );
  }
  const aFair = ops("fair");
  const aFifo = ops("fifo");
  if (aFair === undefined || aFifo === undefined) return;
  log(
    `  A's ops/s with fair claiming ≥ 0.9 × with fair: false: ${fmt(aFair)} vs 0.9 × ${fmt(aFifo)} = ${fmt(0.9 * aFifo)} — ` +
      `${aFair >= 0.9 * aFifo ? "PASS" : "FAIL"} (${round(aFair / aFifo, 2)} ×)`,
  );
}

const rowsKey = (rows: number) => (rows >= 1_000_000 ? `rows${rows / 1_000_000}m` : `rows${rows / 1000}k`);

function summarize(postgres: string, used: string[], started: number): void {
  const digitsOf = (path: string) => (path.includes("Ms") || path.includes("seconds") ? 3 : 0);
  const median = (path: string, system: string) => {
    const values = measured.get(path)?.get(system);
    return values ? spread(values, digitsOf(path)) : undefined;
  };

  // BENCH: the medians under the keys the README and the issue use; `spread` mirrors them.
  const bench: Record<string, unknown> = {};
  const spreads: Record<string, unknown> = {};
  const put = (target: Record<string, unknown>, path: string, value: unknown) => {
    const parts = path.split(".");
    let node = target;
    for (const part of parts.slice(0, -1)) node = (node[part] ??= {}) as Record<string, unknown>;
    node[parts.at(-1)!] = value;
  };
  for (const [path, bySystem] of measured) {
    for (const [system, values] of bySystem) {
      const s = spread(values, digitsOf(path));
      // Keys of ours-only metrics (aggregation, scale, fairness) name no system.
      const oursOnly = ["aggregation", "scale", "fairness"].some((prefix) => path.startsWith(prefix));
      if (path === "drain.peakRssMb") {
        if (system === "ours") {
          put(bench, "memory.peakRssMb", s.median);
          put(spreads, "memory.peakRssMb", { min: s.min, max: s.max, runs: s.runs });
        }
        put(bench, `memory.drainPeakRssMb.${system}`, s.median);
        continue;
      }
      put(bench, oursOnly ? path : `${path}.${system}`, s.median);
      put(spreads, oursOnly ? path : `${path}.${system}`, { min: s.min, max: s.max, runs: s.runs });
    }
  }
  bench.spread = spreads;
  bench.commitProbeMs = hostCommitProbe;
  bench.settings = {
    sizes,
    systems: Object.fromEntries(used.map((system) => [system, SYSTEMS[system]])),
  };
  bench.node = process.version;
  bench.runtime = RUNTIME;
  bench.postgres = postgres;
  bench.cpus = cpus().length;
  bench.quick = quick;

  // Settings, with sources.
  log("\n=== settings (value — source) ===");
  for (const system of used) {
    const settings = SYSTEMS[system]!;
    log(`\n${system}: ${settings.label}`);
    for (const section of ["instance", "submit", "throughput", "latency"] as const) {
      const entries = settings[section];
      if (!entries) continue;
      log(`  ${section}:`);
      if (section === "throughput" && !settings.latency && SYSTEMS_BY_SCENARIO.latency.includes(system)) {
        log("    (the latency scenario uses the same worker settings)");
      }
      for (const [key, setting] of Object.entries(entries) as [string, Setting][]) {
        log(
          `    ${key} = ${typeof setting.value === "string" ? setting.value : JSON.stringify(setting.value)} — ${setting.source}`,
        );
      }
    }
  }

  // Results: median (min–max) over the runs.
  log(`\n=== results: median (min–max) of ${runs} run(s) ===`);
  const columns = ["ours", "oursNoPool", "pgboss", "pgbossFlow", "graphile", "raw"].filter((s) =>
    used.includes(s),
  );
  const cell = (s: Spread | undefined, digits: number) =>
    s ? `${fmt(s.median, digits)} (${fmt(s.min, digits)}–${fmt(s.max, digits)})` : "—";
  const rows: [string, string, number][] = [
    [`submit, ${sizes.submitBatches1000} batches × 1,000 (rows/s)`, "submit.rowsPerSec", 0],
    [`submit, ${sizes.submitBatches10} batches × 10 (rows/s)`, "submit.rowsPerSecBatch10", 0],
    [`drain ${fmt(sizes.drainTotal)} (ops/s)`, "drain.opsPerSec", 0],
    ["peak RSS over the drain (MB)", "drain.peakRssMb", 0],
    [`latency p50, ${fmt(sizes.latencySamples)} samples (ms)`, "latency.p50Ms", 2],
    [`latency p99, ${fmt(sizes.latencySamples)} samples (ms)`, "latency.p99Ms", 2],
  ];
  for (const [title, path, digits] of rows) {
    if (!measured.has(path)) continue;
    log(`\n${title}`);
    for (const system of columns) {
      const s = median(path, system);
      if (s) log(`  ${system.padEnd(11)} ${cell(s, digits)}`);
    }
  }
  for (const [path, bySystem] of measured) {
    if (!["aggregation", "scale", "fairness"].some((prefix) => path.startsWith(prefix))) continue;
    const s = spread(bySystem.get("ours")!, digitsOf(path));
    log(`${path.padEnd(34)} ${cell(s, digitsOf(path))}`);
  }
  fairnessTargets(median);

  // Ratios of medians: ours (as the quick start makes it, and without prepared statements) ÷ the best peer at its recommended settings.
  log("\n=== ratios of medians: ours ÷ best peer (recommended settings) ===");
  const bestPeer = (path: string, pick: (a: number, b: number) => number) => {
    const values = PEERS.map((peer) => median(path, peer)?.median).filter(
      (v): v is number => v !== undefined,
    );
    return values.length ? values.reduce((a, b) => pick(a, b)) : undefined;
  };
  const ratios: Record<string, Record<string, number>> = {};
  for (const [name, path, higherIsBetter] of [
    ["drain", "drain.opsPerSec", true],
    ["submit batch1000", "submit.rowsPerSec", true],
    ["submit batch10", "submit.rowsPerSecBatch10", true],
    ["latency p50", "latency.p50Ms", false],
    ["latency p99", "latency.p99Ms", false],
  ] as const) {
    const peer = bestPeer(path, higherIsBetter ? Math.max : Math.min);
    if (peer === undefined) continue;
    for (const ours of ["ours", "oursNoPool"]) {
      const value = median(path, ours)?.median;
      if (value === undefined) continue;
      const ratio = round(value / peer, 2);
      (ratios[name] ??= {})[ours] = ratio;
      log(
        `  ${name.padEnd(17)} ${ours.padEnd(10)} ${String(ratio).padStart(5)} × (best peer ${fmt(peer, path.includes("Ms") ? 2 : 0)}` +
          `${higherIsBetter ? "; higher is better" : "; lower is better"})`,
      );
    }
    const rawValue = median(path, "raw")?.median;
    const oursValue = median(path, "ours")?.median;
    if (rawValue && oursValue && higherIsBetter) {
      log(`  ${name.padEnd(17)} ours ÷ raw  ${String(round(oursValue / rawValue, 2)).padStart(5)} ×`);
    }
  }
  bench.ratios = ratios;
  bench.failures = failures;
  if (failures.length) log(`\nFAILED steps (left out of the medians):\n  ${failures.join("\n  ")}`);
  log(
    `\ntook ${fmt((Date.now() - started) / 60_000, 1)} min; load average now ${loadavg()
      .map((n) => n.toFixed(2))
      .join(" ")}`,
  );
  console.log(`BENCH ${JSON.stringify(bench)}`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
