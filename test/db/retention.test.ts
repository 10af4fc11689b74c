// Retention: a history is built through the service, then backdated by hand, and exactly the rows
// the policy says have expired go — a batch with its children and events, never a batch in flight,
// never an event still owed to a subscriber or dead for less than the policy's time — in bounded
// statements that skip rows another transaction holds.
import { z } from "zod";
import {
  createOperations,
  defineOperationType,
  NonRetryableError,
  NotFoundError,
  silentLogger,
} from "../../src";
import { lockFinished, requeueLocked } from "../../src/store/statements/transitions";
import { tablesIn } from "../../src/store/tables";
import { createTestDatabase, type TestDatabase } from "../support/db";
import { deadlocks, endBackends, orphans, settledOrWaiting, truncateAll } from "../support/fixtures";
import { finish, NO_INLINE, storeOf } from "../support/store";

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.close());
beforeEach(() => truncateAll(db.pool));

const types = {
  task: defineOperationType({
    payload: z.object({ n: z.number().int(), fail: z.boolean().default(false) }),
    maxAttempts: 1,
  }),
  "email.send": defineOperationType({ payload: z.object({ to: z.string() }), maxAttempts: 1 }),
};

const handlers = {
  task: async (payload: { n: number; fail: boolean }) => {
    if (payload.fail) throw new NonRetryableError("asked to fail");
    return { n: payload.n };
  },
  "email.send": async () => ({ sent: true }),
};

const audit = { name: "audit", deliver: () => undefined };

/** Runs work inline as it is submitted, so batches finish at once. */
function syncService(retention: Parameters<typeof createOperations>[0]["retention"] = {}) {
  return createOperations({
    ...db.connection,
    types,
    logger: silentLogger,
    backend: { sync: handlers },
    subscribers: [audit],
    retention,
  });
}

/** Leaves work pending (no worker runs). */
function queueService() {
  return createOperations({ ...db.connection, types, logger: silentLogger, subscribers: [audit] });
}

const items = (count: number, fail = false) => Array.from({ length: count }, (_, n) => ({ n, fail }));

/** Moves a batch's (or an operation's) history `days` into the past: finished, written, delivered. */
async function backdate(kind: "batch" | "operation", id: string, days: number): Promise<void> {
  const ago = `now() - make_interval(secs => ${days * 86_400})`;
  const ids =
    kind === "batch"
      ? `SELECT $1::uuid UNION ALL SELECT id FROM operations WHERE batch_id = $1::uuid`
      : `SELECT $1::uuid`;
  if (kind === "batch") {
    await db.pool.query(
      `UPDATE operation_batches SET created_at = ${ago}, finished_at = CASE WHEN finished_at IS NULL THEN NULL ELSE ${ago} END WHERE id = $1`,
      [id],
    );
  }
  await db.pool.query(
    `UPDATE operations SET created_at = ${ago}, finished_at = CASE WHEN finished_at IS NULL THEN NULL ELSE ${ago} END
     WHERE id IN (${ids})`,
    [id],
  );
  await db.pool.query(`UPDATE operation_outbox SET created_at = ${ago} WHERE aggregate_id IN (${ids})`, [id]);
  await db.pool.query(
    `UPDATE operation_deliveries SET delivered_at = ${ago}
     WHERE delivered_at IS NOT NULL AND event_id IN (SELECT id FROM operation_outbox WHERE aggregate_id IN (${ids}))`,
    [id],
  );
}

/**
 * Gives `eventId` a delivery row for audit as a failed delivery leaves it (the service's inline
 * deliveries succeed, and keep no row): dead since `deadAgo`, or still owed when that is null.
 */
async function failedDelivery(eventId: string, deadAgo: string | null): Promise<void> {
  await db.pool.query(
    `INSERT INTO operation_deliveries (event_id, subscriber, attempts, last_error, dead_at)
     VALUES ($1, 'audit', 1, 'down', now() - $2::interval)
     ON CONFLICT (event_id, subscriber) DO UPDATE SET delivered_at = NULL, dead_at = EXCLUDED.dead_at`,
    [eventId, deadAgo],
  );
}

/** The event about `aggregateId` with `topic`. */
async function eventId(aggregateId: string, topic: string): Promise<string> {
  const { rows } = await db.pool.query(
    `SELECT id::text FROM operation_outbox WHERE aggregate_id = $1 AND topic = $2`,
    [aggregateId, topic],
  );
  expect(rows).toHaveLength(1);
  return rows[0].id;
}

async function ids(table: string, where = "true"): Promise<string[]> {
  const { rows } = await db.pool.query(`SELECT id::text FROM ${table} WHERE ${where} ORDER BY id`);
  return rows.map((row) => row.id);
}

/** Every row of the module, by table: what a test compares before and after pruning. */
async function snapshot() {
  return {
    batches: await ids("operation_batches"),
    operations: await ids("operations"),
    events: await ids("operation_outbox"),
    deliveries: Number((await db.pool.query(`SELECT count(*) FROM operation_deliveries`)).rows[0].count),
    workers: await ids("operation_workers"),
  };
}

async function eventsAbout(aggregateIds: string[]): Promise<string[]> {
  const { rows } = await db.pool.query(
    `SELECT id::text FROM operation_outbox WHERE aggregate_id = ANY($1::uuid[]) ORDER BY id`,
    [aggregateIds],
  );
  return rows.map((row) => row.id);
}

async function childrenOf(batchId: string): Promise<string[]> {
  return ids("operations", `batch_id = '${batchId}'`);
}

describe("retention", () => {
  it("deletes exactly the expired rows of a backdated history, in bounded steps", async () => {
    const ops = syncService({ types: { "email.send": { completedDays: 1 } }, chunkSize: 2 });
    const queue = queueService();

    // Batches, each finished (or not) at a chosen age.
    const expiredCompleted = (await ops.submitBatch({ tenantId: "t1", type: "task", items: items(3) })).batch;
    const recentCompleted = (await ops.submitBatch({ tenantId: "t1", type: "task", items: items(2) })).batch;
    const keptFailed = (await ops.submitBatch({ tenantId: "t1", type: "task", items: items(2, true) })).batch;
    const expiredFailed = (await ops.submitBatch({ tenantId: "t2", type: "task", items: items(2, true) }))
      .batch;
    const deadEventBatch = (await ops.submitBatch({ tenantId: "t2", type: "task", items: items(1) })).batch;
    const owedEventBatch = (await ops.submitBatch({ tenantId: "t2", type: "task", items: items(1) })).batch;
    const cancelled = (await queue.submitBatch({ tenantId: "t1", type: "task", items: items(2) })).batch;
    await queue.cancelBatch("t1", cancelled.id);
    const inFlight = (await queue.submitBatch({ tenantId: "t1", type: "task", items: items(3) })).batch;
    const [firstChild] = await childrenOf(inFlight.id);
    const [claimed] = await storeOf(db.prisma).claimById([firstChild!], "test-worker", 60_000);
    await finish(db.prisma, claimed!, { to: "completed", result: {} });
    // Written without inline delivery: delivered here, as a relay would.
    await db.pool.query(`UPDATE operation_deliveries SET delivered_at = now() WHERE delivered_at IS NULL`);
    for (const [batch, status] of [
      [expiredCompleted, "completed"],
      [recentCompleted, "completed"],
      [keptFailed, "failed"],
      [expiredFailed, "failed"],
      [deadEventBatch, "completed"],
      [owedEventBatch, "completed"],
      [cancelled, "cancelled"],
    ] as const) {
      expect((await ops.getBatch(batch.tenantId, batch.id)).status).toBe(status);
    }
    await backdate("batch", expiredCompleted.id, 8); // completed, kept 7 days: goes
    await backdate("batch", recentCompleted.id, 6); // completed 6 days ago: stays
    await backdate("batch", keptFailed.id, 8); // failed, kept 30 days: stays
    await backdate("batch", expiredFailed.id, 31); // failed 31 days ago: goes
    await backdate("batch", cancelled.id, 31); // cancelled 31 days ago: goes
    await backdate("batch", deadEventBatch.id, 31); // would go, but one delivery died 10 days ago
    await backdate("batch", owedEventBatch.id, 31); // would go, but one event is still owed
    await backdate("batch", inFlight.id, 40); // in flight, with a child finished 40 days ago: stays
    const deadEvent = await eventId(deadEventBatch.id, "batch.completed");
    await failedDelivery(deadEvent, "10 days");
    const owedEvent = await eventId(owedEventBatch.id, "batch.completed");
    await failedDelivery(owedEvent, null);

    // Standalone operations.
    const expiredEmail = (
      await ops.submitOperation({ tenantId: "t1", type: "email.send", payload: { to: "a" } })
    ).operation;
    const keptTask = (await ops.submitOperation({ tenantId: "t1", type: "task", payload: { n: 1 } }))
      .operation;
    const expiredFailedTask = (
      await ops.submitOperation({ tenantId: "t1", type: "task", payload: { n: 2, fail: true } })
    ).operation;
    const oldPending = (
      await queue.submitOperation({
        tenantId: "t1",
        type: "task",
        payload: { n: 3 },
        runAt: "2999-01-01T00:00:00Z",
      })
    ).operation;
    await backdate("operation", expiredEmail.id, 2); // email.send keeps 1 day: goes
    await backdate("operation", keptTask.id, 2); // task keeps 7 days: stays
    await backdate("operation", expiredFailedTask.id, 31); // failed 31 days ago: goes
    await backdate("operation", oldPending.id, 100); // not finished: stays, whatever its age
    // An event of a kept operation whose delivery died 31 days ago: past deadEventDays, it goes.
    const longDead = await eventId(keptTask.id, "operation.completed");
    await failedDelivery(longDead, "31 days");

    // Workers: one stopped 25 hours ago goes; one seen now stays.
    await db.pool.query(`
      INSERT INTO operation_workers (id, hostname, pid, types, concurrency, heartbeat_ms, seen_at, stopped_at)
      VALUES ('gone-worker', 'h', 1, '{task}', 1, 1000, now() - interval '25 hours', now() - interval '25 hours'),
             ('live-worker', 'h', 2, '{task}', 1, 1000, now(), NULL)`);

    const before = await snapshot();
    const expectedGone = {
      batches: [expiredCompleted.id, expiredFailed.id, cancelled.id].sort(),
      operations: [
        ...(await childrenOf(expiredCompleted.id)),
        ...(await childrenOf(expiredFailed.id)),
        ...(await childrenOf(cancelled.id)),
        expiredEmail.id,
        expiredFailedTask.id,
      ].sort(),
      events: [
        // With their batch or operation:
        ...(await eventsAbout([expiredCompleted.id, ...(await childrenOf(expiredCompleted.id))])),
        ...(await eventsAbout([expiredFailed.id, ...(await childrenOf(expiredFailed.id))])),
        ...(await eventsAbout([cancelled.id, ...(await childrenOf(cancelled.id))])),
        ...(await eventsAbout([expiredEmail.id, expiredFailedTask.id])),
        // Delivered over 24 hours ago, about rows that stay:
        ...(await eventsAbout([recentCompleted.id, ...(await childrenOf(recentCompleted.id))])),
        ...(await eventsAbout([keptFailed.id, ...(await childrenOf(keptFailed.id))])),
        ...(await eventsAbout([deadEventBatch.id, ...(await childrenOf(deadEventBatch.id))])).filter(
          (id) => id !== deadEvent,
        ),
        ...(await eventsAbout([owedEventBatch.id, ...(await childrenOf(owedEventBatch.id))])).filter(
          (id) => id !== owedEvent,
        ),
        ...(await eventsAbout([keptTask.id])), // delivered long ago, or dead for 31 days
        ...(await eventsAbout([oldPending.id])), // its submit, delivered 100 days ago
        // The in-flight batch's, written 40 days ago and delivered:
        ...(await eventsAbout([inFlight.id, ...(await childrenOf(inFlight.id))])),
      ].sort((a, b) => Number(a) - Number(b)),
      workers: ["gone-worker"],
    };

    let passes = 0;
    const totals = { batches: 0, operations: 0, events: 0, workers: 0 };
    for (;;) {
      const pass = await ops.prune();
      passes++;
      for (const kind of Object.keys(totals) as (keyof typeof totals)[]) totals[kind] += pass.pruned[kind];
      if (!pass.more) break;
    }

    const after = await snapshot();
    const gone = (list: string[], kept: string[]) => list.filter((id) => !kept.includes(id));
    expect(gone(before.batches, after.batches).sort()).toEqual(expectedGone.batches);
    expect(gone(before.operations, after.operations).sort()).toEqual(expectedGone.operations);
    expect(gone(before.events, after.events).sort((a, b) => Number(a) - Number(b))).toEqual(
      expectedGone.events,
    );
    expect(gone(before.workers, after.workers)).toEqual(expectedGone.workers);
    // What stays is exactly what was there minus what went.
    expect(after.batches.sort()).toEqual(
      [recentCompleted.id, keptFailed.id, deadEventBatch.id, owedEventBatch.id, inFlight.id].sort(),
    );
    expect(after.events.sort()).toEqual([deadEvent, owedEvent].sort());
    // Deliveries go with their events; the kept events keep theirs.
    const { rows: deliveries } = await db.pool.query(
      `SELECT event_id::text FROM operation_deliveries ORDER BY 1`,
    );
    expect(deliveries.map((row) => row.event_id).sort()).toEqual([deadEvent, owedEvent].sort());
    expect(before.deliveries).toBeGreaterThan(deliveries.length);

    expect(totals).toEqual({
      batches: expectedGone.batches.length,
      operations: expectedGone.operations.length,
      events: expectedGone.events.length,
      workers: 1,
    });
    expect(ops.pruned).toEqual(totals);
    expect(passes).toBeGreaterThanOrEqual(1);
    const metrics = await ops.metrics();
    expect(metrics).toContain("# TYPE prisma_operations_pruned_total counter");
    expect(metrics).toContain(
      `prisma_operations_pruned_total{what="batches"} ${expectedGone.batches.length}`,
    );
    expect(metrics).toContain(`prisma_operations_pruned_total{what="events"} ${expectedGone.events.length}`);

    // A second pass finds nothing more.
    expect((await ops.prune()).pruned).toEqual({ batches: 0, operations: 0, events: 0, workers: 0 });
  });

  it("works through a backlog a bounded window at a time, and deletes a batch whole", async () => {
    const ops = syncService({ chunkSize: 3, maxChunksPerPass: 1, deliveredEventHours: Infinity });
    const big = (await ops.submitBatch({ tenantId: "t", type: "task", items: items(5) })).batch;
    const small = [];
    for (let i = 0; i < 4; i++)
      small.push((await ops.submitBatch({ tenantId: "t", type: "task", items: items(1) })).batch);
    for (const [i, batch] of [big, ...small].entries()) await backdate("batch", batch.id, 10 + (10 - i));

    // The oldest batch has 5 children, more than the window: it goes alone, and whole.
    const first = await ops.prune();
    expect(first).toEqual({
      pruned: { batches: 1, operations: 5, events: expect.any(Number), workers: 0 },
      more: true,
    });
    expect(await ids("operation_batches")).toEqual(small.map((b) => b.id).sort());
    expect(await childrenOf(big.id)).toEqual([]);
    // Then three one-child batches fill the next window, then the last one ends the walk.
    expect((await ops.prune()).pruned.batches).toBe(3);
    const last = await ops.prune();
    expect(last.pruned.batches).toBe(1);
    expect(last.more).toBe(false);
    expect(await ids("operation_batches")).toEqual([]);
  });

  it("skips a batch another transaction holds instead of waiting for it, and takes it later", async () => {
    const ops = syncService();
    const batch = (await ops.submitBatch({ tenantId: "t", type: "task", items: items(2) })).batch;
    await backdate("batch", batch.id, 8);
    const holder = await db.pool.connect();
    try {
      await holder.query("BEGIN");
      await holder.query(`SELECT 1 FROM operation_batches WHERE id = $1 FOR UPDATE`, [batch.id]);
      expect((await ops.prune()).pruned.batches).toBe(0);
      await holder.query("ROLLBACK");
    } finally {
      holder.release();
    }
    expect((await ops.prune()).pruned.batches).toBe(1);
  });

  it("never deletes a batch retried back into flight, nor its children", async () => {
    const ops = syncService();
    const queue = queueService();
    const batch = (await queue.submitBatch({ tenantId: "t", type: "task", items: items(2) })).batch;
    await queue.cancelBatch("t", batch.id);
    await backdate("batch", batch.id, 31);
    await queue.retryBatch("t", batch.id); // processing again, its children pending
    expect((await ops.prune()).pruned).toEqual({
      batches: 0,
      operations: 0,
      events: expect.any(Number),
      workers: 0,
    });
    expect(await ids("operation_batches")).toEqual([batch.id]);
    expect(await childrenOf(batch.id)).toHaveLength(2);
  });

  it("runs in the reaper, which reports what it deleted; `retention: false` keeps everything", async () => {
    const keepAll = syncService(false);
    const batch = (await keepAll.submitBatch({ tenantId: "t", type: "task", items: items(1) })).batch;
    await backdate("batch", batch.id, 400);
    expect(await keepAll.createReaper().runOnce()).toEqual({ reaped: 0, reconciled: 0 });
    expect(await keepAll.prune()).toEqual({
      pruned: { batches: 0, operations: 0, events: 0, workers: 0 },
      more: false,
    });
    expect(await ids("operation_batches")).toEqual([batch.id]);

    const ops = syncService();
    const pass = await ops.createReaper().runOnce();
    expect(pass.pruned).toEqual({ batches: 1, operations: 1, events: 3, workers: 0 });
    expect(await ids("operation_batches")).toEqual([]);
  });

  it("refuses a policy that makes no sense, naming the setting", () => {
    expect(() => syncService({ completedDays: -1 })).toThrow("retention.completedDays must be a number >= 0");
    expect(() => syncService({ types: { task: { failedDays: Number.NaN } } })).toThrow(
      "retention.types.task.failedDays",
    );
    expect(() => syncService({ chunkSize: 0 })).toThrow("retention.chunkSize must be a whole number >= 1");
  });
});

describe("retention racing operators", () => {
  /** A service with retention on connections of its own, named `applicationName` (a test sees when it waits). */
  const named = (applicationName: string) =>
    createOperations({
      ...db.newConnection({ applicationName }),
      types,
      logger: silentLogger,
      subscribers: [audit],
      retention: {},
    });

  it("redeliverDead racing the pruner: the delivery it revives stays, and its count is true", async () => {
    const ops = syncService();
    const batch = (await ops.submitBatch({ tenantId: "t", type: "task", items: items(1) })).batch;
    await backdate("batch", batch.id, 8);
    const event = await eventId(batch.id, "batch.completed");
    await failedDelivery(event, "31 days"); // dead for longer than deadEventDays: the batch may go
    const pruner = named("pruner");
    // A transaction holds the event as a delivery row written for it does (its foreign key's lock).
    const holder = await db.pool.connect();
    try {
      await holder.query("BEGIN");
      await holder.query(`SELECT 1 FROM operation_outbox WHERE id = $1 FOR KEY SHARE`, [event]);
      const pass = pruner.prune();
      await settledOrWaiting(pass, db.pool, "pruner", "the pruner to end or wait for the event");
      // The operator revives the dead delivery meanwhile, and is told so.
      expect(await ops.redeliverDead({ subscriber: "audit" })).toBe(1);
      await holder.query("ROLLBACK");
      await pass;
    } finally {
      holder.release();
    }
    const { rows } = await db.pool.query(
      `SELECT event_id::text AS event, dead_at FROM operation_deliveries WHERE subscriber = 'audit'`,
    );
    expect(rows).toEqual([{ event, dead_at: null }]);
    // Owed again, it keeps its event and its batch.
    expect((await pruner.prune()).pruned.batches).toBe(0);
    expect(await ids("operation_batches")).toEqual([batch.id]);
  });

  it("replayEvents racing the pruner: the deliveries it adds stay, with their events", async () => {
    const ops = syncService();
    const batch = (await ops.submitBatch({ tenantId: "t", type: "task", items: items(1) })).batch;
    await backdate("batch", batch.id, 8); // completed 8 days ago, every event delivered: it may go
    const event = await eventId(batch.id, "batch.completed");
    // A subscriber registered now, which is given the batch's events by a replay.
    await createOperations({
      ...db.connection,
      types,
      logger: silentLogger,
      subscribers: [{ name: "late", deliver: () => undefined }],
    }).ready();
    const pruner = named("pruner");
    const holder = await db.pool.connect();
    let replayed: number;
    try {
      await holder.query("BEGIN");
      await holder.query(`SELECT 1 FROM operation_outbox WHERE id = $1 FOR KEY SHARE`, [event]);
      const pass = pruner.prune();
      await settledOrWaiting(pass, db.pool, "pruner", "the pruner to end or wait for the event");
      const replay = named("operator").replayEvents("late");
      await settledOrWaiting(replay, db.pool, "operator", "the replay to end or wait for the pruner");
      await holder.query("ROLLBACK");
      [replayed] = await Promise.all([replay, pass]);
    } finally {
      holder.release();
    }
    expect(replayed).toBe((await eventsAbout([batch.id, ...(await childrenOf(batch.id))])).length);
    const { rows } = await db.pool.query(
      `SELECT count(*)::int AS n FROM operation_deliveries WHERE subscriber = 'late'`,
    );
    expect(rows[0].n).toBe(replayed);
    expect(await ids("operation_batches")).toEqual([batch.id]);
  });

  it("replayEvents meeting an event retention is deleting skips it, and counts only what it added", async () => {
    const ops = syncService();
    const batch = (await ops.submitBatch({ tenantId: "t", type: "task", items: items(1) })).batch;
    const events = await eventsAbout([batch.id, ...(await childrenOf(batch.id))]);
    await createOperations({
      ...db.connection,
      types,
      logger: silentLogger,
      subscribers: [{ name: "late", deliver: () => undefined }],
    }).ready();
    // Retention deleting one of the events, under its lock, not committed yet.
    const deleting = await db.pool.connect();
    let replayed: number;
    try {
      await deleting.query("BEGIN");
      await deleting.query(`DELETE FROM operation_outbox WHERE id = $1`, [events[0]]);
      const replay = named("operator").replayEvents("late");
      await settledOrWaiting(replay, db.pool, "operator", "the replay to end or wait for the delete");
      await deleting.query("COMMIT");
      replayed = await replay;
    } finally {
      deleting.release();
    }
    expect(replayed).toBe(events.length - 1);
    const { rows } = await db.pool.query(
      `SELECT count(*)::int AS n FROM operation_deliveries WHERE subscriber = 'late'`,
    );
    expect(rows[0].n).toBe(replayed);
  });

  it("a retry and the pruner on the same batch: neither is a deadlock victim", async () => {
    const ops = syncService();
    const batch = (await ops.submitBatch({ tenantId: "t", type: "task", items: items(2, true) })).batch;
    await backdate("batch", batch.id, 31); // failed 31 days ago: the pruner may take it
    const tables = tablesIn();
    const target = { batchId: batch.id, tenantId: "t" };
    const before = await deadlocks(db.pool);
    const pruning = db.newConnection({ applicationName: "pruner" });
    const pruner = createOperations({ ...pruning, types, logger: silentLogger, retention: {} });
    // A retry, as retryBatch runs it: its first statement locks the failed children …
    const retry = await db.pool.connect();
    try {
      await retry.query("BEGIN");
      const lock = lockFinished(tables, target);
      const locked = (await retry.query(lock.text, lock.values)).rows as { id: string; status: string }[];
      expect(locked).toHaveLength(2);
      const pass = pruner.prune();
      await settledOrWaiting(pass, db.pool, "pruner", "the pruner to end or wait for the children");
      // … its second moves them and the batch.
      const requeue = requeueLocked(tables, locked, NO_INLINE);
      const results = await Promise.allSettled([pass, retry.query(requeue.text, requeue.values)]);
      const failures = results.flatMap((result) =>
        result.status === "rejected" ? [String((result.reason as Error).message)] : [],
      );
      await retry.query(failures.length === 0 ? "COMMIT" : "ROLLBACK");
      expect(failures).toEqual([]);
    } finally {
      retry.release();
    }
    expect((await ops.getBatch("t", batch.id)).status).toBe("processing");
    // The service runs a deadlock victim's statement again, so only PostgreSQL's count tells.
    await endBackends(db.pool, pruning.pool, "pruner");
    expect((await deadlocks(db.pool)) - before).toBe(0);
  });

  it("pruning against retries, redeliveries, replays and removals, round after round: no deadlock victim, every answer true", async () => {
    const rounds = 25;
    const before = await deadlocks(db.pool);
    // Each actor on connections of its own: the service runs a deadlock victim's statement again,
    // so only PostgreSQL's count tells, once their backends have ended.
    const actors = ["pruner-a", "pruner-b", "operator"].map((name) => {
      const connection = db.newConnection({ applicationName: name, max: 4 });
      const service = createOperations({ ...connection, types, logger: silentLogger, retention: {} });
      return { name, connection, service };
    });
    const [prunerA, prunerB, operator] = actors.map((actor) => actor.service) as [
      ReturnType<typeof queueService>,
      ReturnType<typeof queueService>,
      ReturnType<typeof queueService>,
    ];
    const writer = createOperations({ ...db.connection, types, logger: silentLogger });
    const wrong: string[] = [];
    for (let round = 0; round < rounds; round++) {
      await truncateAll(db.pool);
      const gone = `gone-${round}`;
      const late = `late-${round}`;
      await db.pool.query(
        `INSERT INTO operation_subscribers (name, topics) VALUES ('audit', '{}'), ($1, '{}')`,
        [gone],
      );
      // Four failed batches, long expired, whose events are owed to `gone` and dead long ago for audit.
      const batches: string[] = [];
      for (let b = 0; b < 4; b++) {
        batches.push((await writer.submitBatch({ tenantId: "t", type: "task", items: items(3) })).batch.id);
      }
      await db.pool.query(
        `UPDATE operations SET status = 'failed', finished_at = now(), error = '{"message":"down"}'`,
      );
      await db.pool.query(
        `UPDATE operation_batches SET failed_count = child_count, status = 'failed', finished_at = now()`,
      );
      for (const id of batches) await backdate("batch", id, 31);
      await db.pool.query(
        `UPDATE operation_deliveries SET attempts = 1, dead_at = now() - interval '31 days' WHERE subscriber = 'audit'`,
      );
      const [child] = await childrenOf(batches[2]!);
      // Registered after the batches' events: a replay gives them to it.
      await db.pool.query(`INSERT INTO operation_subscribers (name, topics) VALUES ($1, '{}')`, [late]);

      const calls = {
        pruneA: prunerA.prune(),
        retry0: operator.retryBatch("t", batches[0]!),
        pruneB: prunerB.prune(),
        retry1: operator.retryBatch("t", batches[1]!),
        retryChild: operator.retryOperation("t", child!),
        redelivered: operator.redeliverDead({ subscriber: "audit" }),
        removed: operator.removeSubscriber(gone),
        replayed: operator.replayEvents(late),
      };
      const settled = await Promise.allSettled(Object.values(calls));
      const results = Object.fromEntries(Object.keys(calls).map((key, i) => [key, settled[i]!]));
      for (const [call, result] of Object.entries(results)) {
        if (result.status === "fulfilled") continue;
        // A retry may find its batch gone, taken by a pruner first: a true answer.
        if (call.startsWith("retry") && result.reason instanceof NotFoundError) continue;
        wrong.push(`round ${round} ${call}: ${String(result.reason)}`);
      }
      // Every answer is true: a retried batch is in flight, every revived delivery is there, and
      // nothing is owed to the subscriber removed.
      for (const [call, id] of [
        ["retry0", batches[0]!],
        ["retry1", batches[1]!],
      ] as const) {
        if (results[call]!.status === "fulfilled" && !(await ids("operation_batches")).includes(id)) {
          wrong.push(`round ${round} ${call}: retried, then deleted`);
        }
      }
      const redelivered = results.redelivered!;
      if (redelivered.status === "fulfilled") {
        const { rows } = await db.pool.query(
          // (the submits' events: those the retries wrote are owed to audit too)
          `SELECT count(*)::int AS n FROM operation_deliveries d JOIN operation_outbox e ON e.id = d.event_id
           WHERE d.subscriber = 'audit' AND d.dead_at IS NULL AND e.topic = 'batch.submitted'`,
        );
        if (rows[0].n !== redelivered.value) {
          wrong.push(`round ${round}: told ${String(redelivered.value)} redelivered, ${rows[0].n} there`);
        }
      }
      const replayed = results.replayed!;
      if (replayed.status === "fulfilled") {
        const { rows } = await db.pool.query(
          `SELECT count(*)::int AS n FROM operation_deliveries d JOIN operation_outbox e ON e.id = d.event_id
           WHERE d.subscriber = $1 AND e.topic = 'batch.submitted'`,
          [late],
        );
        if (rows[0].n !== replayed.value) {
          wrong.push(`round ${round}: told ${String(replayed.value)} replayed, ${rows[0].n} there`);
        }
      }
      const left = await orphans(db.pool);
      if (left.deliveries + left.holds > 0) wrong.push(`round ${round}: ${JSON.stringify(left)} orphans`);
    }
    expect(wrong).toEqual([]);
    for (const actor of actors) await endBackends(db.pool, actor.connection.pool, actor.name);
    expect((await deadlocks(db.pool)) - before).toBe(0);
  }, 120_000);
});
