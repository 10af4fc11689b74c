// Scenarios only ours has: the cost of aggregation per child, behaviour at scale (10k vs 1M rows
// already in the tables), and one submit of a 100,000-child batch.
import { createOperations, applyMigrations } from "../src";
import { NO_INLINE } from "../src/store/statements/outbox";
import { Store } from "../src/store/store";
import { analyzeAndCheckpoint, instrument, RssSampler, withClient } from "./common";
import { median, percentile } from "./stats";
import { benchTypes, CountingSubscriber, ours, ourConnection, ourStore } from "./systems";

/**
 * Per-child cost of the completion statement (the child's transition, its batch's counters and
 * the events) in batches of `batchSize`, over `children` completions in all, one statement each.
 */
export async function aggregationCost(url: string, batchSize: number, children: number): Promise<number> {
  const system = await ours(url);
  await system.setup();
  const connection = ourConnection(url);
  const ops = createOperations({ ...connection.client, types: benchTypes });
  const store = ourStore(connection);
  const submit = async (type: "bench" | "warm", count: number, size: number) => {
    for (let b = 0; b < count / size; b++) {
      await ops.submitBatch({
        tenantId: "bench",
        type,
        items: Array.from({ length: size }, (_, n) => ({ n })),
      });
    }
  };
  const claimAll = async (type: string) => {
    const claimed = [];
    for (;;) {
      const rows = await store.claimDue(1000, "bench", 600_000, [type]);
      if (rows.length === 0) return claimed;
      claimed.push(...rows);
    }
  };
  const finish = (row: { id: string; lockToken: string }) =>
    store.finishOperations(
      [{ id: row.id, lockToken: row.lockToken, finish: { to: "completed", result: null } }],
      NO_INLINE,
    );
  await submit("bench", children, batchSize);
  // Warm-up, untimed: the same statements on other rows.
  await submit("warm", 200, Math.min(batchSize, 100));
  for (const row of await claimAll("warm")) await finish(row);
  const claimed = await claimAll("bench");
  await analyzeAndCheckpoint(url);
  const started = performance.now();
  for (const row of claimed) await finish(row);
  const perChild = (performance.now() - started) / claimed.length;
  await connection.close();
  await system.close();
  return perChild;
}

// --- scale ---------------------------------------------------------------------------------------

/**
 * Fills a migrated database with `rows` operations, set-based: half finished history (completed
 * children of completed batches, created over the last 20 hours — inside every default retention
 * window, so that the reaper's pruning has nothing to catch up on and the measure is of the tables'
 * size alone — with their `batch.submitted`,
 * `operation.completed` and `batch.completed` events delivered to the subscriber `bench`), half a
 * deep backlog (pending children of pending batches, due, created over the last hour, their
 * `batch.submitted` delivered). Batches of 100. Every row satisfies the schema's constraints and
 * triggers (checked at commit), as the API would have written it.
 */
export async function buildScaleDatabase(url: string, rows: number): Promise<void> {
  const size = 100;
  const batches = rows / size;
  const historyBatches = batches / 2;
  await withClient(url, async (client) => {
    await applyMigrations(client);
    await client.query(
      `INSERT INTO operation_subscribers (name, topics) VALUES ('bench', '{}') ON CONFLICT (name) DO NOTHING`,
    );
    await client.query("BEGIN");
    // A UUIDv7 for a timestamp: 48 bits of milliseconds, version 7, variant 10, random bits.
    await client.query(`
      CREATE FUNCTION pg_temp.v7(ts timestamptz) RETURNS uuid LANGUAGE sql VOLATILE AS $$
        SELECT (lpad(to_hex((extract(epoch FROM ts) * 1000)::bigint), 12, '0') || '7'
                || substr(md5(random()::text), 1, 3) || '8' || substr(md5(random()::text), 1, 15))::uuid
      $$`);
    await client.query(
      `CREATE TEMP TABLE scale_batches ON COMMIT DROP AS
       SELECT g, g < $1 AS done,
              CASE WHEN g < $1 THEN now() - interval '21 hours' + g * (interval '20 hours' / $1)
                   ELSE now() - interval '1 hour' + (g - $1) * (interval '59 minutes' / ($2 - $1)) END AS ts
       FROM generate_series(0, $2 - 1) g`,
      [historyBatches, batches],
    );
    await client.query(`ALTER TABLE scale_batches ADD COLUMN id uuid`);
    await client.query(`UPDATE scale_batches SET id = pg_temp.v7(ts)`);
    await client.query(
      `INSERT INTO operation_batches (id, tenant_id, type, status, child_count, completed_count,
         created_at, updated_at, started_at, finished_at)
       SELECT id, 'bench', 'bench', CASE WHEN done THEN 'completed' ELSE 'pending' END::batch_status, $1,
              CASE WHEN done THEN $1 ELSE 0 END, ts,
              CASE WHEN done THEN ts + interval '2 seconds' ELSE ts END,
              CASE WHEN done THEN ts + interval '1 second' END, CASE WHEN done THEN ts + interval '2 seconds' END
       FROM scale_batches ORDER BY id`,
      [size],
    );
    await client.query(
      `INSERT INTO operations (id, tenant_id, batch_id, type, status, payload, result, attempts, max_attempts,
         run_at, created_at, updated_at, started_at, finished_at)
       SELECT pg_temp.v7(b.ts), 'bench', b.id, 'bench',
              CASE WHEN b.done THEN 'completed' ELSE 'pending' END::operation_status,
              jsonb_build_object('n', n), CASE WHEN b.done THEN 'null'::jsonb END,
              CASE WHEN b.done THEN 1 ELSE 0 END, 3, b.ts, b.ts,
              CASE WHEN b.done THEN b.ts + interval '1 second' ELSE b.ts END,
              CASE WHEN b.done THEN b.ts + interval '1 second' END,
              CASE WHEN b.done THEN b.ts + interval '1 second' END
       FROM scale_batches b, generate_series(0, $1 - 1) n
       ORDER BY b.g, n`,
      [size],
    );
    // The events, in the order they would have been written; their in-process subscriber had
    // each one inline, which leaves no delivery row.
    await client.query(`
      INSERT INTO operation_outbox (tenant_id, topic, aggregate_id, payload, created_at)
      SELECT tenant_id, topic, aggregate_id, payload, created_at FROM (
        SELECT b.ts AS created_at, 0 AS k, 'bench' AS tenant_id, 'batch.submitted' AS topic, b.id AS aggregate_id,
               jsonb_build_object('batchId', b.id, 'type', 'bench', 'childCount', 100) AS payload
        FROM scale_batches b
        UNION ALL
        SELECT o.finished_at, 1, 'bench', 'operation.completed', o.id,
               jsonb_build_object('operationId', o.id, 'batchId', o.batch_id, 'type', 'bench',
                                  'status', 'completed', 'attempts', 1)
        FROM operations o WHERE o.status = 'completed'
        UNION ALL
        SELECT b.finished_at, 2, 'bench', 'batch.completed', b.id,
               jsonb_build_object('batchId', b.id, 'type', 'bench', 'status', 'completed', 'childCount', 100,
                                  'completed', 100, 'failed', 0, 'cancelled', 0, 'episode', 1)
        FROM operation_batches b WHERE b.status = 'completed'
      ) e ORDER BY created_at, k, aggregate_id`);
    await client.query("COMMIT");
    await client.query("VACUUM ANALYZE");
    await client.query("CHECKPOINT");
  });
}

export interface ScaleResult {
  /** Median ms of the worker's claim statement (its Store.claimDue calls) during the timed drain. */
  claimMs: number;
  claimP95Ms: number;
  claims: number;
  drainOpsPerSec: number;
  drainMs: number;
}

/** Ours (defaults) on a database built by buildScaleDatabase: an untimed warm-up drain, then `total` timed. */
export async function scaleRun(url: string, total: number, warmup: number): Promise<ScaleResult> {
  const system = await ours(url);
  await system.setup();
  await system.drain(warmup, "bench");
  await analyzeAndCheckpoint(url);
  const probe = instrument(Store.prototype, ["claimDue"]);
  const result = await system.drain(total, "bench");
  const claims = probe.ms.claimDue ?? [];
  probe.restore();
  await system.close();
  return {
    claimMs: median(claims),
    claimP95Ms: percentile(claims, 95),
    claims: claims.length,
    drainOpsPerSec: total / (result.ms / 1000),
    drainMs: result.ms,
  };
}

/** One submit of a `children`-child batch with our default client: seconds, peak RSS, one transaction. */
export async function bigBatch(
  url: string,
  children: number,
): Promise<{ seconds: number; peakRssMb: number; transactions: number }> {
  const connection = ourConnection(url);
  const ops = createOperations({
    ...connection.client,
    types: benchTypes,
    subscribers: [new CountingSubscriber()],
    limits: { maxChildrenPerBatch: children, maxItemsPerBatch: children },
  });
  await withClient(url, (client) => applyMigrations(client));
  await analyzeAndCheckpoint(url);
  await ops.submitBatch({
    tenantId: "bench",
    type: "warm",
    items: Array.from({ length: 1000 }, (_, n) => ({ n })),
  });
  global.gc?.();
  const rss = new RssSampler().start();
  const items = Array.from({ length: children }, (_, n) => ({ n }));
  const started = performance.now();
  const { batch } = await ops.submitBatch({ tenantId: "bench", type: "bench", items });
  const seconds = (performance.now() - started) / 1000;
  const peakRssMb = rss.stop();
  // One transaction: the parent and every child carry the same xmin.
  const transactions = await withClient(url, async (client) => {
    const { rows } = await client.query(
      `SELECT count(DISTINCT xmin::text)::int AS n,
              bool_and(xmin::text = (SELECT xmin::text FROM operation_batches WHERE id = $1)) AS same,
              count(*)::int AS children
       FROM operations WHERE batch_id = $1`,
      [batch.id],
    );
    if (!rows[0].same || rows[0].children !== children) {
      throw new Error(`batch of ${children}: ${JSON.stringify(rows[0])}`);
    }
    return rows[0].n as number;
  });
  await connection.close();
  return { seconds, peakRssMb, transactions };
}
