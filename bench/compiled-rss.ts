// Peak RSS of a worker process running compiled JavaScript, with and without the pool given to the
// module: what a deployed worker holds, without the tsx loader every `npm run bench` process runs
// under (about 35 MB). Not part of `npm run bench`. A third row runs the pooled worker with V8's
// young generation capped (`node --max-semi-space-size=4`): the live heap in the middle of a drain
// is about 17 MB (a heap snapshot), and most of the peak is V8's young generation (grown to 2 × 16
// MB under this allocation rate) and old-generation garbage between major collections.
//
//   npm run build && npx tsx bench/compiled-rss.ts [--total 100000] [--runs 3]
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { analyzeAndCheckpoint } from "./common";
import { median } from "./stats";
import { createDatabase, databaseUrl, dropDatabase } from "./steps";
import { ours } from "./systems";

const { values: args } = parseArgs({
  options: { total: { type: "string", default: "100000" }, runs: { type: "string", default: "3" } },
});
const total = Number(args.total);
const database = "po_bench_compiled_rss";
const url = databaseUrl(database);

async function main(): Promise<void> {
  const results: Record<string, { peakRssMb: number; opsPerSec: number }[]> = {
    pool: [],
    nopool: [],
    "pool --max-semi-space-size=4": [],
  };
  for (let run = 1; run <= Number(args.runs); run++) {
    for (const mode of Object.keys(results)) {
      await createDatabase(database);
      const seeder = await ours(url);
      await seeder.setup();
      await seeder.submit(total / 100, 100, "bench");
      await seeder.close();
      await analyzeAndCheckpoint(url);
      const [client, ...nodeFlags] = mode.split(" ");
      const worker = [join(__dirname, "compiled-worker.mjs"), url, String(total), client!];
      const line = execFileSync("node", [...nodeFlags, ...worker], { encoding: "utf8" });
      const result = JSON.parse(line) as { peakRssMb: number; opsPerSec: number };
      console.log(`run ${run} ${mode}: ${line.trim()}`);
      results[mode]!.push(result);
      await dropDatabase(database);
    }
  }
  for (const [mode, rows] of Object.entries(results)) {
    console.log(
      `${mode}: peak RSS median ${median(rows.map((r) => r.peakRssMb))} MB, drain median ${median(rows.map((r) => r.opsPerSec))} ops/s`,
    );
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
