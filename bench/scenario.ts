// One step of one system, in its own process: `RESULT {json}` on stdout. Diagnostics and the
// systems' own warnings go to stderr. Started by run.ts (and sweep.ts) with:
//   BENCH_URL, BENCH_SYSTEM, BENCH_SCENARIO, BENCH_PARAMS (JSON)
import { analyzeAndCheckpoint, processPeakRssMb, RssSampler } from "./common";
import { fairnessRun, seedBigTenant, type FairnessParams } from "./fairness";
import { aggregationCost, bigBatch, buildScaleDatabase, scaleRun } from "./ours-only";
import { FACTORIES } from "./systems";

const url = process.env.BENCH_URL!;
const system = process.env.BENCH_SYSTEM!;
const scenario = process.env.BENCH_SCENARIO!;
const params = JSON.parse(process.env.BENCH_PARAMS ?? "{}") as Record<string, number>;

function report(result: Record<string, unknown>): void {
  console.log(`RESULT ${JSON.stringify({ ...result, processPeakRssMb: processPeakRssMb() })}`);
}

async function main(): Promise<void> {
  if (scenario === "aggregation") {
    return report({ perChildMs: await aggregationCost(url, params.batchSize!, params.children!) });
  }
  if (scenario === "scaleTemplate") {
    const started = performance.now();
    await buildScaleDatabase(url, params.rows!);
    return report({ ms: performance.now() - started });
  }
  if (scenario === "scale") return report({ ...(await scaleRun(url, params.total!, params.warmup!)) });
  if (scenario === "batch100k") return report({ ...(await bigBatch(url, params.children!)) });
  if (scenario === "fairnessSeed") {
    await seedBigTenant(url, params.total!, params.batch!);
    return report({});
  }
  if (scenario === "fairness") {
    return report({ ...(await fairnessRun(url, params as unknown as FairnessParams)) });
  }

  const target = await FACTORIES[system]!(url);
  try {
    await target.setup();
    if (scenario === "submit") {
      await analyzeAndCheckpoint(url);
      // Untimed warm-up: connections, prepared statements, JIT — a few submits of the same size.
      await target.submit(params.warmBatches!, params.size!, "warm");
      const started = performance.now();
      await target.submit(params.batches!, params.size!, "bench");
      report({ ms: performance.now() - started });
    } else if (scenario === "seed") {
      // In its own process, so that the drain's process (and its RSS) holds only the worker.
      await target.submit(params.total! / params.batch!, params.batch!, "bench");
      report({});
    } else if (scenario === "drain") {
      // Untimed warm-up: submit and drain a small batch of another job type, then ANALYZE.
      await target.submit(params.warm! / 100, 100, "warm");
      await target.drain(params.warm!, "warm");
      await target.verifyDrained(params.warm!, "warm");
      await analyzeAndCheckpoint(url);
      global.gc?.();
      const rss = new RssSampler().start();
      const result = await target.drain(params.total!, "bench");
      const peakRssMb = rss.stop();
      await target.verifyDrained(params.total!, "bench");
      report({ ...result, peakRssMb });
    } else if (scenario === "latency") {
      await analyzeAndCheckpoint(url);
      const samples = await target.latency(params.warmup! + params.count!);
      report({ samples: samples.slice(params.warmup!) });
    } else {
      throw new Error(`unknown scenario ${scenario}`);
    }
  } finally {
    await target.close();
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
