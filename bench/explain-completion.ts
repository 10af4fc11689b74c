// Why our group commit gets slower as more rows are held: EXPLAIN (ANALYZE, BUFFERS) of the
// completion statement (Store.finishOperations, as the worker sends it) for a group of `group`
// outcomes while `held` rows are processing, with the statistics a drain starts with (ANALYZE taken
// while nothing was processing) and again after ANALYZE. Not part of `npm run bench`.
//
//   npx tsx bench/explain-completion.ts [--held 2000] [--group 500] [--done 20000]
//
// `done` operations are claimed and completed first (the history a long drain leaves behind,
// before vacuum). Each EXPLAIN runs in a transaction that is rolled back.
import { parseArgs } from "node:util";
import { NO_INLINE } from "../src/store/statements/outbox";
import { finishOperations } from "../src/store/statements/transitions";
import { tablesIn } from "../src/store/tables";
import { withClient } from "./common";
import { createDatabase, databaseUrl, dropDatabase } from "./steps";
import { ourConnection, ours, ourStore } from "./systems";

const { values: args } = parseArgs({
  options: {
    held: { type: "string", default: "2000" },
    group: { type: "string", default: "500" },
    done: { type: "string", default: "20000" },
  },
});
const held = Number(args.held);
const group = Number(args.group);
const done = Number(args.done);
const database = "po_bench_explain";
const url = databaseUrl(database);

async function main(): Promise<void> {
  await createDatabase(database);
  const system = await ours(url);
  await system.setup();
  await system.submit((done + held) / 100, 100, "bench");
  await withClient(url, (client) => client.query("ANALYZE"));
  const connection = ourConnection(url);
  const store = ourStore(connection);
  // History: claimed and completed in groups of 16, as a drain does.
  for (let n = 0; n < done; n += 16) {
    const rows = await store.claimDue(16, "history", 30_000, ["bench"]);
    await store.finishOperations(
      rows.map((row) => ({
        id: row.id,
        lockToken: row.lockToken,
        finish: { to: "completed", result: null },
      })),
      NO_INLINE,
    );
  }
  // Held: claimed, not finished.
  const heldRows = [];
  while (heldRows.length < held)
    heldRows.push(
      ...(await store.claimDue(Math.min(1000, held - heldRows.length), "held", 600_000, ["bench"])),
    );
  const outcomes = heldRows.slice(0, group).map((row) => ({
    id: row.id,
    lockToken: row.lockToken,
    finish: { to: "completed" as const, result: null },
  }));
  const statement = finishOperations(tablesIn(), outcomes, { subscribers: ["bench"], leaseMs: 60_000 });
  await withClient(url, async (client) => {
    // The plan a prepared statement settles on (a client with statementNameGenerator): generic,
    // made from the statistics of when it was planned.
    await client.query("SET plan_cache_mode = force_generic_plan");
    await client.query(`PREPARE completion AS ${statement.text}`);
    await client.query("BEGIN");
    // EXECUTE takes its arguments as SQL: each value as a literal (arrays in array syntax).
    const text = (value: unknown): string =>
      Array.isArray(value)
        ? `{${value.map((e) => (e === null ? "NULL" : `"${text(e).replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`)).join(",")}}`
        : value instanceof Date
          ? value.toISOString()
          : typeof value === "object"
            ? JSON.stringify(value)
            : String(value);
    const literals = statement.values.map((value) =>
      value === null || value === undefined ? "NULL" : client.escapeLiteral(text(value)),
    );
    const generic = await client.query(
      `EXPLAIN (ANALYZE, BUFFERS) EXECUTE completion(${literals.join(", ")})`,
    );
    await client.query("ROLLBACK");
    await client.query("RESET plan_cache_mode");
    console.log(
      `\n=== completion of ${group} outcomes, ${held} held, ${done} done before; generic plan (prepared)`,
    );
    for (const row of generic.rows) console.log(row["QUERY PLAN"]);
    for (const when of ["statistics from before the drain (nothing processing)", "after ANALYZE"]) {
      if (when === "after ANALYZE") await client.query("ANALYZE");
      await client.query("BEGIN");
      const { rows } = await client.query(`EXPLAIN (ANALYZE, BUFFERS) ${statement.text}`, statement.values);
      await client.query("ROLLBACK");
      console.log(`\n=== completion of ${group} outcomes, ${held} held, ${done} done before; ${when}`);
      for (const row of rows) console.log(row["QUERY PLAN"]);
    }
  });
  await connection.close();
  await system.close();
  await dropDatabase(database);
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
