// `npm run bench [-- --quick] [-- --only ours,pgboss]`: every scenario against every system on the
// same PostgreSQL, in one run, side by side. Each (system, scenario) runs in a fresh process on a
// freshly created database. Prints a table, the ratios against the targets, and `BENCH {json}`.
import { spawnSync } from "node:child_process";
import { cpus } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Client } from "pg";

const { values: args } = parseArgs({
  options: { quick: { type: "boolean", default: false }, only: { type: "string" } },
});
const serverUrl = process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres";
const scale = args.quick ? 0.1 : 1;
const only = args.only?.split(",");
const wanted = (system: string) => !only || only.includes(system);

const sizes = {
  submitBatches: Math.max(5, Math.round(100 * scale)),
  drainTotal: Math.round(20_000 * scale),
  drainBatch: 100,
  concurrency: 16,
  latencyCount: Math.max(50, Math.round(500 * scale)),
  aggregationChildren: Math.round(10_000 * scale),
};

const LATENCY_WARMUP = 20;

function databaseUrl(name: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function admin<T>(fn: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: serverUrl });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

interface Result {
  ms?: number;
  samples?: number[];
  perChildMs?: number;
  maxRssMb: number;
  settings?: Record<string, unknown>;
}

async function runScenario(
  system: string,
  scenario: string,
  params: Record<string, number>,
): Promise<Result> {
  const database = `po_bench_${system.toLowerCase()}`;
  await admin(async (client) => {
    await client.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await client.query(`CREATE DATABASE ${database}`);
  });
  const child = spawnSync(process.execPath, ["--import", "tsx", join(__dirname, "scenario.ts")], {
    env: {
      ...process.env,
      BENCH_URL: databaseUrl(database),
      BENCH_SYSTEM: system,
      BENCH_SCENARIO: scenario,
      BENCH_PARAMS: JSON.stringify(params),
    },
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
    timeout: 5 * 60_000,
  });
  await admin((client) => client.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`));
  const line = child.stdout.split("\n").find((l) => l.startsWith("RESULT "));
  if (child.status !== 0 || !line) {
    throw new Error(`${system}/${scenario} failed (exit ${child.status}):\n${child.stderr}\n${child.stdout}`);
  }
  return JSON.parse(line.slice("RESULT ".length)) as Result;
}

function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;

async function main(): Promise<void> {
  const versions = await admin(
    async (client) => (await client.query("SHOW server_version")).rows[0].server_version,
  );
  const bench = {
    submit: { rowsPerSec: {} as Record<string, number>, rowsPerSecBatch10: {} as Record<string, number> },
    drain: { opsPerSec: {} as Record<string, number> },
    latency: { p50Ms: {} as Record<string, number>, p99Ms: {} as Record<string, number> },
    aggregation: { perChildMs: {} as Record<string, number> },
    memory: { peakRssMb: 0 },
    settings: { ...sizes, quick: args.quick, systems: {} as Record<string, unknown> },
    node: process.version,
    postgres: versions,
    cpus: cpus().length,
  };
  const log = (message: string) => console.log(message);
  log(
    `prisma-operations benchmark — node ${process.version}, PostgreSQL ${versions}, ${cpus().length} CPUs${args.quick ? " (quick)" : ""}`,
  );
  log(`sizes: ${JSON.stringify(sizes)}\n`);

  for (const size of [1000, 10]) {
    const batches = size === 1000 ? sizes.submitBatches : sizes.submitBatches * 10;
    for (const system of ["ours", "pgboss", "pgbossFlow", "graphile", "raw"]) {
      if (!wanted(system) && !(system === "pgbossFlow" && wanted("pgboss"))) continue;
      const result = await runScenario(system, "submit", { batches, size });
      const rowsPerSec = round((batches * size) / (result.ms! / 1000), 0);
      (size === 1000 ? bench.submit.rowsPerSec : bench.submit.rowsPerSecBatch10)[system] = rowsPerSec;
      if (result.settings) bench.settings.systems[system] = result.settings;
      log(
        `submit  ${String(size).padStart(4)}-job batches × ${batches}  ${system.padEnd(10)} ${String(rowsPerSec).padStart(8)} rows/s`,
      );
    }
  }
  for (const system of ["ours", "pgboss", "graphile", "raw"]) {
    if (!wanted(system)) continue;
    const result = await runScenario(system, "drain", {
      total: sizes.drainTotal,
      batchSize: sizes.drainBatch,
      concurrency: sizes.concurrency,
    });
    bench.drain.opsPerSec[system] = round(sizes.drainTotal / (result.ms! / 1000), 0);
    if (system === "ours") bench.memory.peakRssMb = round(result.maxRssMb);
    log(
      `drain   ${sizes.drainTotal} ops, concurrency ${sizes.concurrency}  ${system.padEnd(10)} ${String(bench.drain.opsPerSec[system]).padStart(8)} ops/s`,
    );
  }
  for (const system of ["ours", "pgboss", "graphile"]) {
    if (!wanted(system)) continue;
    // The first runs warm up connections and JIT for every system alike; they are not counted.
    const result = await runScenario(system, "latency", { count: sizes.latencyCount + LATENCY_WARMUP });
    const samples = result.samples!.slice(LATENCY_WARMUP);
    bench.latency.p50Ms[system] = round(percentile(samples, 50), 2);
    bench.latency.p99Ms[system] = round(percentile(samples, 99), 2);
    log(
      `latency submit→handler start × ${sizes.latencyCount}  ${system.padEnd(10)} p50 ${bench.latency.p50Ms[system]} ms, p99 ${bench.latency.p99Ms[system]} ms`,
    );
  }
  if (wanted("ours")) {
    for (const batchSize of [10, sizes.aggregationChildren]) {
      const result = await runScenario("ours", "aggregation", {
        batchSize,
        children: sizes.aggregationChildren,
      });
      bench.aggregation.perChildMs[batchSize === 10 ? "batch10" : "batch10000"] = round(
        result.perChildMs!,
        3,
      );
    }
    log(
      `aggregation per-child completion: batch of 10 ${bench.aggregation.perChildMs.batch10} ms, batch of ${sizes.aggregationChildren} ${bench.aggregation.perChildMs.batch10000} ms`,
    );
  }

  const best = (values: Record<string, number>, keys: string[], pick: (a: number, b: number) => number) =>
    keys
      .map((key) => values[key])
      .filter((v): v is number => v !== undefined)
      .reduce((a, b) => pick(a, b));
  const ratios: Record<string, string> = {};
  if (bench.submit.rowsPerSec.ours && bench.submit.rowsPerSec.raw) {
    const peer = best(bench.submit.rowsPerSec, ["pgboss", "pgbossFlow", "graphile"], Math.max);
    ratios["submit vs raw (target ≥ 0.5)"] = String(
      round(bench.submit.rowsPerSec.ours / bench.submit.rowsPerSec.raw, 2),
    );
    ratios["submit vs best peer (target ≥ 1.5)"] = String(round(bench.submit.rowsPerSec.ours / peer, 2));
  }
  if (bench.drain.opsPerSec.ours && bench.drain.opsPerSec.raw) {
    const peer = best(bench.drain.opsPerSec, ["pgboss", "graphile"], Math.max);
    ratios["drain vs best peer (target ≥ 1.0)"] = String(round(bench.drain.opsPerSec.ours / peer, 2));
    ratios["drain vs raw (target ≥ 0.5)"] = String(
      round(bench.drain.opsPerSec.ours / bench.drain.opsPerSec.raw, 2),
    );
  }
  if (bench.latency.p99Ms.ours) {
    const peer = best(bench.latency.p99Ms, ["pgboss", "graphile"], Math.min);
    ratios["p99 latency vs best peer (target < 1.0)"] = String(round(bench.latency.p99Ms.ours / peer, 2));
  }
  if (bench.aggregation.perChildMs.batch10) {
    ratios["aggregation large/small (target ≤ 1.5)"] = String(
      round(bench.aggregation.perChildMs.batch10000! / bench.aggregation.perChildMs.batch10, 2),
    );
  }
  log("\nratios (ours ÷ other):");
  for (const [name, value] of Object.entries(ratios)) log(`  ${name.padEnd(42)} ${value}`);
  log(`peak RSS of our worker process over the drain: ${bench.memory.peakRssMb} MB`);
  log(`\nsettings: ${JSON.stringify(bench.settings.systems)}`);
  console.log(`BENCH ${JSON.stringify(bench)}`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
