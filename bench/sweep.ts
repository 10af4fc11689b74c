// How the values marked "best of bench/sweep.ts" in settings.ts were chosen: the drain of each
// system with each candidate setting, medians of `--runs` runs, interleaved. Not part of `npm run bench`.
//
//   npx tsx bench/sweep.ts [--system ours,pgboss,raw] [--total 20000] [--runs 3] [--plain]
import { parseArgs } from "node:util";
import { median, round } from "./stats";
import { fresh } from "./steps";

const { values: args } = parseArgs({
  options: {
    system: { type: "string", default: "ours,pgboss,raw" },
    total: { type: "string", default: "20000" },
    runs: { type: "string", default: "3" },
    timeout: { type: "string", default: "180" },
    /** Sweep `ours` without a pool (`oursNoPool`: the client alone) instead of as the quick start makes it. */
    plain: { type: "boolean", default: false },
    /** Only these candidates (a JSON array) instead of the system's list. */
    values: { type: "string" },
  },
});
const total = Number(args.total);
const runs = Number(args.runs);
const timeoutS = Number(args.timeout);

/** Candidates per system: the environment variable systems.ts reads, and its values. */
const CANDIDATES: Record<string, { system: string; env: string; values: unknown[] }> = {
  ours: {
    system: "ours",
    env: "BENCH_OURS_WORKER",
    // A claim takes at most the free slots (concurrency + prefetch − held), so batchSize above
    // concurrency + prefetch changes nothing.
    values: [
      {}, // the defaults
      { batchSize: 16, prefetch: 0 },
      { batchSize: 32, prefetch: 16 },
      { batchSize: 50, prefetch: 100 },
      { batchSize: 100, prefetch: 200 },
      { batchSize: 64, prefetch: 48 },
      { batchSize: 100, prefetch: 84 },
      { batchSize: 200, prefetch: 184 },
      { batchSize: 500, prefetch: 484 },
    ],
  },
  pgboss: {
    system: "pgboss",
    env: "BENCH_PGBOSS_WORK",
    values: [
      { batchSize: 16, localConcurrency: 1 },
      { batchSize: 16, localConcurrency: 4 },
      { batchSize: 50, localConcurrency: 2 },
      { batchSize: 100, localConcurrency: 2 },
      { batchSize: 100, localConcurrency: 4 },
      { batchSize: 200, localConcurrency: 2 },
      { batchSize: 200, localConcurrency: 4 },
      { batchSize: 500, localConcurrency: 2 },
      { batchSize: 250, localConcurrency: 4 },
      { batchSize: 1000, localConcurrency: 1 },
    ],
  },
  raw: { system: "raw", env: "BENCH_RAW_CONNECTIONS", values: [1, 2, 4, 6] },
};

async function main(): Promise<void> {
  for (const name of args.system!.split(",")) {
    const listed = CANDIDATES[name];
    if (!listed) throw new Error(`no candidates for ${name}`);
    const candidates = args.values ? { ...listed, values: JSON.parse(args.values) as unknown[] } : listed;
    const results = new Map<string, number[]>();
    for (let run = 1; run <= runs; run++) {
      for (const value of candidates.values) {
        const key = JSON.stringify(value);
        let opsPerSec = 0;
        let result: Record<string, unknown> = { ms: NaN };
        try {
          result = await fresh(
            name === "ours" && args.plain ? "oursNoPool" : candidates.system,
            "drain",
            { total, warm: 1000 },
            { seed: { total, batch: 100 }, env: { [candidates.env]: key }, timeoutMs: timeoutS * 1000 },
          );
          opsPerSec = total / (Number(result.ms) / 1000);
        } catch (error) {
          console.log(
            `${name} ${key}: failed or over ${timeoutS} s: ${(error as Error).message.split("\n")[0]}`,
          );
        }
        results.set(key, [...(results.get(key) ?? []), opsPerSec]);
        console.log(
          `${name} run ${run}/${runs} ${key}: ${round(opsPerSec, 0)} ops/s (all recorded at ${round(Number(result.ms), 0)} ms)`,
        );
      }
    }
    console.log(`\n${name}, drain of ${total}, median of ${runs}:`);
    const ranked = [...results].sort((a, b) => median(b[1]) - median(a[1]));
    for (const [key, values] of ranked) {
      console.log(
        `  ${key.padEnd(44)} ${String(round(median(values), 0)).padStart(7)} ops/s  (${values.map((v) => round(v, 0)).join(", ")})`,
      );
    }
    console.log();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
