// Delivery state per subscriber: a process delivers only to the subscribers it has, one failing
// subscriber does not make the others receive an event again, and a slow subscriber's relay keeps
// its claims for as long as it is alive (no second relay delivers the same event meanwhile).
import { createOperations, silentLogger, type DeliveredEvent, type EventSubscriber } from "../../src";
import { markDelivered } from "../../src/store/statements/outbox";
import { tablesIn } from "../../src/store/tables";
import { createTestDatabase, type TestDatabase } from "../support/db";
import { OWED_DELIVERIES_SQL, truncateAll, types, waitFor } from "../support/fixtures";

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.close());
beforeEach(() => truncateAll(db.pool));

const fastBackoff = { backoff: { baseMs: 10, maxMs: 10, jitter: 0 } };

function service(subscribers: EventSubscriber[], outbox = {}) {
  return createOperations({ ...db.connection, types, logger: silentLogger, subscribers, outbox });
}

function recorder(name: string, into: DeliveredEvent[], topics?: string[]): EventSubscriber {
  return { name, topics, deliver: (event) => void into.push(event) };
}

const email = (n: number) => ({ to: `user${n}@example.com`, subject: `hello ${n}` });

describe("delivery state per subscriber", () => {
  it("a process without a subscriber does not mark its events delivered for the processes that have it", async () => {
    const audited: DeliveredEvent[] = [];
    const withAudit = service([recorder("audit", audited)]);
    const relay = withAudit.createRelay({ pollIntervalMs: 20 });
    await relay.runOnce(); // the process with the subscriber is up before the other one writes
    relay.start();
    try {
      const withoutAudit = service([]);
      const { operation } = await withoutAudit.submitOperation({
        tenantId: "t",
        type: "email.send",
        payload: email(1),
      });
      await waitFor("the audit subscriber to receive the submit", () =>
        audited.some((event) => event.aggregateId === operation.id),
      );
    } finally {
      await relay.stop();
    }
  });

  it("one failing subscriber does not make the others receive the event again", async () => {
    const steady: DeliveredEvent[] = [];
    let failures = 0;
    const flakyReceived: DeliveredEvent[] = [];
    const ops = service(
      [
        recorder("steady", steady),
        {
          name: "flaky",
          deliver: (event) => {
            flakyReceived.push(event);
            if (failures++ < 3) throw new Error("endpoint down");
          },
        },
      ],
      fastBackoff,
    );
    const relay = ops.createRelay({ pollIntervalMs: 10 }).start();
    try {
      await ops.submitOperation({ tenantId: "t", type: "email.send", payload: email(1) });
      await waitFor("flaky to succeed at last", () => flakyReceived.length === 4);
      expect(steady.map((event) => event.topic)).toEqual(["operation.submitted"]);
      expect(flakyReceived.map((event) => event.attempt)).toEqual([1, 2, 3, 4]);
    } finally {
      await relay.stop();
    }
  });

  it("a relay that outlives its lease while delivering to a slow subscriber keeps its claims", async () => {
    const received: string[] = [];
    const slow: EventSubscriber = {
      name: "slow",
      deliver: async (event) => {
        received.push(event.id);
        await new Promise((resolve) => setTimeout(resolve, 60));
      },
    };
    const relayServices = [1, 2].map(() => service([slow], fastBackoff));
    await relayServices[0]!.ready(); // the subscriber is registered before the events are written
    // Submitted inside the caller's own transaction: nothing is delivered inline, the relays do it all.
    const writer = service([]);
    await db.prisma.$transaction(async (tx) => {
      for (let n = 0; n < 8; n++)
        await writer.submitOperation({ tenantId: "t", type: "email.send", payload: email(n) }, { tx });
    });
    const relays = relayServices.map((ops) =>
      ops.createRelay({ batchSize: 8, leaseMs: 150, pollIntervalMs: 10 }),
    );
    for (const relay of relays) relay.start();
    try {
      await waitFor("every event delivered", () => new Set(received).size === 8, 20_000);
    } finally {
      // stop() waits for the pass in progress: a duplicate claimed meanwhile is delivered by then.
      await Promise.all(relays.map((relay) => relay.stop()));
    }
    expect(received.length).toBe(8);
  });
});

describe("recording a delivery", () => {
  // Found by the bench: with records written in the background, a seeding process that ended its
  // pool right after its last submit left that submit's event owed (delivered again a minute later).
  it("is done when the submit returns: an app that ends its pool right after leaves nothing owed", async () => {
    const { prisma, pool } = db.newConnection();
    const received: DeliveredEvent[] = [];
    const ops = createOperations({
      prisma,
      pool,
      types,
      logger: silentLogger,
      subscribers: [recorder("audit", received)],
    });
    for (let n = 0; n < 20; n++)
      await ops.submitOperation({ tenantId: "t", type: "email.send", payload: email(n) });
    await prisma.$disconnect();
    await pool.end();
    expect(received).toHaveLength(20);
    const { rows } = await db.pool.query(OWED_DELIVERIES_SQL);
    expect(rows[0].owed).toBe(0);
  });

  it("commits without waiting for the WAL flush, for its own transaction only", async () => {
    const ops = service([
      {
        name: "later",
        deliver: () => {
          throw new Error("not now");
        },
      },
    ]);
    await ops.submitOperation({ tenantId: "t", type: "email.send", payload: email(1) });
    const { rows } = await db.pool.query(
      `SELECT event_id::text AS "eventId", subscriber, attempts AS "claimedAttempts" FROM operation_deliveries`,
    );
    expect(rows).toHaveLength(1);
    const seen = await db.prisma.$transaction(async (tx) => {
      const marked = await tx.$executeRaw(markDelivered(tablesIn(), rows));
      const [setting] = await tx.$queryRaw<{ synchronous_commit: string }[]>`SHOW synchronous_commit`;
      return { marked, setting: setting!.synchronous_commit };
    });
    expect(seen).toEqual({ marked: 1, setting: "off" });
    const [after] = await db.prisma.$queryRaw<{ synchronous_commit: string }[]>`SHOW synchronous_commit`;
    expect(after!.synchronous_commit).toBe("on");
  });
});
