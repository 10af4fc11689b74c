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

describe("a worker's claim commits without waiting for the WAL flush", () => {
  const setting = async (tx: Parameters<Parameters<typeof db.prisma.$transaction>[0]>[0]) =>
    (await tx.$queryRaw<{ synchronous_commit: string }[]>`SHOW synchronous_commit`)[0]!.synchronous_commit;

  it("for its own transaction only; the sync backend's claim, which can run in the caller's, waits", async () => {
    const ops = createOperations({ ...db.connection, types, logger: silentLogger });
    const { operationIds } = await ops.submitBatch({
      tenantId: "t",
      type: "email.send",
      items: [1, 2, 3].map((n) => ({ to: `u${n}@example.com`, subject: "s" })),
    });
    const seen = await db.prisma.$transaction(async (tx) => {
      const due = await storeOf(tx).claimDue(1, "w", 60_000);
      const afterDue = await setting(tx);
      return { claimed: due.length, afterDue };
    });
    const announced = await db.prisma.$transaction(async (tx) => {
      const rows = await storeOf(tx).claimAnnounced([{ type: "email.send", tenantId: "t" }], 1, "w", 60_000);
      return { claimed: rows.length, after: await setting(tx) };
    });
    const byId = await db.prisma.$transaction(async (tx) => {
      const rows = await storeOf(tx).claimById([operationIds[2]!], "w", 60_000);
      return { claimed: rows.length, after: await setting(tx) };
    });
    expect({ seen, announced, byId }).toEqual({
      seen: { claimed: 1, afterDue: "off" },
      announced: { claimed: 1, after: "off" },
      byId: { claimed: 1, after: "on" },
    });
    expect(await db.prisma.$transaction((tx) => setting(tx))).toBe("on");
  });

  it("a claim lost in a crash of the database: its outcome is refused, and the row runs again with its attempt", async () => {
    const ops = createOperations({ ...db.connection, types, logger: silentLogger });
    const { batch } = await ops.submitBatch({
      tenantId: "t",
      type: "email.send",
      items: [{ to: "a@b.co", subject: "s" }],
    });
    const [lost] = await claimDue(1, "worker-a");
    // What recovery leaves when the claim's commit never reached the disk: the row and its batch
    // as they were before it.
    await db.pool.query(
      `UPDATE operations SET status = 'pending', attempts = attempts - 1, lock_token = NULL, locked_by = NULL,
              locked_until = NULL, started_at = NULL WHERE id = $1`,
      [lost!.id],
    );
    await db.pool.query(`UPDATE operation_batches SET status = 'pending', started_at = NULL WHERE id = $1`, [
      batch.id,
    ]);
    const late = await finish(db.prisma, lost!, { to: "completed", result: { from: "the lost claim" } });
    expect(late).toEqual({ changed: 0, rows: [], events: [], cancelRequested: 0 });
    expect(await storeOf(db.prisma).heartbeat([lost!], 60_000)).toEqual([]);

    const [again] = await claimDue(1, "worker-b");
    expect({ id: again!.id, attempts: again!.attempts }).toEqual({ id: lost!.id, attempts: 1 });
    expect(again!.lockToken).not.toBe(lost!.lockToken);
    const done = await finish(db.prisma, again!, { to: "completed", result: { from: "worker-b" } });
    expect(done.rows).toEqual([{ id: lost!.id, status: "completed" }]);
    expect((await ops.getOperation("t", lost!.id)).result).toEqual({ from: "worker-b" });
    expect((await batchRow(batch.id)).status).toBe("completed");
    const { rows } = await db.pool.query(
      `SELECT topic, count(*)::int AS n FROM operation_outbox WHERE topic <> 'batch.submitted' GROUP BY topic ORDER BY topic`,
    );
    expect(rows).toEqual([
      { topic: "batch.completed", n: 1 },
      { topic: "operation.completed", n: 1 },
    ]);
  });
});
