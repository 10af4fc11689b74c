// Where a small submit spends its time: not part of `npm run bench`, a tool for whoever optimises it.
//
//   npx tsx bench/profile-submit.ts [--batches 2000] [--size 10] [--no-pool] [--cpuprofile FILE]
//
// On a database of its own (DATABASE_URL names the server): sets ours up as the bench does, a
// warm-up, ANALYZE, then `batches` submits of `size` children one after another. Prints the time
// per submit, the part of it spent in each Store call (as the service saw them: pool wait, round
// trip and execution) and the rest (validation, planning, the client's own work, inline delivery);
// with --cpuprofile, the self time of the submits by the package the code comes from.
import { parseArgs } from "node:util";
import { Store } from "../src/store/store";
import { analyzeAndCheckpoint, instrument } from "./common";
import { withCpuProfile } from "./cpu-profile";
import { median, round } from "./stats";
import { createDatabase, databaseUrl, dropDatabase } from "./steps";
import { ours } from "./systems";

const { values: args } = parseArgs({
  options: {
    batches: { type: "string", default: "2000" },
    size: { type: "string", default: "10" },
    "no-pool": { type: "boolean", default: false },
    cpuprofile: { type: "string" },
  },
});
const batches = Number(args.batches);
const size = Number(args.size);
const database = "po_bench_profile_submit";
const url = databaseUrl(database);

async function main(): Promise<void> {
  await createDatabase(database);
  const system = await ours(url, !args["no-pool"]);
  await system.setup();
  await system.submit(20, size, "bench");
  await analyzeAndCheckpoint(url);

  const probe = instrument(Store.prototype, ["insertBatch", "settleHolds", "markDelivered"]);
  const cpu = process.cpuUsage();
  const started = performance.now();
  await withCpuProfile(args.cpuprofile, `${batches} submits`, 100, () =>
    system.submit(batches, size, "bench"),
  );
  const elapsedMs = performance.now() - started;
  const cpuUsed = process.cpuUsage(cpu);
  probe.restore();

  const perSubmit = (ms: number) => round(ms / batches, 3);
  console.log(
    `\n${batches} submits of ${size}: ${round((batches * size * 1000) / elapsedMs, 0)} rows/s, ` +
      `${perSubmit(elapsedMs)} ms per submit; process CPU ${perSubmit((cpuUsed.user + cpuUsed.system) / 1000)} ms per submit`,
  );
  let inStore = 0;
  for (const [name, times] of Object.entries(probe.ms)) {
    const total = times.reduce((a, b) => a + b, 0);
    inStore += total;
    console.log(
      `  ${name.padEnd(14)} ${String(probe.calls[name]).padStart(6)} calls  ${perSubmit(total)} ms per submit (median ${round(median(times), 3)} ms)`,
    );
  }
  console.log(`  everything else        ${perSubmit(elapsedMs - inStore)} ms per submit`);
  await system.close(); // before the forced drop, which would kill the pool's connections under it
  await dropDatabase(database);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
