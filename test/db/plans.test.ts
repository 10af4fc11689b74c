// The statements that name rows by id find them by primary key, whatever the statistics say.
// A drain starts with statistics taken when nothing was processing, so the partial index of
// processing rows looks empty; a group commit that joined its outcomes to the table let the planner
// scan that index once per outcome — O(rows held × outcomes): 200 ms for 500 outcomes with 2,000
// held, 500 ms with the generic plan of a prepared statement (bench/README.md). These tests hold
// the plan's shape, not its speed.
import { z } from "zod";
import type { PoolClient } from "pg";
import type { Sql } from "@prisma/client/runtime/client";
import { createOperations, defineOperationType, silentLogger } from "../../src";
import { claimAnnounced, claimDue, heartbeat } from "../../src/store/statements/claims";
import { uuidv7 } from "../../src/domain/ids";
import {
  claimDeliveries,
  extendDeliveries,
  markDelivered,
  markFailed,
  type DeliveryRef,
} from "../../src/store/statements/outbox";
import { listOperations } from "../../src/store/statements/reads";
import { insertBatch } from "../../src/store/statements/submit";
import { finishOperations, reapExpiredLeases } from "../../src/store/statements/transitions";
import { tablesIn } from "../../src/store/tables";
import type { ClaimedRow } from "../../src/store/statements/claims";
import type { BatchPlan } from "../../src/submit/plan";
import { createTestDatabase, type TestDatabase } from "../support/db";
import { explain, planNodes } from "../support/plans";
import { NO_INLINE, storeOf } from "../support/store";

let db: TestDatabase;
let held: ClaimedRow[];
const tables = tablesIn();

beforeAll(async () => {
  db = await createTestDatabase();
  const ops = createOperations({
    ...db.connection,
    types: { task: defineOperationType({ payload: z.object({ n: z.number() }) }) },
    logger: silentLogger,
  });
  for (let b = 0; b < 4; b++) {
    await ops.submitBatch({
      tenantId: "t",
      type: "task",
      items: Array.from({ length: 500 }, (_, n) => ({ n })),
    });
  }
  await db.pool.query("ANALYZE"); // nothing is processing: the statistics a drain starts with
  const store = storeOf(db.prisma);
  held = [];
  while (held.length < 2_000) held.push(...(await store.claimDue(500, "w", 600_000, ["task"])));
}, 60_000);
afterAll(() => db.close());

/** A batch of `children` children of type `task`, as the service plans one. */
function batchPlan(children: number, tenantId = "t"): BatchPlan {
  return {
    id: uuidv7(),
    tenantId,
    type: "task",
    failurePolicy: "wait_all",
    metadataJson: undefined,
    idempotencyKey: undefined,
    maxAttempts: 3,
    runAt: undefined,
    children: Array.from({ length: children }, (_, n) => ({
      id: uuidv7(),
      payloadJson: JSON.stringify({ n }),
    })),
  };
}

const TABLES = [
  "operations",
  "operation_batches",
  "operation_outbox",
  "operation_deliveries",
  "operation_delivery_holds",
];

/**
 * Runs `statement` as the module does (a named, prepared statement) in a rolled-back transaction:
 * the rows it returned, and per table the sequential scans it made and the rows it read through
 * indexes (the backend's counts before and after: they also hold what its earlier transactions
 * did until they are reported).
 */
async function scansOf(client: PoolClient, name: string, statement: Sql) {
  const counts = async () =>
    new Map(
      (
        await client.query<{ relname: string; seq_scan: number; idx_tup_fetch: number }>(
          `SELECT relname, seq_scan::int, idx_tup_fetch::int FROM pg_stat_xact_user_tables
           WHERE relname = ANY($1::text[])`,
          [TABLES],
        )
      ).rows.map((row) => [row.relname, row]),
    );
  await client.query("BEGIN");
  try {
    const before = await counts();
    const { rows } = await client.query({ name, text: statement.text, values: statement.values });
    const after = await counts();
    const diff = (key: "seq_scan" | "idx_tup_fetch") =>
      Object.fromEntries(
        [...after]
          .map(([relname, row]) => [relname, row[key] - (before.get(relname)?.[key] ?? 0)] as const)
          .filter(([, n]) => n > 0),
      );
    return { returned: rows.length, seqScans: diff("seq_scan"), fetched: diff("idx_tup_fetch") };
  } finally {
    await client.query("ROLLBACK");
  }
}

// A worker's heartbeat updates its rows in a function (operations_heartbeat in the migrations),
// whose inner plan EXPLAIN does not show: what it reads is counted instead, on a prepared statement
// past its custom plans.
// A group commit changes its rows in a function too (operations_finish), counted the same way.
describe("a group commit beside 2,000 rows held", () => {
  it("a group commit of 500 outcomes reads each row by primary key, and the operations table never whole", async () => {
    const outcomes = held.slice(0, 500).map((row) => ({
      id: row.id,
      lockToken: row.lockToken,
      finish: { to: "completed" as const, result: null },
    }));
    const client = await db.pool.connect();
    try {
      let reads: Awaited<ReturnType<typeof scansOf>> | undefined;
      for (let n = 0; n < 7; n++)
        reads = await scansOf(client, "finish500", finishOperations(tables, outcomes, NO_INLINE));
      expect(reads!.returned).toBe(1);
      expect(reads!.seqScans.operations).toBeUndefined();
      // Each row once to lock it and once to update it (a hash join on the outcomes' tokens once
      // read all 21,000 rows of the bench's table for each group commit).
      expect(reads!.fetched.operations).toBeLessThanOrEqual(2 * 500);
    } finally {
      client.release();
    }
  });
});

describe("a heartbeat beside 2,000 rows held", () => {
  it("a heartbeat of 2,000 claims reads each row by primary key, and no table whole", async () => {
    const client = await db.pool.connect();
    try {
      let reads: Awaited<ReturnType<typeof scansOf>> | undefined;
      for (let n = 0; n < 7; n++) reads = await scansOf(client, "beat2000", heartbeat(tables, held, 30_000));
      expect(reads!.returned).toBe(2_000);
      expect(reads!.seqScans).toEqual({}); // (toMatchObject takes `{}` for any object)
      // Each row once to lock it and once to update it.
      expect(reads!.fetched.operations).toBeLessThanOrEqual(2 * 2_000);
    } finally {
      client.release();
    }
  });
});

describe("the reaper beside 2,000 rows held", () => {
  it("the reaper takes back 200 expired leases among 2,000 held by primary key", async () => {
    const client = await db.pool.connect();
    try {
      await client.query(
        `UPDATE operations SET locked_until = now() - interval '1 minute'
         WHERE id IN (SELECT id FROM operations WHERE status = 'processing' ORDER BY id LIMIT 200)`,
      );
      // The reaper changes its rows in a function (operations_reap), whose plans EXPLAIN does not
      // show: what it reads is counted instead, past the custom plans.
      let reads: Awaited<ReturnType<typeof scansOf>> | undefined;
      for (let n = 0; n < 7; n++)
        reads = await scansOf(client, "reap200", reapExpiredLeases(tables, 500, NO_INLINE));
      // fail_fast's cascade finds its siblings by their batch in a function too (it was planned by
      // the statement around the function, and read the table whole: once, or twice).
      expect(reads!.seqScans.operations).toBeUndefined();
      // Each of the 200 through the index of processing rows, then by primary key: to see whether
      // it is about to fail in a fail_fast batch, to lock it, to update it.
      expect(reads!.fetched.operations).toBeLessThanOrEqual(4 * 200);
    } finally {
      await client.query(
        `UPDATE operations SET locked_until = now() + interval '10 minutes' WHERE status = 'processing'`,
      );
      client.release();
    }
  });
});

// The statements that record deliveries name rows by primary key too. A relay catching up after a
// subscriber was down has a backlog of undelivered rows that statistics taken before it never saw:
// joined to its outcomes, a mark walked the partial index of undelivered rows once per delivery —
// O(backlog × deliveries), 684 ms for 100 marks beside 30,000 owed with the generic plan.
describe("recording deliveries beside a backlog the statistics never saw", () => {
  let fresh: TestDatabase;
  let owed: DeliveryRef[];
  beforeAll(async () => {
    fresh = await createTestDatabase();
    await fresh.pool.query(`INSERT INTO operation_subscribers (name, topics) VALUES ('s', '{}')`);
    const events = (n: number, delivered: boolean) => `
      WITH e AS (
        INSERT INTO operation_outbox (tenant_id, topic, aggregate_id, payload)
        SELECT 't', 'operation.completed', gen_random_uuid(), '{}' FROM generate_series(1, ${n})
        RETURNING id)
      INSERT INTO operation_deliveries (event_id, subscriber, attempts, delivered_at)
      SELECT id, 's', ${delivered ? 1 : 0}, ${delivered ? "now()" : "NULL"} FROM e`;
    await fresh.pool.query(events(20_000, true));
    await fresh.pool.query("ANALYZE"); // nothing owed
    await fresh.pool.query(events(5_000, false));
    const { rows } = await fresh.pool.query(
      `SELECT event_id::text AS "eventId", subscriber, attempts AS "claimedAttempts"
       FROM operation_deliveries WHERE delivered_at IS NULL ORDER BY event_id LIMIT 100`,
    );
    owed = rows;
  }, 60_000);
  afterAll(() => fresh.close());

  // The records change their rows in a function (operation_deliveries_record in the migrations),
  // whose plans EXPLAIN does not show: what they read is counted, past the custom plans.
  it.each([
    ["markDelivered", 100, () => markDelivered(tables, owed)],
    ["extendDeliveries", 100, () => extendDeliveries(tables, owed, 30_000)],
    ["markFailed", 1, () => markFailed(tables, owed[0]!, "boom", 1_000)],
  ] as const)("%s reads each row by primary key", async (name, count, statement) => {
    const client = await fresh.pool.connect();
    try {
      let reads: Awaited<ReturnType<typeof scansOf>> | undefined;
      for (let n = 0; n < 7; n++) reads = await scansOf(client, name, statement());
      expect(reads!.seqScans).toEqual({});
      // Each row once to lock it and once to update it.
      expect(reads!.fetched.operation_deliveries).toBe(2 * count);
    } finally {
      client.release();
    }
  });
});

// A page of a tenant's operations is read through its (tenant_id, id) index. Only as a custom
// plan: the generic plan a prepared statement settles on is made for the average tenant and scans
// the primary key backwards (EXPLAIN it with `generic: true` to see), reading the whole table for
// a small tenant — so the store leaves reads unprepared (prepared.test.ts).
describe("a page of a small tenant's operations beside a big tenant's", () => {
  beforeAll(async () => {
    const ops = createOperations({
      ...db.connection,
      types: { task: defineOperationType({ payload: z.object({ n: z.number() }) }) },
      logger: silentLogger,
    });
    await ops.submitBatch({ tenantId: "small", type: "task", items: [{ n: 1 }, { n: 2 }] });
    await db.pool.query("ANALYZE");
  });

  it("is read through the tenant's index", async () => {
    const client = await db.pool.connect();
    try {
      const plan = await explain(client, listOperations(tables, { tenantId: "small", limit: 51 }), {
        generic: false,
      });
      const scans = planNodes(plan)
        .filter((node) => node["Relation Name"] === "operations" && node["Node Type"].endsWith("Scan"))
        .map((node) => node["Index Name"] ?? node["Node Type"]);
      expect(scans).toEqual(["operations_tenant_id_id_idx"]);
    } finally {
      client.release();
    }
  });
});

// The commit-time check that a batch has all of its children counts them through the batch_id
// index, whatever the table looked like when the session planned it. PL/pgSQL plans the check
// afresh five times per session, then keeps a generic plan until the next ANALYZE: a connection
// that began on a small table (a new install; autovacuum off, as on the bench's server) kept a
// sequential scan of every operation for each batch submitted as the table grew — 93 pages per
// 10-child submit at 10,000 rows (bench submit10).
describe("the children check of a batch", () => {
  let fresh: TestDatabase;
  beforeAll(async () => {
    fresh = await createTestDatabase();
  });
  afterAll(() => fresh.close());

  /** Inserts a batch on `client` and runs the check in the same transaction; what it scanned sequentially. */
  async function seqScansOfCheck(client: PoolClient): Promise<{ seq_scan: number; seq_tup_read: number }> {
    const statement = insertBatch(tables, batchPlan(10), NO_INLINE);
    await client.query("BEGIN");
    try {
      await client.query(statement.text, statement.values);
      await client.query("SET CONSTRAINTS ALL IMMEDIATE"); // the check, now rather than at commit
      const { rows } = await client.query(
        `SELECT seq_scan::int, seq_tup_read::int FROM pg_stat_xact_user_tables WHERE relname = 'operations'`,
      );
      return rows[0];
    } finally {
      await client.query("ROLLBACK");
    }
  }

  it("reads only the batch's own children on a connection that began when the table was empty", async () => {
    // No analysis may come between (it would make the session plan the check again).
    await fresh.pool.query("ALTER TABLE operations SET (autovacuum_enabled = off)");
    await fresh.pool.query("ANALYZE");
    const session = await fresh.pool.connect();
    try {
      for (let n = 0; n < 6; n++) await seqScansOfCheck(session); // past the custom plans
      const other = await fresh.pool.connect();
      try {
        for (let b = 0; b < 10; b++) {
          const statement = insertBatch(tables, batchPlan(1_000), NO_INLINE);
          await other.query(statement.text, statement.values);
        }
      } finally {
        other.release();
      }
      expect(await seqScansOfCheck(session)).toEqual({ seq_scan: 0, seq_tup_read: 0 });
    } finally {
      session.release();
    }
  }, 60_000);
});

// Claims find rows through the claim path's indexes and by primary key whatever the statistics
// say. A worker that began on a small table (a new install; autovacuum off, or between its
// analyses) planned the pick as a sequential scan and sort of the whole table, and the claim's
// UPDATE as a hash join over another; its prepared statements kept those plans while the history
// grew — 0.5 ms more per claim at 5,000 rows in the bench's latency scenario, growing with it.
// Turning sequential scans off is not enough on its own: a semi join then walked a whole index
// instead (the batches' start, 68 ms per claim at 4,000 batches), so the tests also bound the
// rows read through indexes. A relay's claim had the same fault, against the outbox and the
// deliveries. So had a worker's heartbeat, against operations (its group commit still has: see
// bench/README.md).
describe("a claim on a connection that began when the tables were small", () => {
  let fresh: TestDatabase;
  beforeAll(async () => {
    fresh = await createTestDatabase();
    for (const table of ["operations", "operation_batches", "operation_outbox", "operation_deliveries"])
      await fresh.pool.query(`ALTER TABLE ${table} SET (autovacuum_enabled = off)`);
    await fresh.pool.query(`INSERT INTO operation_subscribers (name, topics) VALUES ('s', '{}')`);
  });
  afterAll(() => fresh.close());

  /** `n` batches of one child each, and `big` batches of 500, written set-based. */
  const writeBatches = (n: number, big = 0) =>
    fresh.pool.query(
      `WITH b AS (
         INSERT INTO operation_batches (id, tenant_id, type, child_count)
         SELECT gen_random_uuid(), 't' || (g % 3), 'task', CASE WHEN g <= $2::int THEN 500 ELSE 1 END
         FROM generate_series(1, $1::int + $2::int) g
         RETURNING id, tenant_id, child_count)
       INSERT INTO operations (id, tenant_id, batch_id, type, payload, max_attempts)
       SELECT gen_random_uuid(), b.tenant_id, b.id, 'task', '{"n":0}', 3
       FROM b, generate_series(1, b.child_count)`,
      [n, big],
    );

  /** `n` events owed to subscriber `s` as delivery rows due now, and `held` more in expired holds of 10. */
  const writeDeliveries = async (n: number, held = 0) => {
    await fresh.pool.query(
      `WITH e AS (
         INSERT INTO operation_outbox (tenant_id, topic, aggregate_id, payload)
         SELECT 't', 'test.event', gen_random_uuid(), '{}' FROM generate_series(1, $1) RETURNING id)
       INSERT INTO operation_deliveries (event_id, subscriber, available_at) SELECT id, 's', now() - interval '1 second' FROM e`,
      [n],
    );
    await fresh.pool.query(
      `WITH e AS (
         INSERT INTO operation_outbox (tenant_id, topic, aggregate_id, payload)
         SELECT 't', 'test.event', gen_random_uuid(), '{}' FROM generate_series(1, $1) RETURNING id)
       INSERT INTO operation_delivery_holds (subscriber, event_ids, held_until)
       SELECT 's', array_agg(id), now() - interval '1 second' FROM (SELECT id, (row_number() OVER () - 1) / 10 AS k FROM e) x
       GROUP BY k`,
      [held],
    );
  };

  /** Plans `statement` on small tables (past the custom plans), grows them with `grow`, runs it once more. */
  async function afterGrowth(name: string, statement: () => Sql, grow: () => Promise<unknown>) {
    const session = await fresh.pool.connect();
    try {
      await fresh.pool.query(`ANALYZE ${TABLES.join(", ")}`);
      // From the sixth execution a prepared statement may keep a generic plan.
      for (let n = 0; n < 6; n++) await scansOf(session, name, statement());
      await grow();
      return await scansOf(session, name, statement());
    } finally {
      session.release();
    }
  }

  it.each([
    ["a fair claim", "fair", () => claimDue(tables, 50, "w", 60_000, ["task"], { fair: true })],
    ["a FIFO claim", "fifo", () => claimDue(tables, 50, "w", 60_000, ["task"], { fair: false })],
    [
      "an announced claim",
      "announced",
      () => claimAnnounced(tables, [{ type: "task", tenantId: "t0" }], 50, "w", 60_000),
    ],
  ] as const)(
    "%s reads no table whole, and only the rows it claims and their batches",
    async (_name, name, statement) => {
      await fresh.pool.query("TRUNCATE operations, operation_batches CASCADE");
      await writeBatches(10);
      const after = await afterGrowth(name, statement, () => writeBatches(10_000, 10));
      expect(after.returned).toBe(50);
      expect(after.seqScans).toEqual({});
      // Of 15,010 operations, its 50 through the queue index and by primary key (a FIFO claim also
      // probes each queue's head again after each run it takes: a few hundred when queues
      // interleave row by row, as here); of 10,010 batches, at most its 50.
      expect(after.fetched.operations).toBeLessThan(1_000);
      expect(after.fetched.operation_batches ?? 0).toBeLessThanOrEqual(50);
    },
    60_000,
  );

  it("a heartbeat finds the operations it names by primary key", async () => {
    await fresh.pool.query("TRUNCATE operations, operation_batches CASCADE");
    await writeBatches(10);
    const claimed = await storeOf(fresh.prisma).claimDue(5, "w", 600_000, ["task"]);
    expect(claimed).toHaveLength(5);
    const after = await afterGrowth(
      "heartbeat",
      () => heartbeat(tables, claimed, 600_000),
      () => writeBatches(10_000, 10),
    );
    expect(after.returned).toBe(5);
    // Before: the plan made on 10 rows read all 15,010 of the grown table twice per claim.
    expect(after.seqScans).toEqual({});
    expect(after.fetched.operations ?? 0).toBeLessThanOrEqual(2 * 5);
  }, 60_000);

  it("a group commit finds the operations it ends by primary key", async () => {
    await fresh.pool.query("TRUNCATE operations, operation_batches CASCADE");
    await writeBatches(10);
    const claimed = await storeOf(fresh.prisma).claimDue(5, "w", 600_000, ["task"]);
    expect(claimed).toHaveLength(5);
    const outcomes = claimed.map((row) => ({
      id: row.id,
      lockToken: row.lockToken,
      finish: { to: "completed" as const, result: null },
    }));
    const after = await afterGrowth(
      "group commit",
      () => finishOperations(tables, outcomes, NO_INLINE),
      () => writeBatches(10_000, 10),
    );
    expect(after.returned).toBe(1);
    // Before: the plan made on 10 rows read all 15,010 of the grown table once per outcome, and
    // once more to update them. The batches' counters are moved by the statement around the
    // function, whose plan can still read that (smaller) table whole, once to lock and once to
    // update; and each delivery row's foreign-key check reads the outbox on a plan of its own.
    expect(after.seqScans.operations).toBeUndefined();
    expect(after.fetched.operations ?? 0).toBeLessThanOrEqual(2 * 5);
  }, 60_000);

  it("the reaper finds the expired leases it takes back by primary key", async () => {
    await fresh.pool.query("TRUNCATE operations, operation_batches CASCADE");
    await writeBatches(10);
    const claimed = await storeOf(fresh.prisma).claimDue(5, "w", 600_000, ["task"]);
    expect(claimed).toHaveLength(5);
    await fresh.pool.query(
      `UPDATE operations SET locked_until = now() - interval '1 minute' WHERE status = 'processing'`,
    );
    const after = await afterGrowth(
      "reap",
      () => reapExpiredLeases(tables, 500, NO_INLINE),
      () => writeBatches(10_000, 10),
    );
    expect(after.returned).toBe(1);
    // Before: 14 passes over the grown table for 5 leases (each looked up by a scan of the whole
    // table, and updated the same way); then 2, and one of the batches (fail_fast's cascade, planned
    // by the statement around the function). Now the cascade's siblings are found by their batch in
    // a function too: no table is read whole, and about 5 rows are read per lease.
    expect(after.seqScans).toEqual({});
    expect(after.fetched.operations ?? 0).toBeLessThanOrEqual(5 * 5);
  }, 60_000);

  it("a relay's marks find the deliveries they record by primary key", async () => {
    await fresh.pool.query(
      "TRUNCATE operation_outbox, operation_deliveries, operation_delivery_holds CASCADE",
    );
    await writeDeliveries(10);
    const claimed = await storeOf(fresh.prisma).claimDeliveries("s", 5, 600_000);
    expect(claimed).toHaveLength(5);
    const refs = claimed.map((d) => ({
      eventId: d.event.id,
      subscriber: d.subscriber,
      claimedAttempts: d.attempts,
    }));
    const after = await afterGrowth(
      "mark",
      () => markDelivered(tables, refs),
      () => writeDeliveries(10_000),
    );
    expect(after.seqScans).toEqual({});
    expect(after.fetched.operation_deliveries ?? 0).toBeLessThanOrEqual(2 * 5);
  }, 60_000);

  it("a relay's claim reads no table whole, and only the deliveries it takes", async () => {
    await fresh.pool.query(
      "TRUNCATE operation_outbox, operation_deliveries, operation_delivery_holds CASCADE",
    );
    await writeDeliveries(10);
    const after = await afterGrowth(
      "relay",
      () => claimDeliveries(tables, "s", 50, 60_000),
      () => writeDeliveries(10_000, 200),
    );
    // 50 due rows and 10 holds of 10 taken over, among 10,210 events.
    expect(after.returned).toBe(150);
    expect(after.seqScans).toEqual({});
    expect(after.fetched.operation_deliveries ?? 0).toBeLessThanOrEqual(4 * 50);
    expect(after.fetched.operation_delivery_holds ?? 0).toBeLessThanOrEqual(4 * 10);
    // Each event by its key: the 150 returned, and the 100 taken over once more to insert them.
    expect(after.fetched.operation_outbox ?? 0).toBeLessThanOrEqual(4 * 150);
  }, 60_000);
});
