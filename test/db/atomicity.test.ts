// The seed system's regression tests, translated, and the crash windows around a submit
// recreated on purpose: faults at every write boundary, a backend killed mid-transaction and
// mid-statement, a dispatcher that fails after commit. After each, either the whole batch is
// there or none of it is, and no concurrent reader ever saw anything in between.
import {
  BatchBuildError,
  createOperations,
  defineOperationType,
  silentLogger,
  type DeliveredEvent,
  type SubmitBoundary,
} from "../../src";
import { storeOf } from "../support/store";
import { z } from "zod";
import { createTestDatabase, type TestDatabase } from "../support/db";
import { countRows, documents, sleepingBackend, truncateAll, types } from "../support/fixtures";

let db: TestDatabase;

// Test-only faults inside the database, armed by a row in fault_armed (a row, not a session
// setting, because a submit on its own is one statement on whichever pooled connection): after the
// parent row, before the k-th child row (so k-1 children are already written), a slow k-th child
// (to kill the backend mid-statement), and at commit.
const FAULT_TRIGGERS = `
CREATE TABLE fault_armed (point text NOT NULL);

CREATE FUNCTION fault_after_parent() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM fault_armed WHERE point = 'after-parent') THEN RAISE EXCEPTION 'fault: after parent'; END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER fault_after_parent AFTER INSERT ON operation_batches FOR EACH ROW EXECUTE FUNCTION fault_after_parent();

CREATE FUNCTION fault_before_child() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  seen integer := coalesce(nullif(current_setting('faults.children', true), ''), '0')::integer + 1;
BEGIN
  PERFORM set_config('faults.children', seen::text, true);
  IF EXISTS (SELECT 1 FROM fault_armed WHERE point = 'before-child-' || seen) THEN
    RAISE EXCEPTION 'fault: before child %', seen;
  END IF;
  IF EXISTS (SELECT 1 FROM fault_armed WHERE point = 'slow-child-' || seen) THEN PERFORM pg_sleep(30); END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER fault_before_child BEFORE INSERT ON operations FOR EACH ROW EXECUTE FUNCTION fault_before_child();

CREATE FUNCTION fault_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM fault_armed WHERE point = 'at-commit') THEN RAISE EXCEPTION 'fault: at commit'; END IF;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER fault_at_commit AFTER INSERT ON operation_outbox
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fault_at_commit();
`;

async function arm(point: string): Promise<void> {
  await db.pool.query(`INSERT INTO fault_armed (point) VALUES ($1)`, [point]);
}

beforeAll(async () => {
  db = await createTestDatabase();
  await db.pool.query(FAULT_TRIGGERS);
});
afterAll(() => db.close());
beforeEach(async () => {
  await truncateAll(db.pool);
  await db.pool.query(`TRUNCATE fault_armed`);
});

/**
 * Reads every batch with its children and events in one snapshot, over and over, until stopped;
 * records any batch that is not whole. `reads` proves it actually looked.
 */
const readers: { stop(): Promise<unknown> }[] = [];
afterEach(async () => {
  // A test that failed midway must not leave its reader running into the next test's TRUNCATE.
  await Promise.all(readers.splice(0).map((reader) => reader.stop()));
});

function startReader() {
  const partial: string[] = [];
  let reads = 0;
  let running = true;
  const done = (async () => {
    while (running) {
      const { rows } = await db.pool.query(`
        SELECT b.id, b.child_count,
               (SELECT count(*) FROM operations o WHERE o.batch_id = b.id)::int AS children,
               (SELECT count(*) FROM operation_outbox e WHERE e.aggregate_id = b.id AND e.topic = 'batch.submitted')::int AS events
        FROM operation_batches b`);
      for (const row of rows) {
        if (row.children !== row.child_count || row.events !== 1) {
          partial.push(`${row.id}: ${row.children}/${row.child_count} children, ${row.events} events`);
        }
      }
      reads++;
    }
  })();
  const reader = {
    async stop() {
      running = false;
      await done;
      return { partial, reads };
    },
  };
  readers.push(reader);
  return reader;
}

function serviceWithFault(fault: NonNullable<Parameters<typeof createOperations>[0]["onSubmitBoundary"]>) {
  return createOperations({ ...db.connection, types, logger: silentLogger, onSubmitBoundary: fault });
}

const twelveChildren = () => ({
  tenantId: "t",
  type: "documents.ingest" as const,
  items: documents(12, 1000),
});

describe("regression: a failure while building the 2nd child leaves nothing behind", () => {
  it("in the application's code (its toPayload): refused before any write", async () => {
    const failing = {
      "documents.ingest": defineOperationType({
        payload: z.object({ ids: z.array(z.string()) }),
        batch: {
          item: z.object({ id: z.string() }),
          toPayload: (items, child) => {
            if (child.index === 1) throw new Error("metadata of child 2 is broken");
            return { ids: items.map((item) => item.id) };
          },
        },
      }),
    };
    const ops = createOperations({ ...db.connection, types: failing, logger: silentLogger });
    const submit = ops.submitBatch({
      tenantId: "t",
      type: "documents.ingest",
      items: [{ id: "a" }, { id: "b" }, { id: "c" }],
    });
    await expect(submit).rejects.toBeInstanceOf(BatchBuildError);
    await expect(submit).rejects.toMatchObject({ stage: "toPayload", index: 1 });
    expect(await countRows(db.pool)).toEqual({ batches: 0, operations: 0, outbox: 0 });
  });

  it("in the database (the 2nd child's INSERT fails): the parent rolls back with it", async () => {
    await arm("before-child-2");
    const ops = createOperations({ ...db.connection, types, logger: silentLogger });
    await expect(ops.submitBatch(twelveChildren())).rejects.toThrow("fault: before child 2");
    expect(await countRows(db.pool)).toEqual({ batches: 0, operations: 0, outbox: 0 });
  });
});

describe("regression: a failed dispatch after commit hides nothing and loses nothing", () => {
  it("returns the committed batch, leaves every child claimable with its payload and the event for the relay", async () => {
    const delivered: DeliveredEvent[] = [];
    let failing = true;
    const ops = createOperations({
      ...db.connection,
      types,
      logger: silentLogger,
      subscribers: [
        {
          name: "flaky-broker",
          deliver: (event) => {
            if (failing) throw new Error("broker unreachable");
            delivered.push(event);
          },
        },
      ],
    });
    const result = await ops.submitBatch(twelveChildren());

    expect(result.created).toBe(true);
    expect(result.dispatch).toMatchObject({
      status: "failed",
      failures: [{ topic: "batch.submitted", error: "flaky-broker: broker unreachable", dead: false }],
    });
    expect((await ops.getBatch("t", result.batch.id)).counts.pending).toBe(12);
    const { rows: deliveries } = await db.pool.query(
      `SELECT subscriber, delivered_at, attempts, last_error, available_at > now() AS backing_off FROM operation_deliveries`,
    );
    expect(deliveries).toEqual([
      {
        subscriber: "flaky-broker",
        delivered_at: null,
        attempts: 1,
        last_error: "broker unreachable",
        backing_off: true,
      },
    ]);

    const claimed = await storeOf(db.prisma).claimDue(100, "worker-1", 30_000);
    expect(claimed.map((row) => row.id)).toEqual(result.operationIds);
    expect(claimed.every((row) => Array.isArray((row.payload as { documents: unknown[] }).documents))).toBe(
      true,
    );

    // The backoff elapses (backdated rather than waited for); the relay delivers, with the same event id.
    failing = false;
    await db.pool.query(`UPDATE operation_deliveries SET available_at = now() - interval '1 second'`);
    expect(await ops.createRelay().runOnce()).toEqual({ claimed: 1, delivered: 1, failed: 0 });
    expect(delivered).toHaveLength(1);
    expect(delivered[0]).toMatchObject({
      topic: "batch.submitted",
      aggregateId: result.batch.id,
      attempt: 2,
    });
    const { rows: after } = await db.pool.query(
      `SELECT delivered_at IS NOT NULL AS done, attempts FROM operation_deliveries`,
    );
    expect(after).toEqual([{ done: true, attempts: 2 }]);
  });
});

describe("regression: faults at every write boundary of a submit", () => {
  const codeBoundaries: SubmitBoundary[] = ["before-insert", "after-insert"];
  const databaseBoundaries = [
    "after-parent",
    "before-child-1",
    "before-child-2",
    "before-child-7",
    "before-child-12",
    "at-commit",
  ];

  it("never commits part of a batch, and no concurrent reader sees one", async () => {
    const reader = startReader();
    for (const boundary of codeBoundaries) {
      const ops = serviceWithFault(async (at) => {
        if (at === boundary) throw new Error(`fault: ${boundary}`);
      });
      // Inside a caller's transaction both points come before the commit; on its own the submit
      // is one statement, so only `before-insert` comes before anything is written.
      await expect(ops.transaction((tx) => ops.submitBatch(twelveChildren(), { tx }))).rejects.toThrow(
        `fault: ${boundary}`,
      );
      expect(await countRows(db.pool)).toEqual({ batches: 0, operations: 0, outbox: 0 });
      if (boundary === "before-insert") {
        await expect(ops.submitBatch(twelveChildren())).rejects.toThrow(`fault: ${boundary}`);
        expect(await countRows(db.pool)).toEqual({ batches: 0, operations: 0, outbox: 0 });
      }
    }
    for (const point of databaseBoundaries) {
      await db.pool.query(`TRUNCATE fault_armed`);
      await arm(point);
      const ops = createOperations({ ...db.connection, types, logger: silentLogger });
      await expect(ops.submitBatch(twelveChildren())).rejects.toThrow(/fault: /);
      await expect(ops.transaction((tx) => ops.submitBatch(twelveChildren(), { tx }))).rejects.toThrow(
        /fault: /,
      );
      expect(await countRows(db.pool)).toEqual({ batches: 0, operations: 0, outbox: 0 });
    }
    await db.pool.query(`TRUNCATE fault_armed`);
    // And submits without a fault, interleaved with the reader, are whole.
    const ops = createOperations({ ...db.connection, types, logger: silentLogger });
    for (let i = 0; i < 5; i++) await ops.submitBatch(twelveChildren());
    const { partial, reads } = await reader.stop();
    expect(partial).toEqual([]);
    expect(reads).toBeGreaterThan(5);
    expect(await countRows(db.pool)).toEqual({ batches: 5, operations: 60, outbox: 5 });
  });

  it("writes parent, children and event in one transaction: every row has the same xmin", async () => {
    // Inside a plain $transaction nothing dispatches afterwards, so no row is updated after commit.
    let txid = "";
    const ops = serviceWithFault(async (boundary, tx) => {
      if (boundary !== "after-insert") return;
      const [row] = await tx.$queryRaw<
        { txid: string }[]
      >`SELECT (pg_current_xact_id()::text::bigint % 4294967296)::text AS txid`;
      txid = row!.txid;
    });
    const { batch } = await db.prisma.$transaction((tx) => ops.submitBatch(twelveChildren(), { tx }));
    const { rows } = await db.pool.query(
      `SELECT xmin::text FROM operation_batches WHERE id = $1
       UNION ALL SELECT xmin::text FROM operations WHERE batch_id = $1
       UNION ALL SELECT xmin::text FROM operation_outbox WHERE aggregate_id = $1`,
      [batch.id],
    );
    expect(rows).toHaveLength(14);
    expect(new Set(rows.map((row) => row.xmin))).toEqual(new Set([txid]));
  });
});

describe("regression: the submitting connection is killed", () => {
  async function terminate(pid: number) {
    const { rows } = await db.pool.query(`SELECT pg_terminate_backend($1) AS killed`, [pid]);
    expect(rows[0].killed).toBe(true);
  }

  it("inside the caller's transaction, after the submit's statement: nothing commits, and the service recovers", async () => {
    const reader = startReader();
    const victim = db.newPrisma({ applicationName: "victim" });
    const ops = createOperations({
      prisma: victim,
      types,
      logger: silentLogger,
      onSubmitBoundary: async (boundary, tx) => {
        if (boundary !== "after-insert") return;
        const [row] = await tx.$queryRaw<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`;
        await terminate(row!.pid);
      },
    });
    await expect(ops.transaction((tx) => ops.submitBatch(twelveChildren(), { tx }))).rejects.toThrow();
    expect(await countRows(db.pool)).toEqual({ batches: 0, operations: 0, outbox: 0 });

    // The pool may hand out the killed connection once more before it notices it is dead (a
    // race inside pg's pool): one failed call is what an application sees after a blip.
    const healthy = createOperations({ prisma: victim, types, logger: silentLogger });
    const result = await healthy.submitBatch(twelveChildren()).catch((error: Error) => {
      expect(error.message).toMatch(/Connection terminated|terminating connection|closed the connection/);
      return healthy.submitBatch(twelveChildren());
    });
    expect(result.operationIds).toHaveLength(12);
    const { partial } = await reader.stop();
    expect(partial).toEqual([]);
  });

  it("in the middle of the children's INSERT: nothing commits", async () => {
    const reader = startReader();
    const victim = db.newPrisma({ applicationName: "victim-mid-statement" });
    await arm("slow-child-6");
    const ops = createOperations({ prisma: victim, types, logger: silentLogger });
    const submit = ops.submitBatch(twelveChildren());
    submit.catch(() => undefined);
    const pid = await sleepingBackend(
      db.pool,
      "victim-mid-statement",
      "the submit to sleep inside its 6th child's INSERT",
    );
    await terminate(pid);
    await expect(submit).rejects.toThrow();
    expect(await countRows(db.pool)).toEqual({ batches: 0, operations: 0, outbox: 0 });
    const { partial, reads } = await reader.stop();
    expect(partial).toEqual([]);
    expect(reads).toBeGreaterThan(0);
  });
});

describe("regression: the parent is never returned by the claim query", () => {
  it("in any state", async () => {
    const ops = createOperations({ ...db.connection, types, logger: silentLogger });
    const submit = () =>
      ops.submitBatch({ tenantId: "t", type: "documents.ingest", items: documents(3, 1000) });
    const pending = await submit();
    const processing = await submit();
    const completed = await submit();
    const failed = await submit();
    const cancelled = await submit();
    await db.pool.query(
      `UPDATE operations SET status = 'processing', locked_by = 'w', lock_token = gen_random_uuid(), locked_until = now() + interval '1 hour' WHERE id = $1`,
      [processing.operationIds[0]],
    );
    await db.pool.query(`UPDATE operation_batches SET status = 'processing' WHERE id = $1`, [
      processing.batch.id,
    ]);
    const finish = async (batchId: string, childStatus: string, counter: string) => {
      await db.pool.query(`UPDATE operations SET status = $2 WHERE batch_id = $1`, [batchId, childStatus]);
      await db.pool.query(
        `UPDATE operation_batches SET ${counter} = child_count, status = $2::batch_status WHERE id = $1`,
        [batchId, childStatus],
      );
    };
    await finish(completed.batch.id, "completed", "completed_count");
    await finish(failed.batch.id, "failed", "failed_count");
    await finish(cancelled.batch.id, "cancelled", "cancelled_count");
    const { rows: states } = await db.pool.query(`SELECT status::text FROM operation_batches ORDER BY id`);
    expect(states.map((row) => row.status)).toEqual([
      "pending",
      "processing",
      "completed",
      "failed",
      "cancelled",
    ]);

    const batchIds = [pending, processing, completed, failed, cancelled].map((result) => result.batch.id);
    const claimed: string[] = [];
    for (;;) {
      const rows = await storeOf(db.prisma).claimDue(2, "w2", 60_000);
      if (rows.length === 0) break;
      claimed.push(...rows.map((row) => row.id));
    }
    expect(claimed.sort()).toEqual([...pending.operationIds, ...processing.operationIds.slice(1)].sort());
    expect(claimed.filter((id) => batchIds.includes(id))).toEqual([]);
    expect(await storeOf(db.prisma).claimById(batchIds, "w3", 60_000)).toEqual([]);
  });
});
