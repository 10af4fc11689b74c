// The relay: many at once never deliver an event twice while deliveries succeed; failures back off
// and end dead; a relay that dies mid-delivery hands its events back when its lease runs out.
import { createOperations, silentLogger, type DeliveredEvent, type EventSubscriber } from "../../src";
import { insertOutboxEvents } from "../../src/store/repository";
import { createTestDatabase, type TestDatabase } from "../support/db";
import { documents, truncateAll, types, waitFor } from "../support/fixtures";

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.close());
beforeEach(() => truncateAll(db.pool));

function service(subscriber: EventSubscriber, outbox = {}, prisma = db.prisma) {
  return createOperations({ prisma, types, logger: silentLogger, subscribers: [subscriber], outbox });
}

async function writeEvents(count: number): Promise<string[]> {
  const rows = await insertOutboxEvents(
    db.prisma,
    Array.from({ length: count }, (_, i) => ({
      tenantId: "t",
      topic: "test.event",
      aggregateId: "00000000-0000-7000-8000-000000000000",
      payload: { n: i },
    })),
    0,
  );
  return rows.map((row) => row.id);
}

const backdate = () =>
  db.pool.query(`UPDATE operation_outbox SET available_at = now() - interval '1 second'`);

describe("the outbox relay", () => {
  it("8 relays on separate connections deliver 600 events exactly once each", async () => {
    const ids = await writeEvents(600);
    const delivered: string[] = [];
    const prismas = Array.from({ length: 8 }, () => db.newPrisma({ max: 2 }));
    const relays = prismas.map((prisma) =>
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
      ).createRelay({ batchSize: 25 }),
    );
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
      `SELECT count(*) FILTER (WHERE dispatched_at IS NULL)::int AS undelivered, max(attempts)::int AS attempts FROM operation_outbox`,
    );
    expect(rows[0]).toEqual({ undelivered: 0, attempts: 1 });
    await Promise.all(prismas.map((prisma) => prisma.$disconnect()));
  });

  it("backs off after each failure and marks the event dead after maxAttempts", async () => {
    const [id] = await writeEvents(1);
    const attempts: number[] = [];
    const relay = service(
      {
        name: "always-down",
        deliver: (event) => {
          attempts.push(event.attempt);
          throw new Error("endpoint down");
        },
      },
      { maxAttempts: 3, backoff: { baseMs: 60_000, maxMs: 60_000, jitter: 0 } },
    ).createRelay();

    expect(await relay.runOnce()).toEqual({ claimed: 1, delivered: 0, failed: 1 });
    const { rows: waiting } = await db.pool.query(
      `SELECT round(extract(epoch FROM available_at - now()))::int AS wait_s, last_error, dead_at FROM operation_outbox`,
    );
    expect(waiting[0]).toEqual({ wait_s: 60, last_error: "always-down: endpoint down", dead_at: null });
    expect(await relay.runOnce()).toEqual({ claimed: 0, delivered: 0, failed: 0 }); // backing off

    await backdate();
    await relay.runOnce();
    await backdate();
    await relay.runOnce();
    expect(attempts).toEqual([1, 2, 3]);
    const { rows: dead } = await db.pool.query(
      `SELECT id::text, attempts, dead_at IS NOT NULL AS dead FROM operation_outbox`,
    );
    expect(dead).toEqual([{ id, attempts: 3, dead: true }]);
    await backdate();
    expect(await relay.runOnce()).toEqual({ claimed: 0, delivered: 0, failed: 0 });
  });

  it("takes back events whose relay died mid-delivery, once its lease has run out", async () => {
    await writeEvents(3);
    const delivered: DeliveredEvent[] = [];
    let hang = true;
    const stuck = service({
      name: "hangs",
      deliver: () => (hang ? new Promise<void>(() => undefined) : undefined),
    }).createRelay({ leaseMs: 60_000 });
    void stuck.runOnce(); // claims all three, then never finishes: a relay that died
    const healthy = service({
      name: "recorder",
      deliver: (event) => void delivered.push(event),
    }).createRelay();
    await waitFor("the stuck relay to claim all three", async () => {
      const { rows } = await db.pool.query(
        `SELECT count(*)::int AS n FROM operation_outbox WHERE attempts = 1`,
      );
      return rows[0].n === 3;
    });
    expect(await healthy.runOnce()).toEqual({ claimed: 0, delivered: 0, failed: 0 }); // still leased

    await backdate(); // the lease runs out
    expect(await healthy.runOnce()).toEqual({ claimed: 3, delivered: 3, failed: 0 });
    expect(delivered.map((event) => event.attempt)).toEqual([2, 2, 2]);
    hang = false;
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
    const relay = service({ name: "relay", deliver: (event) => void relayed.push(event) }).createRelay();
    expect(await relay.runOnce()).toEqual({ claimed: 0, delivered: 0, failed: 0 });
    release();
    expect((await submitted).dispatch).toEqual({ status: "delivered" });
    await backdate();
    expect(await relay.runOnce()).toEqual({ claimed: 0, delivered: 0, failed: 0 });
    expect(relayed).toEqual([]);
  });

  it("delivers in the background once started, and stops cleanly", async () => {
    const delivered: DeliveredEvent[] = [];
    const relay = service({ name: "recorder", deliver: (event) => void delivered.push(event) })
      .createRelay({ pollIntervalMs: 10 })
      .start();
    await writeEvents(5);
    await waitFor("the background relay to deliver all five", () => delivered.length === 5);
    await relay.stop();
    expect(delivered.map((event) => (event.payload as { n: number }).n).sort()).toEqual([0, 1, 2, 3, 4]);
  });
});
