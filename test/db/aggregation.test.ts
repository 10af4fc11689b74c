// The batch status the SQL computes from its counters is the rule of domain/status.ts, for every
// sequence of child outcomes of small batches; transitions are fenced by the lease.
import { batchOutcome, createOperations, silentLogger } from "../../src";
import { createTestDatabase, type TestDatabase } from "../support/db";
import { truncateAll, types } from "../support/fixtures";
import { finish, NO_INLINE, staleToken, storeOf } from "../support/store";

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.close());
beforeEach(() => truncateAll(db.pool));

type Outcome = "completed" | "failed" | "cancelled";

function sequences(length: number): Outcome[][] {
  if (length === 0) return [[]];
  return sequences(length - 1).flatMap((rest) =>
    (["completed", "failed", "cancelled"] as const).map((first) => [first, ...rest]),
  );
}

const claimDue = (limit: number, workerId: string) => storeOf(db.prisma).claimDue(limit, workerId, 60_000);

async function batchRow(id: string) {
  const { rows } = await db.pool.query(
    `SELECT status::text, child_count, completed_count, failed_count, cancelled_count, finished_at
     FROM operation_batches WHERE id = $1`,
    [id],
  );
  return rows[0];
}

describe("aggregation", () => {
  const cases = [1, 2, 3].flatMap((size) => sequences(size).map((outcomes) => [outcomes.join(",")] as const));

  it.each(cases)("children ending %s: SQL and batchOutcome agree after every step", async (named) => {
    const outcomes = named.split(",") as Outcome[];
    const ops = createOperations({ ...db.connection, types, logger: silentLogger });
    const { batch } = await ops.submitBatch({
      tenantId: "t",
      type: "email.send",
      items: outcomes.map((_, i) => ({ to: `u${i}@example.com`, subject: "s" })),
    });
    const claimed = await claimDue(10, "worker");
    expect(claimed).toHaveLength(outcomes.length);
    expect((await batchRow(batch.id)).status).toBe("processing");

    const batchEvents: string[] = [];
    for (const [i, outcome] of outcomes.entries()) {
      const row = claimed[i]!;
      // A cancel asked for while it runs: the handler stops and hands the row back, which ends it cancelled.
      if (outcome === "cancelled")
        await storeOf(db.prisma).cancelTarget({ operationId: row.id, tenantId: "t" }, NO_INLINE);
      const transition = await finish(
        db.prisma,
        row,
        outcome === "failed"
          ? { to: "failed", error: { message: "no" } }
          : outcome === "cancelled"
            ? { to: "pending", delayMs: 0, refundAttempt: true }
            : { to: "completed", result: { ok: true } },
      );
      expect(transition.rows).toEqual([{ id: row.id, status: outcome }]);
      expect(transition.changed).toBe(1);
      batchEvents.push(...transition.events.filter((e) => e.topic.startsWith("batch.")).map((e) => e.topic));

      const stored = await batchRow(batch.id);
      const expected =
        batchOutcome({
          childCount: stored.child_count,
          completed: stored.completed_count,
          failed: stored.failed_count,
          cancelled: stored.cancelled_count,
        }) ?? "processing";
      expect(stored.status).toBe(expected);
      expect(stored.finished_at !== null).toBe(i === outcomes.length - 1);
    }
    const final = outcomes.includes("failed")
      ? "failed"
      : outcomes.includes("cancelled")
        ? "cancelled"
        : "completed";
    expect(batchEvents).toEqual([`batch.${final}`]);
    const { rows: real } = await db.pool.query(
      `SELECT count(*) FILTER (WHERE status = 'completed')::int AS completed,
              count(*) FILTER (WHERE status = 'failed')::int AS failed,
              count(*) FILTER (WHERE status = 'cancelled')::int AS cancelled
       FROM operations WHERE batch_id = $1`,
      [batch.id],
    );
    const stored = await batchRow(batch.id);
    expect(real[0]).toEqual({
      completed: stored.completed_count,
      failed: stored.failed_count,
      cancelled: stored.cancelled_count,
    });
  });

  it("writes the last child's transition, the counters and both events in one transaction", async () => {
    const ops = createOperations({ ...db.connection, types, logger: silentLogger });
    const { batch } = await ops.submitBatch({
      tenantId: "t",
      type: "email.send",
      items: [{ to: "a@b.co", subject: "s" }],
    });
    const [row] = await claimDue(1, "worker");
    const transition = await finish(db.prisma, row!, { to: "completed", result: null });
    expect(transition.events.map((event) => event.topic)).toEqual(["operation.completed", "batch.completed"]);
    const { rows } = await db.pool.query(
      `SELECT xmin::text FROM operations WHERE id = $1
       UNION ALL SELECT xmin::text FROM operation_batches WHERE id = $2
       UNION ALL SELECT xmin::text FROM operation_outbox WHERE topic IN ('operation.completed', 'batch.completed')`,
      [row!.id, batch.id],
    );
    expect(rows).toHaveLength(4);
    expect(new Set(rows.map((r) => r.xmin)).size).toBe(1);
  });

  it("records many outcomes in one statement (group commit), applying only those of the claims held", async () => {
    const ops = createOperations({ ...db.connection, types, logger: silentLogger });
    const items = Array.from({ length: 5 }, (_, i) => ({ to: `u${i}@example.com`, subject: "s" }));
    const { batch } = await ops.submitBatch({ tenantId: "t", type: "email.send", items });
    const mine = await claimDue(4, "worker-a");
    const [theirs] = await claimDue(1, "worker-b");
    const ours = (i: number) => ({ id: mine[i]!.id, lockToken: mine[i]!.lockToken });
    const transition = await storeOf(db.prisma).finishOperations(
      [
        { ...ours(0), finish: { to: "completed", result: { n: 0 } } },
        { ...ours(1), finish: { to: "completed", result: { n: 1 } } },
        { ...ours(2), finish: { to: "failed", error: { message: "no" } } },
        { ...ours(3), finish: { to: "pending", delayMs: 0, refundAttempt: true } },
        { id: theirs!.id, lockToken: staleToken(), finish: { to: "completed", result: "stolen" } },
      ],
      NO_INLINE,
    );
    expect(new Map(transition.rows.map((row) => [row.id, row.status]))).toEqual(
      new Map([
        [mine[0]!.id, "completed"],
        [mine[1]!.id, "completed"],
        [mine[2]!.id, "failed"],
        [mine[3]!.id, "pending"],
      ]),
    );
    expect(transition.events.map((event) => event.topic).sort()).toEqual([
      "operation.completed",
      "operation.completed",
      "operation.failed",
    ]);
    expect(await batchRow(batch.id)).toMatchObject({
      completed_count: 2,
      failed_count: 1,
      status: "processing",
    });
    expect((await ops.getOperation("t", mine[3]!.id)).attempts).toBe(0);
    expect((await ops.getOperation("t", theirs!.id)).status).toBe("processing");
  });

  it("refuses a transition for a claim the row no longer has, changing nothing", async () => {
    const ops = createOperations({ ...db.connection, types, logger: silentLogger });
    const { batch } = await ops.submitBatch({
      tenantId: "t",
      type: "email.send",
      items: [{ to: "a@b.co", subject: "s" }],
    });
    const [row] = await claimDue(1, "worker-a");
    const stale = { id: row!.id, lockToken: staleToken() };
    const late = await finish(db.prisma, stale, { to: "completed", result: { stolen: true } });
    expect(late).toEqual({ changed: 0, rows: [], events: [], cancelRequested: 0 });
    const again = await finish(db.prisma, stale, { to: "failed", error: { message: "x" } });
    expect(again).toEqual({ changed: 0, rows: [], events: [], cancelRequested: 0 });
    expect((await batchRow(batch.id)).completed_count).toBe(0);
    expect((await ops.getOperation("t", row!.id)).status).toBe("processing");
    const { rows } = await db.pool.query(
      `SELECT count(*)::int AS n FROM operation_outbox WHERE topic <> 'batch.submitted'`,
    );
    expect(rows[0].n).toBe(0);
  });
});
