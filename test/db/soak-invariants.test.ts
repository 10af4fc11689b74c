// The soak's invariant checks must be able to fail: a settled, consistent state passes them all,
// and each kind of corruption is caught by the check meant for it.
import { Client } from "pg";
import { createOperations, silentLogger } from "../../src";
import { storeOf } from "../support/store";
import { checkInvariants, type Known } from "../../soak/invariants";
import { SOAK_TABLES, soakTypes } from "../../soak/shared";
import { createTestDatabase, type TestDatabase } from "../support/db";
import { afterRegistration } from "../support/fixtures";

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
  await db.pool.query(SOAK_TABLES);
});
afterAll(() => db.close());

const task = (n: number) => ({ n, mode: "ok" as const, ms: 0 });

/** A small settled history: two batches run to completion, one cancelled, every event delivered. */
async function settledHistory(): Promise<Known> {
  await db.pool.query(
    `TRUNCATE operation_deliveries, operation_delivery_holds, operation_subscribers, operation_outbox, operations,
       operation_batches, soak_runs, soak_deliveries, soak_pruned_events, soak_pruned_batches RESTART IDENTITY`,
  );
  const record = { query: (text: string, values: unknown[]) => db.pool.query(text, values) };
  const ops = createOperations({
    ...db.connection,
    types: soakTypes,
    logger: silentLogger,
    subscribers: [
      {
        name: "recorder",
        deliver: async (event) => {
          await record.query(
            `INSERT INTO soak_deliveries (event_id, topic, aggregate_id, node, subscriber) VALUES ($1, $2, $3, 't', 'recorder')`,
            [event.id, event.topic, event.aggregateId],
          );
        },
      },
    ],
  });
  await ops.ready();
  await afterRegistration(db.pool); // as in the soak, whose nodes register before any write
  await ops.submitBatch({ tenantId: "t", type: "soak.task", items: [task(0), task(1)], idempotencyKey: "k" });
  await ops.submitBatch({ tenantId: "t", type: "soak.task", items: [task(2)] });
  const cancelled = await ops.submitBatch({ tenantId: "t", type: "soak.task", items: [task(3)] });
  await ops.cancelBatch("t", cancelled.batch.id);
  const claimed = await storeOf(db.prisma).claimDue(10, "w", 60_000);
  for (const row of claimed) {
    await db.pool.query(`INSERT INTO soak_runs (operation_id, node, attempt) VALUES ($1, 'w', 1)`, [row.id]);
  }
  const transition = await storeOf(db.prisma).finishOperations(
    claimed.map((row) => ({
      id: row.id,
      lockToken: row.lockToken,
      finish: { to: "completed" as const, result: null },
    })),
    ops.dispatcher.inline,
  );
  await ops.dispatcher.dispatchCommitted(transition.events);
  return { settled: true, keyed: new Map([["k", new Set(["t/whatever"])]]), rolledBack: [] };
}

async function violations(known: Known): Promise<string[]> {
  return checkInvariants(db.pool, known);
}

describe("the soak's invariant checks", () => {
  it("pass on a settled, consistent history", async () => {
    expect(await violations(await settledHistory())).toEqual([]);
  });

  it.each([
    [
      "an event its subscriber never received",
      `DELETE FROM soak_deliveries WHERE event_id = (SELECT max(event_id) FROM soak_deliveries)`,
      /event a subscriber that wants it never received/,
    ],
    [
      "a delivery row marked delivered that its subscriber never received",
      `INSERT INTO operation_deliveries (event_id, subscriber, attempts, delivered_at)
       SELECT max(event_id), 'recorder', 1, now() FROM soak_deliveries;
       DELETE FROM soak_deliveries WHERE event_id = (SELECT max(event_id) FROM soak_deliveries)`,
      /delivery recorded as done that its subscriber never received/,
    ],
    [
      "a delivery still owed",
      `INSERT INTO operation_deliveries (event_id, subscriber) SELECT min(id), 'recorder' FROM operation_outbox`,
      /delivery never completed/,
    ],
    [
      "a hold never settled",
      `INSERT INTO operation_delivery_holds (subscriber, event_ids, held_until)
       SELECT 'recorder', ARRAY[max(id)], now() FROM operation_outbox`,
      /held delivery never settled nor taken over/,
    ],
    [
      "an event received by a subscriber it was not owed to",
      `INSERT INTO soak_deliveries (event_id, topic, aggregate_id, node, subscriber)
       SELECT id, topic, aggregate_id, 't', 'stranger' FROM operation_outbox LIMIT 1`,
      /to a subscriber it was not owed to/,
    ],
    [
      "a duplicated batch terminal event",
      `INSERT INTO operation_outbox (tenant_id, topic, aggregate_id, payload)
       SELECT tenant_id, topic, aggregate_id, payload FROM operation_outbox WHERE topic = 'batch.completed' LIMIT 1`,
      /terminal events do not match its episodes/,
    ],
    [
      "counters that differ from the children's real statuses",
      // Consistent with itself (the CHECK constraints hold), not with its children.
      `UPDATE operation_batches SET completed_count = completed_count - 1, cancelled_count = cancelled_count + 1,
         status = 'cancelled'
       WHERE id = (SELECT id FROM operation_batches WHERE status = 'completed' AND child_count > 1 LIMIT 1)`,
      /batch whose counters differ from its children/,
    ],
    [
      "a status that is not the outcome of its children",
      `UPDATE operations SET status = 'failed'
       WHERE id = (SELECT o.id FROM operations o JOIN operation_batches b ON b.id = o.batch_id
                   WHERE b.status = 'completed' LIMIT 1)`,
      /batch whose status is not the outcome of its children/,
    ],
    [
      "a batch that lost a child",
      `ALTER TABLE operations DISABLE TRIGGER ALL;
       DELETE FROM operations WHERE id = (SELECT id FROM operations WHERE batch_id IS NOT NULL LIMIT 1);
       ALTER TABLE operations ENABLE TRIGGER ALL`,
      /fewer or more children/,
    ],
    [
      "a run of an operation cancelled before any claim",
      `INSERT INTO soak_runs (operation_id, node, attempt)
       SELECT id, 'rogue', 1 FROM operations WHERE status = 'cancelled' LIMIT 1`,
      /handler ran for an operation cancelled before any claim/,
    ],
    [
      "a terminal operation without its event",
      `DELETE FROM operation_outbox WHERE topic = 'operation.completed'
         AND id = (SELECT min(id) FROM operation_outbox WHERE topic = 'operation.completed')`,
      /without its operation.<status> event/,
    ],
    [
      "a processing row whose lease expired",
      `UPDATE operations SET status = 'processing', locked_by = 'ghost', lock_token = gen_random_uuid(), locked_until = now() - interval '1 minute'
       WHERE id = (SELECT id FROM operations LIMIT 1)`,
      /processing with an expired lease/,
    ],
  ])("catch %s", async (_name, corruption, expected) => {
    const known = await settledHistory();
    const client = new Client({ connectionString: db.url });
    await client.connect();
    try {
      // Corruption from outside the module: CHECK constraints would refuse some of it, so as
      // the owner we turn them off for this session.
      await client.query(`SET session_replication_role = replica`);
      await client.query(corruption);
    } finally {
      await client.end();
    }
    expect((await violations(known)).join("\n")).toMatch(expected);
  });

  it("catch what only the submitter knows: a key that returned two batches, a rolled-back submit that exists", async () => {
    const known = await settledHistory();
    const { rows } = await db.pool.query(`SELECT id FROM operation_batches LIMIT 1`);
    known.keyed.set("k2", new Set(["t/a", "t/b"]));
    known.rolledBack.push(rows[0].id);
    const found = (await violations(known)).join("\n");
    expect(found).toMatch(/idempotency key t\/k2 returned 2 batches/);
    expect(found).toMatch(/rolled-back submit/);
  });

  it("report a system that did not settle", async () => {
    const known = await settledHistory();
    expect(await violations({ ...known, settled: false })).toContain(
      "the system did not settle: work or events still pending, and no progress for 60 s",
    );
  });
});
