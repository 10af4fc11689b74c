// The relay: many at once never deliver an event twice while deliveries succeed; failures back off
// and end dead; a relay that dies mid-delivery hands its deliveries back when its lease runs out.
import { Client } from "pg";
import {
  createOperations,
  OUTBOX_CHANNEL,
  silentLogger,
  type DeliveredEvent,
  type EventSubscriber,
} from "../../src";
import { poolDb } from "../../src/store/pool";
import { createTestDatabase, type TestDatabase } from "../support/db";
import { documents, orphans, settledOrWaiting, truncateAll, types, waitFor } from "../support/fixtures";
import { NO_INLINE, storeOf } from "../support/store";

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.close());
beforeEach(() => truncateAll(db.pool));

function service(subscriber: EventSubscriber, outbox = {}, prisma = db.prisma) {
  return createOperations({ prisma, types, logger: silentLogger, subscribers: [subscriber], outbox });
}

/** A process without subscribers (an API, say): every delivery it writes is left to the relays. */
const withoutSubscribers = () => createOperations({ prisma: db.prisma, types, logger: silentLogger });

/** A process with subscriber `name`, and what it receives. */
async function receiving(name: string) {
  const delivered: DeliveredEvent[] = [];
  const ops = service({ name, deliver: (event) => void delivered.push(event) });
  await ops.ready();
  return { ops, delivered };
}

/** Events written by a process without subscribers: every delivery is left to the relays. */
async function writeEvents(count: number): Promise<string[]> {
  const rows = await storeOf(db.prisma).insertEvents(
    Array.from({ length: count }, (_, i) => ({
      tenantId: "t",
      topic: "test.event",
      aggregateId: "00000000-0000-7000-8000-000000000000",
      payload: { n: i },
    })),
    NO_INLINE,
  );
  return rows.map((row) => row.id);
}

const backdate = () =>
  db.pool.query(`UPDATE operation_deliveries SET available_at = now() - interval '1 second'`);

describe("the outbox relay", () => {
  it("8 relays on separate connections deliver 600 events exactly once each", async () => {
    const delivered: string[] = [];
    const prismas = Array.from({ length: 8 }, () => db.newPrisma({ max: 2 }));
    const services = prismas.map((prisma) =>
      service(
        {
          name: "recorder",
          deliver: async (event) => {
            delivered.push(event.id);
            await new Promise((resolve) => setImmediate(resolve));
          },
        },
        {},
        prisma,
      ),
    );
    await services[0]!.ready(); // the subscriber exists before the events are written
    const ids = await writeEvents(600);
    const relays = services.map((ops) => ops.createRelay({ batchSize: 25 }));
    const passes = await Promise.all(
      relays.map(async (relay) => {
        let claimed = 0;
        for (;;) {
          const pass = await relay.runOnce();
          if (pass.claimed === 0) return claimed;
          claimed += pass.claimed;
        }
      }),
    );
    expect(delivered.length).toBe(600);
    expect(new Set(delivered)).toEqual(new Set(ids));
    expect(passes.filter((claimed) => claimed > 0).length).toBeGreaterThan(1); // they really shared the work
    const { rows } = await db.pool.query(
      `SELECT count(*) FILTER (WHERE delivered_at IS NULL)::int AS undelivered, max(attempts)::int AS attempts
       FROM operation_deliveries WHERE subscriber = 'recorder'`,
    );
    expect(rows[0]).toEqual({ undelivered: 0, attempts: 1 });
    await Promise.all(prismas.map((prisma) => prisma.$disconnect()));
  });

  it("backs off after each failure and marks the delivery dead after maxAttempts", async () => {
    const attempts: number[] = [];
    const ops = service(
      {
        name: "always-down",
        deliver: (event) => {
          attempts.push(event.attempt);
          throw new Error("endpoint down");
        },
      },
      { maxAttempts: 3, backoff: { baseMs: 60_000, maxMs: 60_000, jitter: 0 } },
    );
    await ops.ready();
    const [id] = await writeEvents(1);
    const relay = ops.createRelay();

    expect(await relay.runOnce()).toEqual({ claimed: 1, delivered: 0, failed: 1 });
    const { rows: waiting } = await db.pool.query(
      `SELECT round(extract(epoch FROM available_at - now()))::int AS wait_s, last_error, dead_at FROM operation_deliveries`,
    );
    expect(waiting[0]).toEqual({ wait_s: 60, last_error: "endpoint down", dead_at: null });
    expect(await relay.runOnce()).toEqual({ claimed: 0, delivered: 0, failed: 0 }); // backing off

    await backdate();
    await relay.runOnce();
    await backdate();
    await relay.runOnce();
    expect(attempts).toEqual([1, 2, 3]);
    const { rows: dead } = await db.pool.query(
      `SELECT event_id::text AS id, attempts, dead_at IS NOT NULL AS dead FROM operation_deliveries`,
    );
    expect(dead).toEqual([{ id, attempts: 3, dead: true }]);
    await backdate();
    expect(await relay.runOnce()).toEqual({ claimed: 0, delivered: 0, failed: 0 });
    // Redelivery is an API call: a fresh budget of attempts, due at once.
    expect(await ops.redeliverDead({ subscriber: "always-down" })).toBe(1);
    expect(await relay.runOnce()).toEqual({ claimed: 1, delivered: 0, failed: 1 });
    expect(attempts).toEqual([1, 2, 3, 1]);
  });

  it("a relay stalled through a whole retry cycle records nothing once its delivery is redelivered", async () => {
    const ops = service({ name: "flaky", deliver: () => undefined });
    await ops.ready();
    await writeEvents(1);
    const store = storeOf(db.prisma);
    const ref = (claimed: { event: { id: string }; attempts: number }) => ({
      eventId: claimed.event.id,
      subscriber: "flaky",
      claimedAttempts: claimed.attempts,
    });
    // A relay claims the delivery and stalls; its lease runs out and another relay's attempt uses
    // up the budget: the delivery is dead.
    const [stalled] = await store.claimDeliveries("flaky", 10, 60_000);
    await backdate();
    const [last] = await store.claimDeliveries("flaky", 10, 60_000);
    expect(await store.markFailed(ref(last!), "down", null)).toBe(1);
    // An operator redelivers it, and a relay claims it again.
    expect(await ops.redeliverDead({ subscriber: "flaky" })).toBe(1);
    const [fresh] = await store.claimDeliveries("flaky", 10, 60_000);
    // A fresh budget (its first attempt again), under a claim number no earlier claim had.
    expect(fresh).toMatchObject({ attempt: 1, attempts: 3 });
    // The stalled relay comes back: its claim is long gone, so nothing it sends is recorded.
    expect(await store.extendDeliveries([ref(stalled!)], 60_000)).toBe(0);
    expect(await store.markFailed(ref(stalled!), "timed out long ago", null)).toBe(0);
    // The fresh claim's outcome is.
    expect(await store.markDelivered([ref(fresh!)])).toBe(1);
  });

  it("takes back deliveries whose relay died mid-delivery, once its lease has run out", async () => {
    const delivered: DeliveredEvent[] = [];
    const ops = service({ name: "recorder", deliver: (event) => void delivered.push(event) });
    await ops.ready();
    await writeEvents(3);
    // A relay of another process claims all three and dies before delivering (no one extends its claim).
    expect(await storeOf(db.prisma).claimDeliveries("recorder", 10, 60_000)).toHaveLength(3);
    const healthy = ops.createRelay();
    expect(await healthy.runOnce()).toEqual({ claimed: 0, delivered: 0, failed: 0 }); // still leased

    await backdate(); // the lease runs out
    expect(await healthy.runOnce()).toEqual({ claimed: 3, delivered: 3, failed: 0 });
    expect(delivered.map((event) => event.attempt)).toEqual([2, 2, 2]);
  });

  it("a delivery that never returns times out, is recorded failed, and frees the relay", async () => {
    const ops = service(
      { name: "hangs", deliver: () => new Promise<void>(() => undefined) },
      { deliveryTimeoutMs: 50, backoff: { baseMs: 60_000, maxMs: 60_000, jitter: 0 } },
    );
    await ops.ready();
    await writeEvents(2);
    expect(await ops.createRelay().runOnce()).toEqual({ claimed: 2, delivered: 0, failed: 2 });
    const { rows } = await db.pool.query(`SELECT DISTINCT last_error FROM operation_deliveries`);
    expect(rows).toEqual([{ last_error: "delivery timed out after 50 ms" }]);
  });

  it("keeps the relay off an event while the committing process delivers it inline", async () => {
    let release: () => void = () => undefined;
    const inline: DeliveredEvent[] = [];
    const relayed: DeliveredEvent[] = [];
    const ops = service({
      name: "slow",
      deliver: (event) =>
        new Promise<void>((resolve) => {
          inline.push(event);
          release = resolve;
        }),
    });
    const submitted = ops.submitBatch({ tenantId: "t", type: "documents.ingest", items: documents(2) });
    await waitFor("the inline delivery to start", () => inline.length === 1);
    // The same subscriber in another process: its relay keeps off while the inline delivery runs.
    const relay = service({ name: "slow", deliver: (event) => void relayed.push(event) }).createRelay();
    expect(await relay.runOnce()).toEqual({ claimed: 0, delivered: 0, failed: 0 });
    release();
    expect((await submitted).dispatch).toEqual({ status: "delivered" });
    await backdate();
    expect(await relay.runOnce()).toEqual({ claimed: 0, delivered: 0, failed: 0 });
    expect(relayed).toEqual([]);
  });

  it("records a pass's deliveries together while it delivers, not one statement each", async () => {
    const delivered: number[] = [];
    const ops = service({
      name: "recorder",
      deliver: (event) => {
        const n = (event.payload as { n: number }).n;
        if (n === 60) throw new Error("rejected");
        delivered.push(n);
      },
    });
    await ops.ready();
    await writeEvents(100);
    expect(await ops.createRelay({ batchSize: 100 }).runOnce()).toEqual({
      claimed: 100,
      delivered: 99,
      failed: 1,
    });
    expect(delivered).toEqual([...Array(100).keys()].filter((n) => n !== 60)); // in order
    // Every outcome is recorded when the pass returns. Each mark statement stamps its rows with its
    // own transaction's now(): a statement per delivery would give dozens of distinct stamps.
    const { rows } = await db.pool.query(
      `SELECT count(*) FILTER (WHERE delivered_at IS NOT NULL)::int AS marked,
              count(DISTINCT delivered_at)::int AS statements,
              count(*) FILTER (WHERE delivered_at IS NULL AND last_error = 'rejected')::int AS failed
       FROM operation_deliveries WHERE subscriber = 'recorder'`,
    );
    expect(rows[0]).toEqual({ marked: 99, statements: expect.any(Number), failed: 1 });
    // one in flight when the first succeeds, the rest before and after the failure's own record
    expect(rows[0].statements).toBeLessThanOrEqual(4);
  });

  it("a listening worker's relay delivers another process's events at once, not at its next poll", async () => {
    const { ops: remote, delivered } = await receiving("remote");
    await writeEvents(1); // for the relay's first pass, at start: after it, the next poll is a minute away
    const worker = remote.createWorker({
      handlers: { "email.send": () => undefined }, // not the type submitted below: it stays pending
      listen: { connectionString: db.url },
      relay: { pollIntervalMs: 60_000 },
    });
    await worker.start();
    try {
      await waitFor("the relay's first pass", () => delivered.length === 1);
      // The writing process has no subscriber "remote": the delivery is due at once, for a relay.
      const writing = withoutSubscribers();
      const { batch } = await writing.submitBatch({
        tenantId: "t",
        type: "documents.ingest",
        items: documents(2),
      });
      await waitFor("the relay to deliver batch.submitted", () => delivered.length === 2, 5_000);
      expect(delivered[1]).toMatchObject({ topic: "batch.submitted", aggregateId: batch.id, attempt: 1 });
    } finally {
      await worker.stop();
    }
  });

  it("a relay of its own with `listen` wakes the same way", async () => {
    const { ops: remote, delivered } = await receiving("remote");
    const relay = remote
      .createRelay({ pollIntervalMs: 60_000, listen: { connectionString: db.url } })
      .start();
    try {
      // Listening, and no pass in progress: from now on only a wake-up runs one within the minute.
      await waitFor(
        "the relay's listener and first passes",
        () => relay.listenerConnections === 1 && relay.betweenPasses,
      );
      const writing = withoutSubscribers();
      await writing.submitOperation({
        tenantId: "t",
        type: "email.send",
        payload: { to: "a@b.co", subject: "s" },
      });
      await waitFor("the relay to deliver operation.submitted", () => delivered.length === 1, 5_000);
      expect(delivered[0]).toMatchObject({ topic: "operation.submitted", attempt: 1 });
    } finally {
      await relay.stop();
    }
  });

  it("stores a delivery due at once no later than its transaction's now(), so a relay woken by the commit finds it due", async () => {
    // available_at keeps milliseconds and rounds: a plain now() landed up to half a millisecond in
    // the future about half the time, and a relay woken within it found nothing and waited its poll.
    await receiving("remote");
    const writing = withoutSubscribers();
    for (let attempt = 0; attempt < 40; attempt++) {
      const notYetDue = await db.prisma.$transaction(async (tx) => {
        await writing.submitOperation(
          { tenantId: "t", type: "email.send", payload: { to: "a@b.co", subject: "s" } },
          { tx },
        );
        const rows = await tx.$queryRaw<{ n: number }[]>`
          SELECT count(*)::int AS n FROM operation_deliveries WHERE subscriber = 'remote' AND available_at > now()`;
        return rows[0]!.n;
      });
      expect(notYetDue).toBe(0);
    }
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM operation_deliveries`)).rows[0].n).toBe(40);
  });

  it("notifies once per subscriber with deliveries due elsewhere; never for inline ones or a rollback", async () => {
    await service({ name: "remote", deliver: () => undefined }).ready();
    const inline = service({ name: "local", deliver: () => undefined });
    await inline.ready();
    const listener = new Client({ connectionString: db.url });
    await listener.connect();
    const heard: string[] = [];
    listener.on("notification", (message) => {
      if (message.channel === OUTBOX_CHANNEL) heard.push(message.payload ?? "");
    });
    await listener.query(`LISTEN ${OUTBOX_CHANNEL}`);
    try {
      const email = (to: string) => ({
        tenantId: "t",
        type: "email.send" as const,
        payload: { to, subject: "s" },
      });
      // "local" is inline in its own process; "remote" is not: one notification, for "remote".
      await inline.submitOperation(email("a@b.co"));
      // Rolled back: nothing is notified.
      await expect(
        inline.transaction(async (tx) => {
          await inline.submitOperation(email("b@b.co"), { tx });
          throw new Error("rolled back");
        }),
      ).rejects.toThrow("rolled back");
      // A process with no subscriber: both are due elsewhere, and each is named once however many events.
      const none = withoutSubscribers();
      await none.submitBatch({ tenantId: "t", type: "documents.ingest", items: documents(3) });
      await waitFor("the last statement's notifications", () => heard.length >= 3);
      // Notifications arrive in commit order: the first submit's one, none for the rollback, then these two.
      expect(heard).toHaveLength(3);
      expect(heard[0]).toBe("remote");
      expect(heard.slice(1).sort()).toEqual(["local", "remote"]);
    } finally {
      await listener.end();
    }
  });

  it("delivers in the background once started, and stops cleanly", async () => {
    const delivered: DeliveredEvent[] = [];
    const ops = service({ name: "recorder", deliver: (event) => void delivered.push(event) });
    await ops.ready();
    const relay = ops.createRelay({ pollIntervalMs: 10 }).start();
    await writeEvents(5);
    await waitFor("the background relay to deliver all five", () => delivered.length === 5);
    await relay.stop();
    expect(delivered.map((event) => (event.payload as { n: number }).n).sort()).toEqual([0, 1, 2, 3, 4]);
  });
});

describe("removeSubscriber racing writes", () => {
  /** A service on connections of its own, named `applicationName`: a test sees when it waits for a lock. */
  const named = (applicationName: string, options: { retention?: object } = {}) =>
    createOperations({ ...db.newConnection({ applicationName }), types, logger: silentLogger, ...options });

  /** Moves every finished row `days` into the past: old enough for retention. */
  const backdateAll = async (days: number) => {
    const ago = `now() - make_interval(days => ${days})`;
    await db.pool.query(`UPDATE operation_batches SET finished_at = ${ago} WHERE finished_at IS NOT NULL`);
    await db.pool.query(`UPDATE operations SET finished_at = ${ago} WHERE finished_at IS NOT NULL`);
    await db.pool.query(`UPDATE operation_outbox SET created_at = ${ago}`);
  };

  it("waits for a write that owes the subscriber already, and removes what it wrote: nothing is left to keep its batch", async () => {
    await receiving("remote"); // registered by a process that has it
    const writing = withoutSubscribers();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let written!: (owed: number) => void;
    const owedByWrite = new Promise<number>((resolve) => (written = resolve));
    // A caller's transaction: its submit owes "remote" its events, and it has not committed yet.
    const write = writing.transaction(async (tx) => {
      const { batch } = await writing.submitBatch(
        { tenantId: "t", type: "documents.ingest", items: documents(2) },
        { tx },
      );
      const rows = await (tx as unknown as typeof db.prisma).$queryRaw<{ n: number }[]>`
        SELECT count(*)::int AS n FROM operation_deliveries WHERE subscriber = 'remote'`;
      written(rows[0]!.n);
      await gate;
      return batch;
    });
    const owed = await owedByWrite;
    expect(owed).toBeGreaterThan(0);
    const removal = named("remover").removeSubscriber("remote");
    await settledOrWaiting(removal, db.pool, "remover", "the removal to end or wait for the write");
    release();
    const batch = await write;
    const removed = await removal;

    expect(await orphans(db.pool)).toEqual({ deliveries: 0, holds: 0 });
    // Nothing owed to a subscriber that is gone keeps the batch: once finished and old, it goes.
    await writing.cancelBatch("t", batch.id);
    await backdateAll(40);
    expect((await named("pruner", { retention: {} }).prune()).pruned.batches).toBe(1);
    expect(removed).toEqual({ removed: true, deliveries: owed });
  });

  it("a write that starts while a removal is under way owes the subscriber nothing", async () => {
    await receiving("remote");
    await writeEvents(2);
    // A relay of "remote" holds one of its delivery rows (as its record of an outcome does): the
    // removal, which deletes them, waits for it with the subscriber's row deleted but not committed.
    const relay = await db.pool.connect();
    try {
      await relay.query("BEGIN");
      await relay.query(
        `SELECT 1 FROM operation_deliveries WHERE subscriber = 'remote' ORDER BY event_id LIMIT 1 FOR UPDATE`,
      );
      const removal = named("remover").removeSubscriber("remote");
      expect(await settledOrWaiting(removal, db.pool, "remover", "the removal to wait for the relay")).toBe(
        "waiting",
      );
      const submit = named("writer").submitOperation({
        tenantId: "t",
        type: "email.send",
        payload: { to: "a@b.co", subject: "s" },
      });
      await settledOrWaiting(submit, db.pool, "writer", "the submit to end or wait for the removal");
      await relay.query("ROLLBACK");
      await submit;
      expect(await removal).toEqual({ removed: true, deliveries: 2 });
    } finally {
      relay.release();
    }
    expect(await orphans(db.pool)).toEqual({ deliveries: 0, holds: 0 });
    const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM operation_outbox`);
    expect(rows[0].n).toBe(3); // the submit's event was written, owed to no one
  });

  it("a hold settled while the removal runs leaves no delivery row behind", async () => {
    const { ops } = await receiving("remote");
    // Held for "remote" by its process, which delivers it inline after its commit.
    const [event] = await storeOf(db.prisma).insertEvents(
      [
        {
          tenantId: "t",
          topic: "test.event",
          aggregateId: "00000000-0000-7000-8000-000000000000",
          payload: {},
        },
      ],
      ops.dispatcher.inline,
    );
    const hold = event!.heldFor[0]!.hold;
    // Its settle: the delivery failed, so the hold becomes a delivery row for the relays — in a
    // transaction that has not committed when the removal starts.
    const settler = await db.pool.connect();
    try {
      await settler.query("BEGIN");
      await storeOf(poolDb(settler, { prepare: false })).settleHolds([
        { hold, failures: [{ eventId: event!.id, error: "down", retryDelayMs: 1_000 }] },
      ]);
      const removal = named("remover").removeSubscriber("remote");
      await settledOrWaiting(removal, db.pool, "remover", "the removal to end or wait for the settle");
      await settler.query("COMMIT");
      const removed = await removal;
      expect(await orphans(db.pool)).toEqual({ deliveries: 0, holds: 0 });
      expect(removed).toEqual({ removed: true, deliveries: 1 });
    } finally {
      settler.release();
    }
  });
});
