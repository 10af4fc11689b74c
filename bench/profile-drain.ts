// Where our drain spends its time: not part of `npm run bench`, a tool for whoever optimises it.
//
//   npx tsx bench/profile-drain.ts [--total 20000] [--no-pool] [--worker '{"batchSize":100}'] [--pgss]
//     [--explain] [--keep] [--system graphile] [--remote-subscriber]
//
// On a database of its own (DATABASE_URL names the server; default 127.0.0.1:5432): seeds `total`
// operations through the API, warms up, ANALYZEs, then drains them with ours and prints, per Store
// method, the calls per operation and their time as the worker saw it, the size of each group
// commit, the CPU time of the worker and of the PostgreSQL processes (when the server runs on this
// host), the WAL written meanwhile (read back with pg_walinspect: bytes and records per op, by
// kind and by relation), and — with --pgss, on a server with pg_stat_statements preloaded — the
// statements the database ran, by total time. --explain prints EXPLAIN (ANALYZE, BUFFERS) of one
// claim and one group commit, each rolled back. --cpuprofile FILE writes a CPU profile of the timed drain only
// (open it in Chrome DevTools) and prints the self time by where the code comes from. --system runs
// another system of the bench (systems.ts: graphile, pgboss, raw, …) the same way, for its CPU
// times beside ours; the Store and EXPLAIN parts are ours only. --remote-subscriber registers a
// subscriber that no process here has, as an application with a separate delivering process does.
import { parseArgs } from "node:util";
import { Client } from "pg";
import { claimDue } from "../src/store/statements/claims";
import { finishOperations } from "../src/store/statements/transitions";
import { Store } from "../src/store/store";
import { tablesIn } from "../src/store/tables";
import { analyzeAndCheckpoint, instrument, postgresCpuSeconds, RssSampler, withClient } from "./common";
import { median, percentile, round } from "./stats";
import { createDatabase, databaseUrl, dropDatabase, serverUrl } from "./steps";
import { FACTORIES } from "./systems";
import { withCpuProfile } from "./cpu-profile";

const { values: args } = parseArgs({
  options: {
    total: { type: "string", default: "20000" },
    "no-pool": { type: "boolean", default: false },
    worker: { type: "string" },
    pgss: { type: "boolean", default: false },
    explain: { type: "boolean", default: false },
    keep: { type: "boolean", default: false },
    cpuprofile: { type: "string" },
    system: { type: "string", default: "ours" },
    "remote-subscriber": { type: "boolean", default: false },
  },
});
const total = Number(args.total);
/** --no-pool is ours without the pool (systems.ts: oursNoPool). */
const systemName = args["no-pool"] ? "oursNoPool" : args.system;
const isOurs = systemName === "ours" || systemName === "oursNoPool";
const database = "po_bench_profile";
const url = databaseUrl(database);
if (args.worker) process.env.BENCH_OURS_WORKER = args.worker;

const STORE_METHODS = [
  "claimDue",
  "finishOperations",
  "settleHolds",
  "markDelivered",
  "markFailed",
  "claimDeliveries",
  "extendDeliveries",
  "heartbeat",
  "reapExpiredLeases",
  "reconcileBatches",
  "registerSubscribers",
  "insertBatch",
  "insertOperation",
];

/** The SQL text and values of a Prisma `sql` template, for EXPLAIN through pg. */
function text(statement: { text: string; values: unknown[] }): { sql: string; values: unknown[] } {
  return { sql: statement.text, values: statement.values };
}

async function explain(client: Client, label: string, statement: { sql: string; values: unknown[] }) {
  await client.query("BEGIN");
  try {
    const { rows } = await client.query(`EXPLAIN (ANALYZE, BUFFERS) ${statement.sql}`, statement.values);
    console.log(`\n--- EXPLAIN ANALYZE: ${label}`);
    for (const row of rows) console.log(row["QUERY PLAN"]);
  } finally {
    await client.query("ROLLBACK");
  }
}

/** The server's WAL position now (pg_lsn text). */
async function walPosition(url: string): Promise<string> {
  return withClient(
    url,
    async (client) => (await client.query("SELECT pg_current_wal_lsn() AS lsn")).rows[0].lsn,
  );
}

/**
 * The WAL the drain wrote (every database of the server), read back from the WAL itself with
 * pg_walinspect: bytes per operation, and records per operation by kind (heap insert, update,
 * lock, B-tree leaf insert, commit, …) — what each operation costs the disk, and why.
 */
async function printWal(url: string, from: string, to: string, total: number): Promise<void> {
  await withClient(url, async (client) => {
    await client.query("CREATE EXTENSION IF NOT EXISTS pg_walinspect");
    const { rows } = await client.query(
      `SELECT "resource_manager/record_type" AS kind, count::float8 AS count, combined_size::float8 AS bytes,
              fpi_size::float8 AS fpi_bytes
       FROM pg_get_wal_stats($1::pg_lsn, $2::pg_lsn, true) WHERE count > 0 ORDER BY combined_size DESC`,
      [from, to],
    );
    const byRelation = await client.query(
      `SELECT coalesce(c.relname, '(other database)') AS relation, w.record_type AS kind, count(*)::float8 AS count
       FROM pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn) w
       CROSS JOIN LATERAL (SELECT (regexp_match(w.block_ref, 'rel \\d+/(\\d+)/(\\d+)')) AS m) ref
       LEFT JOIN pg_database d ON d.oid = ref.m[1]::oid AND d.datname = current_database()
       LEFT JOIN pg_class c ON d.oid IS NOT NULL AND c.relfilenode = ref.m[2]::oid
       WHERE w.resource_manager IN ('Heap', 'Btree')
       GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 16`,
      [from, to],
    );
    const sum = (key: "count" | "bytes" | "fpi_bytes") => rows.reduce((n, row) => n + Number(row[key]), 0);
    console.log(
      `\nWAL written during the drain (pg_walinspect, every database of the server): ` +
        `${round(sum("bytes") / total, 0)} bytes and ${round(sum("count") / total, 1)} records per op ` +
        `(full-page images ${round((100 * sum("fpi_bytes")) / Math.max(sum("bytes"), 1), 0)} % of the bytes)`,
    );
    console.log("record kind                   per op   bytes per op");
    for (const row of rows.slice(0, 14)) {
      console.log(
        `${String(row.kind).padEnd(28)} ${String(round(row.count / total, 2)).padStart(7)} ` +
          `${String(round(row.bytes / total, 0)).padStart(14)}`,
      );
    }
    console.log("\nheap and B-tree records by relation        kind            per op");
    for (const row of byRelation.rows) {
      console.log(
        `${String(row.relation).padEnd(43)} ${String(row.kind).padEnd(14)} ${String(round(row.count / total, 2)).padStart(7)}`,
      );
    }
  });
}

async function main(): Promise<void> {
  await createDatabase(database);
  const factory = FACTORIES[systemName];
  if (!factory) throw new Error(`--system ${systemName}: not one of ${Object.keys(FACTORIES).join(", ")}`);
  const system = await factory(url);
  await system.setup();
  if (args["remote-subscriber"]) {
    // A subscriber no process here has: every event also gets a delivery due at once, for relays
    // elsewhere, and every statement that writes events notifies them.
    await withClient(url, (client) =>
      client.query(
        `INSERT INTO operation_subscribers (name, topics) VALUES ('elsewhere', '{}') ON CONFLICT DO NOTHING`,
      ),
    );
  }
  console.log(`seeding ${total} operations (${total / 100} batches of 100) through submitBatch…`);
  await system.submit(total / 100, 100, "bench");
  await system.submit(10, 100, "warm");
  await system.drain(1000, "warm");
  await analyzeAndCheckpoint(url);

  if (args.explain && isOurs) {
    await withClient(url, async (client) => {
      const tables = tablesIn();
      const batchSize = Number(JSON.parse(args.worker ?? "{}").batchSize ?? 100);
      await explain(
        client,
        `claim of ${batchSize}`,
        text(claimDue(tables, batchSize, "explain", 30_000, ["bench"])),
      );
      // A group commit of `batchSize` outcomes. The claim commits first, as a worker's does: claimed
      // in the explain's own transaction, the rows would be ones this transaction wrote, for which
      // PostgreSQL runs the foreign-key check of every updated row (a third of the time it showed).
      const claim = text(claimDue(tables, batchSize, "explain", 30_000, ["bench"]));
      const claimed = await client.query(claim.sql, claim.values);
      await client.query("BEGIN");
      const outcomes = claimed.rows.map((row: { id: string; lockToken: string }) => ({
        id: row.id,
        lockToken: row.lockToken,
        finish: { to: "completed" as const, result: null },
      }));
      const inline = { subscribers: ["bench"], leaseMs: 60_000 };
      const statement = text(finishOperations(tables, outcomes, inline));
      const { rows } = await client.query(`EXPLAIN (ANALYZE, BUFFERS) ${statement.sql}`, statement.values);
      console.log(`\n--- EXPLAIN ANALYZE: group commit of ${outcomes.length} outcomes (inline subscriber)`);
      for (const row of rows) console.log(row["QUERY PLAN"]);
      await client.query("ROLLBACK");
      // Hand the claimed rows back untouched, for the drain.
      await client.query(
        `UPDATE operations SET status = 'pending', locked_by = NULL, locked_until = NULL, lock_token = NULL,
                attempts = attempts - 1, started_at = NULL
         WHERE id = ANY($1::uuid[])`,
        [outcomes.map((outcome) => outcome.id)],
      );
    });
  }

  if (args.pgss) {
    await withClient(serverUrl, (client) => client.query("SELECT pg_stat_statements_reset()"));
  }
  const probe = instrument(Store.prototype, STORE_METHODS);
  const groupSizes: number[] = [];
  const finish = Store.prototype.finishOperations;
  Store.prototype.finishOperations = function (this: Store, outcomes, inline) {
    groupSizes.push(outcomes.length);
    return finish.call(this, outcomes, inline);
  };
  const claimSizes: number[] = [];
  const claim = Store.prototype.claimDue;
  Store.prototype.claimDue = async function (this: Store, ...callArgs: Parameters<Store["claimDue"]>) {
    const rows = await claim.apply(this, callArgs);
    claimSizes.push(rows.length);
    return rows;
  };
  const rss = new RssSampler().start();
  const cpu = process.cpuUsage();
  const databaseCpuBefore = postgresCpuSeconds();
  const walBefore = await walPosition(url);
  const result = await withCpuProfile(args.cpuprofile, "the timed drain", 200, () =>
    system.drain(total, "bench"),
  );
  const cpuMs = process.cpuUsage(cpu);
  const databaseCpuAfter = postgresCpuSeconds();
  const walAfter = await walPosition(url);
  const peakRss = rss.stop();
  await system.verifyDrained(total, "bench");
  probe.restore();

  console.log(
    `\ndrain of ${total}: ${round(total / (result.ms / 1000), 0)} ops/s; handlers done at ${round(result.handlersMs, 0)} ms, ` +
      `all recorded at ${round(result.ms, 0)} ms; worker process CPU ${round((cpuMs.user + cpuMs.system) / 1000, 0)} ms ` +
      `(${round((cpuMs.user + cpuMs.system) / 1000 / total, 3)} ms per op); peak RSS ${round(peakRss, 0)} MB`,
  );
  const databaseMs = (databaseCpuAfter - databaseCpuBefore) * 1000;
  if (databaseMs > 0) {
    console.log(
      `PostgreSQL processes on this host meanwhile: CPU ${round(databaseMs, 0)} ms ` +
        `(${round(databaseMs / total, 3)} ms per op; from /proc, every database of the server)`,
    );
  }
  console.log(
    "\nStore calls during the timed drain (time as the worker saw it: pool wait + round trip + execution):",
  );
  console.log("method                 calls  per op   total ms   median ms  p95 ms");
  for (const name of STORE_METHODS) {
    const calls = probe.calls[name];
    if (!calls) continue;
    const ms = probe.ms[name] ?? [];
    console.log(
      `${name.padEnd(20)} ${String(calls).padStart(7)} ${String(round(calls / total, 4)).padStart(7)} ` +
        `${String(
          round(
            ms.reduce((a, b) => a + b, 0),
            0,
          ),
        ).padStart(10)} ${String(round(median(ms), 2)).padStart(11)} ` +
        `${String(round(percentile(ms, 95), 2)).padStart(7)}`,
    );
  }
  if (groupSizes.length) {
    console.log(
      `group commits: ${groupSizes.length}, outcomes per commit median ${median(groupSizes)}, ` +
        `max ${Math.max(...groupSizes)}, mean ${round(groupSizes.reduce((a, b) => a + b, 0) / groupSizes.length, 1)}`,
    );
  }
  if (claimSizes.length) {
    console.log(
      `claims: ${claimSizes.length}, rows per claim median ${median(claimSizes)}, ` +
        `mean ${round(claimSizes.reduce((a, b) => a + b, 0) / claimSizes.length, 1)}, empty ${claimSizes.filter((n) => n === 0).length}`,
    );
  }

  if (args.pgss) {
    await withClient(serverUrl, async (client) => {
      const { rows } = await client.query(
        `SELECT calls, round(total_exec_time::numeric, 0) AS exec_ms, round(total_plan_time::numeric, 0) AS plan_ms,
                round(mean_exec_time::numeric, 3) AS mean_ms, rows, shared_blks_hit + shared_blks_read AS blocks,
                wal_records, left(regexp_replace(query, '\\s+', ' ', 'g'), 110) AS query
         FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
         WHERE d.datname = $1
         ORDER BY total_exec_time + total_plan_time DESC LIMIT 15`,
        [database],
      );
      const all = await client.query(
        `SELECT sum(calls)::int AS calls, round(sum(total_exec_time)::numeric, 0) AS exec_ms,
                round(sum(total_plan_time)::numeric, 0) AS plan_ms, sum(wal_records)::bigint AS wal_records,
                sum(wal_bytes)::bigint AS wal_bytes
         FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1`,
        [database],
      );
      const sum = all.rows[0];
      console.log(
        `\npg_stat_statements over the drain: ${sum.calls} statements (${round(sum.calls / total, 2)} per op), ` +
          `exec ${sum.exec_ms} ms + plan ${sum.plan_ms} ms of database time (${round((Number(sum.exec_ms) + Number(sum.plan_ms)) / total, 3)} ms per op), ` +
          `${round(Number(sum.wal_bytes) / total, 0)} WAL bytes per op`,
      );
      console.log("calls  exec_ms  plan_ms  mean_ms    rows  blocks  wal_recs  query");
      for (const row of rows) {
        console.log(
          `${String(row.calls).padStart(5)} ${String(row.exec_ms).padStart(8)} ${String(row.plan_ms).padStart(8)} ` +
            `${String(row.mean_ms).padStart(8)} ${String(row.rows).padStart(7)} ${String(row.blocks).padStart(7)} ` +
            `${String(row.wal_records).padStart(9)}  ${row.query}`,
        );
      }
    });
  }
  // (pg_walinspect may be missing, or need privileges this role lacks: then say so and go on)
  await printWal(url, walBefore, walAfter, total).catch((error: unknown) =>
    console.log(`\nWAL: could not read it back (${(error as Error).message})`),
  );
  await system.close();
  if (!args.keep) {
    await dropDatabase(database);
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
