// Capacity: how the drain scales with worker processes on one PostgreSQL, and what each operation
// costs the database's CPU — the number that says how many ops/s a PostgreSQL core carries.
// Not part of `npm run bench` (it measures ours alone, against itself).
//
//   npx tsx bench/capacity.ts [--processes 1,2,4] [--total 60000] [--runs 3]
//
// Per (processes, run): a fresh database seeded with `total` due operations (batches of 100, by a
// separate process), ANALYZE and CHECKPOINT, then N worker processes (bench/capacity-worker.ts,
// defaults, concurrency 16 each) are built, started together, and the drain is timed until the
// database counts every operation completed. CPU is read from /proc: the PostgreSQL server's
// processes (all of them: backends, WAL writer, checkpointer) and the worker processes, over the
// timed drain only.
import { spawn, type ChildProcess } from "node:child_process";
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import {
  analyzeAndCheckpoint,
  benchScript,
  cpuSeconds,
  postgresCpuSeconds,
  sleep,
  withClient,
} from "./common";
import { createDatabase, databaseUrl, dropDatabase, step } from "./steps";
import { median, round } from "./stats";

const { values: args } = parseArgs({
  options: {
    processes: { type: "string", default: "1,2,4" },
    total: { type: "string", default: "60000" },
    runs: { type: "string", default: "3" },
  },
});
const total = Number(args.total);
const runs = Number(args.runs);
const DATABASE = "po_bench_capacity";

function startWorker(url: string): { child: ChildProcess; ready: Promise<void> } {
  const worker = benchScript("capacity-worker");
  const child = spawn(process.execPath, [...worker.execArgv, worker.file], {
    env: { ...process.env, BENCH_URL: url },
    stdio: ["pipe", "pipe", "inherit"],
  });
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout!.on("data", (chunk: Buffer) => chunk.toString().includes("READY") && resolve());
    child.once("exit", (code) => reject(new Error(`a worker process exited (${code}) before READY`)));
  });
  return { child, ready };
}

async function drain(
  processes: number,
): Promise<{ opsPerSec: number; pgCpuMsPerOp: number; workerCpuMsPerOp: number }> {
  await createDatabase(DATABASE);
  const url = databaseUrl(DATABASE);
  try {
    await step(DATABASE, "ours", "seed", { total, batch: 100 });
    await analyzeAndCheckpoint(url);
    const workers = Array.from({ length: processes }, () => startWorker(url));
    await Promise.all(workers.map((worker) => worker.ready));
    const pids = new Set(workers.map((worker) => worker.child.pid!));
    const workerCpu = () => cpuSeconds((pid) => pids.has(pid));
    const pgBefore = postgresCpuSeconds();
    const workersBefore = workerCpu();
    const started = performance.now();
    for (const worker of workers) worker.child.stdin!.write("go\n");
    await withClient(url, async (client) => {
      for (;;) {
        const { rows } = await client.query(
          `SELECT count(*)::int AS n FROM operations WHERE type = 'bench' AND status = 'completed'`,
        );
        if (rows[0].n >= total) return;
        await sleep(50);
      }
    });
    const seconds = (performance.now() - started) / 1000;
    const pgSeconds = postgresCpuSeconds() - pgBefore;
    const workerSeconds = workerCpu() - workersBefore;
    await Promise.all(
      workers.map(
        ({ child }) =>
          new Promise<void>((resolve) => (child.once("exit", () => resolve()), child.kill("SIGTERM"))),
      ),
    );
    return {
      opsPerSec: total / seconds,
      pgCpuMsPerOp: (pgSeconds * 1000) / total,
      workerCpuMsPerOp: (workerSeconds * 1000) / total,
    };
  } finally {
    await dropDatabase(DATABASE);
  }
}

async function main(): Promise<void> {
  const counts = args.processes!.split(",").map(Number);
  console.log(
    `capacity: drain of ${total.toLocaleString("en")} per run, ${runs} runs, ${cpus().length} CPUs on this host`,
  );
  const results = new Map<number, { opsPerSec: number[]; pg: number[]; worker: number[] }>();
  for (let run = 1; run <= runs; run++) {
    for (const processes of counts) {
      const result = await drain(processes);
      const entry = results.get(processes) ?? { opsPerSec: [], pg: [], worker: [] };
      entry.opsPerSec.push(result.opsPerSec);
      entry.pg.push(result.pgCpuMsPerOp);
      entry.worker.push(result.workerCpuMsPerOp);
      results.set(processes, entry);
      console.log(
        `run ${run}/${runs}  ${processes} worker process(es): ${Math.round(result.opsPerSec).toLocaleString("en")} ops/s; ` +
          `PostgreSQL CPU ${round(result.pgCpuMsPerOp, 3)} ms/op, workers' CPU ${round(result.workerCpuMsPerOp, 3)} ms/op`,
      );
    }
  }
  console.log("\nmedians:");
  const summary: Record<string, unknown> = {};
  for (const [processes, entry] of results) {
    const pg = median(entry.pg);
    const line = {
      opsPerSec: Math.round(median(entry.opsPerSec)),
      pgCpuMsPerOp: round(pg, 3),
      workerCpuMsPerOp: round(median(entry.worker), 3),
      opsPerSecPerPostgresCore: Math.round(1000 / pg),
    };
    summary[`processes${processes}`] = line;
    console.log(
      `  ${processes} process(es): ${line.opsPerSec.toLocaleString("en")} ops/s; PostgreSQL ${line.pgCpuMsPerOp} ms CPU per op ` +
        `(${line.opsPerSecPerPostgresCore.toLocaleString("en")} ops/s per PostgreSQL core if the database were the only limit); ` +
        `workers ${line.workerCpuMsPerOp} ms CPU per op`,
    );
  }
  console.log(`CAPACITY ${JSON.stringify(summary)}`);
}

void main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
