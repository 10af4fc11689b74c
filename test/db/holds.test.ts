// Holds: the deliveries a process makes itself right after its commit are one row per statement and
// subscriber, settled (deleted) once delivered. What must hold: a success leaves nothing behind, a
// failure leaves a delivery row for the relays, a process that never settles loses nothing (a relay
// takes the hold over once it runs out), a settle and a takeover racing each other give every event
// to exactly one of them, and nothing that reads the outbox — stats, retention, replay, removal —
// forgets what a hold still owes.
import {
  createOperations,
  silentLogger,
  type DeliveredEvent,
  type EventSubscriber,
  type WrittenEvent,
} from "../../src";
import { registerSubscribers, settleHolds } from "../../src/store/statements/outbox";
import { tablesIn } from "../../src/store/tables";
import { createTestDatabase, type TestDatabase } from "../support/db";
import { afterRegistration, truncateAll, types, waitFor } from "../support/fixtures";
import { storeOf } from "../support/store";

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.close());
beforeEach(() => truncateAll(db.pool));

function service(subscribers: EventSubscriber[], outbox = {}) {
  return createOperations({ ...db.connection, types, logger: silentLogger, subscribers, outbox });
}

function recorder(name: string, into: DeliveredEvent[]): EventSubscriber {
  return { name, deliver: (event) => void into.push(event) };
}

const email = (n: number) => ({ to: `user${n}@example.com`, subject: `hello ${n}` });

/** A service whose subscriber "audit" wants `topics` and records what it gets in `received`. */
function auditing(received: DeliveredEvent[], topics: string[]) {
  return createOperations({
    ...db.connection,
    types,
    logger: silentLogger,
    subscribers: [{ name: "audit", topics, deliver: (e: DeliveredEvent) => void received.push(e) }],
  });
}

/** Resolves once a registration of a subscriber waits for another one's row lock. */
function registrationWaits(): Promise<void> {
  return waitFor("the registration to wait for the other one", async () => {
    const { rows } = await db.pool.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity
       WHERE datname = current_database() AND wait_event_type = 'Lock'
         AND query LIKE '%INSERT INTO%operation_subscribers%'`,
    );
    return rows[0].n >= 1;
  });
}

/**
 * Writes `count` events as a process with subscriber `name` does (held for it), in statements of
 * `perStatement`, and never delivers them: the process stopped between its commit and its settle.
 */
async function heldAndAbandoned(name: string, count: number, perStatement = 10): Promise<WrittenEvent[]> {
  const ops = service([{ name, deliver: () => undefined }]);
  await ops.ready();
  const written: WrittenEvent[] = [];
  for (let start = 0; start < count; start += perStatement) {
    const events = Array.from({ length: Math.min(perStatement, count - start) }, (_, i) => ({
      tenantId: "t",
      topic: "test.event",
      aggregateId: "00000000-0000-7000-8000-000000000000",
      payload: { n: start + i },
    }));
    written.push(...(await storeOf(db.prisma).insertEvents(events, ops.dispatcher.inline)));
  }
  return written;
}

const runOut = () =>
  db.pool.query(`UPDATE operation_delivery_holds SET held_until = now() - interval '1 second'`);

async function owed(): Promise<{ rows: number; undelivered: number; holds: number; held: number }> {
  const { rows } = await db.pool.query(`
    SELECT (SELECT count(*) FROM operation_deliveries)::int AS rows,
           (SELECT count(*) FROM operation_deliveries WHERE delivered_at IS NULL)::int AS undelivered,
           (SELECT count(*) FROM operation_delivery_holds)::int AS holds,
           (SELECT COALESCE(sum(cardinality(event_ids)), 0) FROM operation_delivery_holds)::int AS held`);
  return rows[0];
}

describe("a hold", () => {
  it("is one row per statement and subscriber, settled away once its events are delivered", async () => {
    const audit: DeliveredEvent[] = [];
    const billing: DeliveredEvent[] = [];
    const ops = service([recorder("audit", audit), recorder("billing", billing)]);
    await ops.ready();
    const events = await storeOf(db.prisma).insertEvents(
      Array.from({ length: 5 }, (_, n) => ({
        tenantId: "t",
        topic: "test.event",
        aggregateId: "00000000-0000-7000-8000-000000000000",
        payload: { n },
      })),
      ops.dispatcher.inline,
    );
    expect(await owed()).toEqual({ rows: 0, undelivered: 0, holds: 2, held: 10 });
    expect(events.every((event) => event.heldFor.length === 2)).toBe(true);
    const report = await ops.dispatcher.dispatchCommitted(events);
    expect(report.delivered).toHaveLength(10);
    expect([audit.length, billing.length]).toEqual([5, 5]);
    expect(await owed()).toEqual({ rows: 0, undelivered: 0, holds: 0, held: 0 });
  });

  it("leaves a delivery row for each failed delivery, its first attempt counted, due after its backoff", async () => {
    let failing = true;
    const received: DeliveredEvent[] = [];
    const ops = service(
      [
        {
          name: "flaky",
          deliver: (event) => {
            if (failing) throw new Error("503 from the endpoint");
            received.push(event);
          },
        },
      ],
      { backoff: { baseMs: 5_000, maxMs: 5_000, jitter: 0 } },
    );
    await ops.submitOperation({ tenantId: "t", type: "email.send", payload: email(1) });
    const { rows } = await db.pool.query(`
      SELECT subscriber, attempts, last_error, delivered_at, dead_at,
             round(extract(epoch FROM available_at - now()))::int AS due_in_s
      FROM operation_deliveries`);
    expect(rows).toEqual([
      {
        subscriber: "flaky",
        attempts: 1,
        last_error: "503 from the endpoint",
        delivered_at: null,
        dead_at: null,
        due_in_s: 5,
      },
    ]);
    expect((await owed()).holds).toBe(0);
    failing = false;
    await db.pool.query(`UPDATE operation_deliveries SET available_at = now() - interval '1 second'`);
    expect(await ops.createRelay().runOnce()).toEqual({ claimed: 1, delivered: 1, failed: 0 });
    expect(received.map((event) => event.attempt)).toEqual([2]);
    expect(await owed()).toEqual({ rows: 1, undelivered: 0, holds: 0, held: 0 });
  });

  it("left by a process that stopped before settling it is taken over by a relay once it runs out, and delivered", async () => {
    await heldAndAbandoned("audit", 30);
    const received: DeliveredEvent[] = [];
    const relay = service([recorder("audit", received)]).createRelay({ batchSize: 100 });
    expect(await relay.runOnce()).toEqual({ claimed: 0, delivered: 0, failed: 0 }); // still its process's
    await runOut();
    expect(await relay.runOnce()).toEqual({ claimed: 30, delivered: 30, failed: 0 });
    expect(received.map((event) => (event.payload as { n: number }).n)).toEqual(
      Array.from({ length: 30 }, (_, n) => n),
    );
    expect(await owed()).toEqual({ rows: 30, undelivered: 0, holds: 0, held: 0 });
    expect(await relay.runOnce()).toEqual({ claimed: 0, delivered: 0, failed: 0 });
  });

  it("taken over by a running relay: the relay goes on at once while a pass brought a full batch or more", async () => {
    // 12 holds of one event each; a pass takes over 10 holds, more than the batch of 5. It used
    // to wait for the poll (a minute here) unless a pass brought exactly a batch.
    await heldAndAbandoned("audit", 12, 1);
    await runOut();
    const received: DeliveredEvent[] = [];
    const relay = service([recorder("audit", received)])
      .createRelay({ batchSize: 5, pollIntervalMs: 60_000 })
      .start();
    try {
      await waitFor("the 12 events to be delivered", () => received.length === 12, 10_000);
    } finally {
      await relay.stop();
    }
  });

  it("is taken over by one relay only, however many race for it", async () => {
    await heldAndAbandoned("audit", 400, 20);
    await runOut();
    const received: DeliveredEvent[] = [];
    const relays = Array.from({ length: 8 }, () =>
      service([recorder("audit", received)]).createRelay({ batchSize: 50 }),
    );
    for (;;) {
      const passes = await Promise.all(relays.map((relay) => relay.runOnce()));
      if (passes.every((pass) => pass.claimed === 0)) break;
    }
    const ids = received.map((event) => event.id);
    expect(ids).toHaveLength(400);
    expect(new Set(ids).size).toBe(400);
    expect(await owed()).toEqual({ rows: 400, undelivered: 0, holds: 0, held: 0 });
  });

  it.each([
    ["relays first", "relays"],
    ["the process first", "process"],
    ["racing", "race"],
    ["racing again", "race"],
    ["racing once more", "race"],
  ] as const)(
    "settled while relays take it over (%s): every event goes to exactly one of them, failures recorded once",
    async (_name, order) => {
      // Holds that ran out, settled by their process (some of its deliveries fail) while 4 relays
      // take them over. Whoever deletes a hold owns its events.
      const written = await heldAndAbandoned("audit", 200, 10);
      await runOut();
      const relayed: DeliveredEvent[] = [];
      const relays = Array.from({ length: 4 }, () =>
        service([recorder("audit", relayed)]).createRelay({ batchSize: 20 }),
      );
      const later = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
      const inline = service([
        {
          name: "audit",
          deliver: async (event) => {
            const n = (event.payload as { n: number }).n;
            if (n % 20 === 0) await later(1); // the process delivers over ~10 ms
            if (n % 7 === 0) throw new Error("refused");
          },
        },
      ]);
      const relaysPass = () => Promise.all(relays.map((relay) => relay.runOnce()));
      const settle = () => inline.dispatcher.dispatchCommitted(written);
      let report;
      if (order === "relays") {
        await relaysPass();
        report = await settle();
      } else if (order === "process") {
        report = await settle();
        await relaysPass();
      } else {
        [report] = await Promise.all([settle(), relaysPass(), later(4).then(relaysPass)]);
      }
      const { rows } = await db.pool.query<{ id: string; relayed: boolean; failed: boolean }>(`
        SELECT event_id::text AS id, last_error IS NULL AND delivered_at IS NOT NULL AS relayed,
               last_error = 'refused' AS failed
        FROM operation_deliveries`);
      const byRelay = new Set(rows.filter((row) => row.relayed).map((row) => row.id));
      const failedRows = new Set(rows.filter((row) => row.failed).map((row) => row.id));
      const relayedIds = relayed.map((event) => event.id);
      // Nothing is held any more; every row is either a relay's delivery or a failure of the process.
      expect((await owed()).holds).toBe(0);
      expect(rows.length).toBe(byRelay.size + failedRows.size);
      expect(new Set(relayedIds).size).toBe(relayedIds.length);
      expect([...byRelay].sort()).toEqual([...new Set(relayedIds)].sort());
      for (const event of written) {
        const n = (event.payload as { n: number }).n;
        // The relays' events carry no failure; the process's have a row exactly when they failed.
        expect(failedRows.has(event.id)).toBe(!byRelay.has(event.id) && n % 7 === 0);
      }
      expect(report.delivered.length + report.failed.length).toBe(written.length);
      if (order === "relays") expect(byRelay.size).toBe(written.length);
      if (order === "process") expect(byRelay.size).toBe(0);
    },
  );

  it("records a failure whose message holds a NUL character, and settles the rest of its group with it", async () => {
    // PostgreSQL text cannot hold NUL: stored as it was, one such message failed the whole group's
    // settle, and every hold in it was delivered again once it ran out.
    const ops = service([
      {
        name: "picky",
        deliver: (event) => {
          if ((event.payload as { n: number }).n === 1) throw new Error("bad\u0000byte");
        },
      },
    ]);
    await ops.ready();
    const events = await storeOf(db.prisma).insertEvents(
      [0, 1, 2].map((n) => ({
        tenantId: "t",
        topic: "test.event",
        aggregateId: "00000000-0000-7000-8000-000000000000",
        payload: { n },
      })),
      ops.dispatcher.inline,
    );
    await ops.dispatcher.dispatchCommitted(events);
    const { rows } = await db.pool.query(`SELECT last_error FROM operation_deliveries`);
    expect(rows).toEqual([{ last_error: "bad\uFFFDbyte" }]);
    expect((await owed()).holds).toBe(0);
  });

  it("settles without waiting for the WAL flush, for its own transaction only", async () => {
    const written = await heldAndAbandoned("audit", 1);
    const seen = await db.prisma.$transaction(async (tx) => {
      const [result] = await tx.$queryRaw<{ settled: number }[]>(
        settleHolds(tablesIn(), [{ hold: written[0]!.heldFor[0]!.hold, failures: [] }]),
      );
      const [setting] = await tx.$queryRaw<{ synchronous_commit: string }[]>`SHOW synchronous_commit`;
      return { settled: result!.settled, setting: setting!.synchronous_commit };
    });
    expect(seen).toEqual({ settled: 1, setting: "off" });
    const [after] = await db.prisma.$queryRaw<{ synchronous_commit: string }[]>`SHOW synchronous_commit`;
    expect(after!.synchronous_commit).toBe("on");
  });
});

describe("what reads the outbox counts what a hold owes", () => {
  it("queueStats: its events are the subscriber's backlog, from the oldest", async () => {
    await heldAndAbandoned("audit", 12);
    await db.pool.query(`UPDATE operation_outbox SET created_at = now() - interval '90 seconds'`);
    const ops = service([{ name: "audit", deliver: () => undefined }]);
    const [stats] = (await ops.queueStats()).deliveries;
    expect(stats).toMatchObject({ subscriber: "audit", backlog: 12, dead: 0 });
    expect(stats!.oldestUndeliveredAgeSeconds).toBeGreaterThanOrEqual(89);
  });

  it("retention: an event still held, and the batch it is about, are kept", async () => {
    const ops = service([{ name: "audit", deliver: () => undefined }], {});
    const sync = createOperations({
      ...db.connection,
      types,
      logger: silentLogger,
      backend: { sync: { "email.send": () => ({ sent: true }) } },
      retention: {},
    });
    const { operation } = await sync.submitOperation({
      tenantId: "t",
      type: "email.send",
      payload: email(1),
    });
    expect((await sync.getOperation("t", operation.id)).status).toBe("completed");
    await ops.ready();
    // An event about it, held for audit by a process that never settled it.
    await storeOf(db.prisma).insertEvents(
      [{ tenantId: "t", topic: "note", aggregateId: operation.id, payload: {} }],
      ops.dispatcher.inline,
    );
    await db.pool.query(`UPDATE operations SET finished_at = now() - interval '40 days'`);
    await db.pool.query(`UPDATE operation_outbox SET created_at = now() - interval '40 days'`);
    const prune = async () => {
      for (;;) if (!(await sync.prune()).more) return;
    };
    await prune();
    const left = async () =>
      (
        await db.pool.query(
          `SELECT (SELECT count(*) FROM operations)::int AS operations, (SELECT count(*) FROM operation_outbox)::int AS events`,
        )
      ).rows[0];
    expect(await left()).toEqual({ operations: 1, events: 1 }); // the held one; the delivered ones went
    await db.pool.query(`DELETE FROM operation_delivery_holds`);
    await prune();
    expect(await left()).toEqual({ operations: 0, events: 0 });
  });

  it("replay: gives the events written before the subscriber was registered, not those it had inline", async () => {
    const writer = createOperations({ ...db.connection, types, logger: silentLogger });
    await writer.submitOperation({ tenantId: "t", type: "email.send", payload: email(1) }); // before
    await db.pool.query(`UPDATE operation_outbox SET created_at = now() - interval '1 minute'`);
    const received: DeliveredEvent[] = [];
    const ops = service([recorder("audit", received)]);
    await ops.ready();
    await afterRegistration(db.pool);
    await ops.submitOperation({ tenantId: "t", type: "email.send", payload: email(2) }); // had inline
    expect(received).toHaveLength(1);
    expect(await ops.replayEvents("audit")).toBe(1);
    expect(await ops.createRelay().runOnce()).toEqual({ claimed: 1, delivered: 1, failed: 0 });
    expect(received.map((event) => (event.payload as { operationId: string }).operationId)).toHaveLength(2);
    expect(new Set(received.map((event) => event.id)).size).toBe(2);
  });

  it("replay after a subscriber's topics grew: gives the events of the topic it did not want before", async () => {
    const received: DeliveredEvent[] = [];
    const narrow = createOperations({
      ...db.connection,
      types,
      logger: silentLogger,
      subscribers: [{ name: "audit", topics: ["batch.submitted"], deliver: (e) => void received.push(e) }],
    });
    await narrow.submitOperation({ tenantId: "t", type: "email.send", payload: email(1) }); // operation.submitted: not wanted
    expect(received).toHaveLength(0);
    const wide = createOperations({
      ...db.connection,
      types,
      logger: silentLogger,
      subscribers: [
        {
          name: "audit",
          topics: ["batch.submitted", "operation.submitted"],
          deliver: (e) => void received.push(e),
        },
      ],
    });
    await wide.ready();
    expect(await wide.replayEvents("audit")).toBe(1);
    expect(await wide.createRelay().runOnce()).toEqual({ claimed: 1, delivered: 1, failed: 0 });
    expect(received.map((event) => event.topic)).toEqual(["operation.submitted"]);
  });

  it("replay: gives an event written while the subscriber's registration waited to commit", async () => {
    const received: DeliveredEvent[] = [];
    await auditing(received, ["batch.submitted"]).ready();
    // Another process registering it at the same moment: the registration below waits for it.
    const other = await db.pool.connect();
    try {
      await other.query("BEGIN");
      await other.query("SELECT 1 FROM operation_subscribers WHERE name = 'audit' FOR UPDATE");
      const wide = auditing(received, ["batch.submitted", "operation.submitted"]);
      const registering = wide.ready();
      await registrationWaits();
      // Written now, it is not owed to audit: the statement sees the topics audit had.
      const writer = createOperations({ ...db.connection, types, logger: silentLogger });
      await writer.submitOperation({ tenantId: "t", type: "email.send", payload: email(1) });
      await other.query("COMMIT");
      await registering;
      expect(await owed()).toEqual({ rows: 0, undelivered: 0, holds: 0, held: 0 });
      expect(await wide.replayEvents("audit")).toBe(1);
      expect(await wide.createRelay().runOnce()).toEqual({ claimed: 1, delivered: 1, failed: 0 });
      expect(received.map((event) => event.topic)).toEqual(["operation.submitted"]);
    } finally {
      other.release(true); // with its transaction and lock, if the test failed before its COMMIT
    }
  });

  it("replay: a registration whose process stopped before fixing its time is fixed by the next one", async () => {
    const received: DeliveredEvent[] = [];
    const wide = ["batch.submitted", "operation.submitted"];
    await auditing(received, ["batch.submitted"]).ready();
    const other = await db.pool.connect();
    const stopping = await db.pool.connect();
    try {
      await other.query("BEGIN");
      await other.query("SELECT 1 FROM operation_subscribers WHERE name = 'audit' FOR UPDATE");
      // The registering statement of a process that stops right after it commits, before it can
      // fix the registration time; it waits for the other registration first.
      const statement = registerSubscribers(tablesIn(), [{ name: "audit", topics: wide }]);
      const registering = stopping.query(statement.text, statement.values as unknown[]);
      await registrationWaits();
      const writer = createOperations({ ...db.connection, types, logger: silentLogger });
      await writer.submitOperation({ tenantId: "t", type: "email.send", payload: email(1) }); // not owed
      await other.query("COMMIT");
      expect((await registering).rows).toEqual([{ name: "audit", registering: true }]);
      // A replay meanwhile would give too much, never too little. The next process to register it,
      // with the same topics, fixes the time.
      const restarted = auditing(received, wide);
      await restarted.ready();
      const { rows } = await db.pool.query(
        `SELECT registered_at < '9999-01-01' AND registered_at >= (SELECT max(created_at) FROM operation_outbox)
           AS fixed FROM operation_subscribers`,
      );
      expect(rows).toEqual([{ fixed: true }]);
      expect(await restarted.replayEvents("audit")).toBe(1);
      expect(await restarted.createRelay().runOnce()).toEqual({ claimed: 1, delivered: 1, failed: 0 });
      expect(received.map((event) => event.topic)).toEqual(["operation.submitted"]);
    } finally {
      other.release(true); // with its transaction and lock, if the test failed before its COMMIT
      stopping.release(true);
    }
  });

  it("removeSubscriber: forgets its holds too, and counts their events", async () => {
    await heldAndAbandoned("audit", 7);
    const ops = service([]);
    expect(await ops.removeSubscriber("audit")).toEqual({ removed: true, deliveries: 7 });
    expect(await owed()).toEqual({ rows: 0, undelivered: 0, holds: 0, held: 0 });
  });
});
