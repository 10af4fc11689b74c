// EXPLAIN (ANALYZE, BUFFERS) of our claim statement (Store.claimDue, as the worker sends it) on an
// existing database, rolled back: e.g. one built by the scale scenario (bench/ours-only.ts,
// buildScaleDatabase) with 1M rows. Not part of `npm run bench`.
//
//   npx tsx bench/explain-claim.ts postgresql://…/database [limit]
import { Client } from "pg";
import { claimDue } from "../src/store/statements/claims";
import { tablesIn } from "../src/store/tables";

async function main(): Promise<void> {
  const client = new Client({ connectionString: process.argv[2] });
  await client.connect();
  const statement = claimDue(tablesIn(), Number(process.argv[3] ?? 16), "explain", 30_000, ["bench"]);
  // The first run warms the caches and the function's plan; the second is printed.
  for (const print of [false, true]) {
    await client.query("BEGIN");
    const { rows } = await client.query(`EXPLAIN (ANALYZE, BUFFERS) ${statement.text}`, statement.values);
    await client.query("ROLLBACK");
    if (print) for (const row of rows) console.log(row["QUERY PLAN"]);
  }
  await client.end();
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
