// One scenario of one system, in its own process: `RESULT {json}` on its last line.
import { aggregationCost, graphile, ours, pgboss, pgbossFlowSubmit, raw, type System } from "./systems";

const url = process.env.BENCH_URL!;
const system = process.env.BENCH_SYSTEM!;
const scenario = process.env.BENCH_SCENARIO!;
const params = JSON.parse(process.env.BENCH_PARAMS ?? "{}");

const factories: Record<string, (url: string) => Promise<System>> = { ours, raw, pgboss, graphile };

function report(result: Record<string, unknown>): void {
  console.log(`RESULT ${JSON.stringify({ ...result, maxRssMb: process.resourceUsage().maxRSS / 1024 })}`);
}

async function main(): Promise<void> {
  if (scenario === "aggregation")
    return report({ perChildMs: await aggregationCost(url, params.batchSize, params.children) });
  if (scenario === "submit" && system === "pgbossFlow")
    return pgbossFlowSubmit(url, params.batches, params.size);
  const target = await factories[system]!(url);
  try {
    if (scenario === "submit") {
      const started = performance.now();
      await target.submit(params.batches, params.size);
      report({ ms: performance.now() - started, settings: target.settings });
    } else if (scenario === "drain") {
      report({ ms: await target.drain(params), settings: target.settings });
    } else if (scenario === "latency") {
      report({ samples: await target.latency(params.count), settings: target.settings });
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
