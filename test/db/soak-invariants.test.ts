// The soak's invariant checks must be able to fail: a settled, consistent state passes them all,
// and each kind of corruption is caught by the check meant for it.
import { Client } from "pg";
import { createOperations, silentLogger } from "../../src";
import { storeOf } from "../support/store";
import { checkInvariants, measureRuns, type Known } from "../../soak/invariants";
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

/** Now in the soak's clock (ms since the epoch), as PostgreSQL reads it. */
const NOW_MS = `extract(epoch FROM clock_timestamp()) * 1000`;

/**
 * A small settled history: two batches run to completion, one cancelled (by a cancel the
 * orchestrator recorded), a standalone operation failed by the error its handler threw, every
 * event delivered; each run recorded as its node would report it (node "w", which was stopped
 * afterwards), and a dead delivery revived and then delivered.
 */
async function settledHistory(): Promise<Known> {
  await db.pool.query(
    `TRUNCATE operation_deliveries, operation_delivery_holds, operation_subscribers, operation_outbox, operations,
       operation_batches, soak_runs, soak_lives, soak_partitions, soak_stalls, soak_logs, soak_cancels, soak_retries, soak_revivals,
       soak_removals, soak_deliveries, soak_pruned_events, soak_pruned_batches, soak_pruned_operations,
       soak_pruned_dead RESTART IDENTITY`,
  );
  const { rows: begun } = await db.pool.query(`SELECT ${NOW_MS} AS ms`);
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
  const { rows: cancelCalled } = await db.pool.query(`SELECT ${NOW_MS} AS ms`);
  await ops.cancelBatch("t", cancelled.batch.id);
  await db.pool.query(`INSERT INTO soak_cancels VALUES ($1, $2, ${NOW_MS})`, [
    cancelled.batch.id,
    cancelCalled[0].ms,
  ]);
  const broken = await ops.submitOperation({ tenantId: "t", type: "soak.task", payload: task(4) });
  const claimed = await storeOf(db.prisma).claimDue(10, "w", 60_000);
  for (const row of claimed) {
    const failing = row.id === broken.operation.id;
    await db.pool.query(
      `INSERT INTO soak_runs (run_id, operation_id, batch_id, node, pid, attempt, mode, started, stopped, outcome, error_head)
       VALUES (gen_random_uuid(), $1, $2, 'w', 1, $3, 'ok', ${NOW_MS}, ${NOW_MS} + 5, $4, $5)`,
      [
        row.id,
        row.batchId,
        row.attempts,
        failing ? "threw" : "returned",
        failing ? "broken: always fails" : null,
      ],
    );
  }
  const transition = await storeOf(db.prisma).finishOperations(
    claimed.map((row) => ({
      id: row.id,
      lockToken: row.lockToken,
      finish:
        row.id === broken.operation.id
          ? {
              to: "failed" as const,
              error: { name: "Error", message: "broken: always fails", retryable: false, attempt: 1 },
            }
          : { to: "completed" as const, result: null },
    })),
    ops.dispatcher.inline,
  );
  await ops.dispatcher.dispatchCommitted(transition.events);
  // The worker stopped long after its runs; a dead delivery was revived before them and delivered since.
  await db.pool.query(`INSERT INTO soak_lives VALUES ('w', 1, $1, ${NOW_MS} + 60000, 'SIGTERM')`, [
    begun[0].ms,
  ]);
  await db.pool.query(
    `INSERT INTO soak_revivals SELECT min(event_id), 'recorder', $1, $1 FROM soak_deliveries`,
    [begun[0].ms],
  );
  return {
    settled: true,
    keyed: new Map([["k", new Set(["t/whatever"])]]),
    rolledBack: [],
    occasional: [],
    leaseMs: 3_000,
  };
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
      `INSERT INTO soak_runs (run_id, operation_id, node, pid, attempt, mode, started)
       SELECT gen_random_uuid(), id, 'rogue', 2, 1, 'ok', ${NOW_MS} FROM operations WHERE status = 'cancelled' LIMIT 1`,
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
    [
      "two runs of one operation at once",
      `INSERT INTO soak_runs (run_id, operation_id, batch_id, node, pid, attempt, mode, started, stopped, outcome)
       SELECT gen_random_uuid(), operation_id, batch_id, 'w2', 3, attempt + 1, mode, started + 1, stopped + 1, outcome
       FROM soak_runs WHERE outcome = 'returned' LIMIT 1`,
      /operation with two handler runs at the same time: 1/,
    ],
    [
      "a run left running by a process that died, overlapped by the next",
      `INSERT INTO soak_lives VALUES ('w3', 4, 0, ${NOW_MS} + 10000, 'SIGKILL');
       INSERT INTO soak_runs (run_id, operation_id, batch_id, node, pid, attempt, mode, started)
       SELECT gen_random_uuid(), operation_id, batch_id, 'w3', 4, attempt, mode, started - 1000
       FROM soak_runs WHERE outcome = 'returned' LIMIT 1`,
      /operation with two handler runs at the same time: 1/,
    ],
    [
      "an operation run again after its handler returned on an undisturbed node",
      `INSERT INTO soak_runs (run_id, operation_id, batch_id, node, pid, attempt, mode, started, stopped, outcome)
       SELECT gen_random_uuid(), operation_id, batch_id, 'w', 1, attempt + 1, mode, stopped + 3500, stopped + 3510, outcome
       FROM soak_runs WHERE outcome = 'returned' LIMIT 1`,
      /operation run again after its handler returned on a node that stayed up and connected: 1/,
    ],
    [
      "a failed operation whose error is a lost lease though its handler threw",
      `UPDATE operations SET error = jsonb_build_object('name', 'LeaseExpired', 'message', 'the lease of w expired',
         'retryable', false, 'attempt', 1) WHERE status = 'failed'`,
      /operation failed with an error that is not its handler's: 1/,
    ],
    [
      "a failed operation whose error is another than its handler threw (and it was pruned)",
      `INSERT INTO soak_pruned_operations
       SELECT id, batch_id, status::text, attempts, error->>'name', 'broken: always' FROM operations WHERE status = 'failed';
       DELETE FROM operations WHERE status = 'failed'`,
      /operation failed with an error that is not its handler's: 1/,
    ],
    [
      "a delivery row of a subscriber that is not registered",
      `INSERT INTO operation_deliveries (event_id, subscriber) SELECT min(id), 'removed' FROM operation_outbox`,
      /delivery row or hold without a registered subscriber: 1/,
    ],
    [
      "a hold of a subscriber that is not registered",
      `INSERT INTO operation_delivery_holds (subscriber, event_ids, held_until)
       SELECT 'removed', ARRAY[max(id)], now() FROM operation_outbox`,
      /delivery row or hold without a registered subscriber: 1/,
    ],
    [
      "a revived delivery never delivered",
      `INSERT INTO soak_revivals SELECT min(id), 'recorder', ${NOW_MS}, ${NOW_MS} FROM operation_outbox`,
      /dead delivery redeliverDead revived, never delivered: 1/,
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

  it("excuse a run again, or a lost lease, for a reason recorded near the run: a partition, a stall, the node's account", async () => {
    const known = await settledHistory();
    await db.pool.query(
      `INSERT INTO soak_runs (run_id, operation_id, batch_id, node, pid, attempt, mode, started, stopped, outcome)
       SELECT gen_random_uuid(), operation_id, batch_id, 'w', 1, attempt + 1, mode, stopped + 3500, stopped + 3510, outcome
       FROM soak_runs WHERE outcome = 'returned' LIMIT 1;
       UPDATE operations SET error = jsonb_build_object('name', 'LeaseExpired', 'message', 'the lease of w expired',
         'retryable', false, 'attempt', 1) WHERE status = 'failed'`,
    );
    const found = (await violations(known)).join("\n");
    expect(found).toMatch(/run again after its handler returned/);
    expect(found).toMatch(/failed with an error that is not its handler's/);
    await db.pool.query(
      `INSERT INTO soak_partitions SELECT 'w', 'blackhole', max(stopped) + 1000, max(stopped) + 5000 FROM soak_runs`,
    );
    expect(await violations(known)).toEqual([]);
    await db.pool.query(
      `DELETE FROM soak_partitions;
       INSERT INTO soak_stalls SELECT 'w', 2, max(stopped) + 1000, max(stopped) + 2500 FROM soak_runs`,
    );
    expect((await violations(known)).join("\n")).toMatch(/run again after its handler returned/); // another pid's
    await db.pool.query(`UPDATE soak_stalls SET pid = NULL`); // the network process's, which proxies the node
    expect(await violations(known)).toEqual([]);
    // The node's own account: a completer giving up is what the checks look for, not a reason, nor
    // is a subscriber's failure ...
    await db.pool.query(
      `DELETE FROM soak_stalls;
       INSERT INTO soak_logs SELECT 'w', 1, max(stopped) + 500, 'error',
         'could not record outcomes before the lease ran out; the reaper takes the rows back',
         'unsupported Unicode escape sequence' FROM soak_runs;
       INSERT INTO soak_logs SELECT 'w', 1, max(stopped) + 500, 'warn', 'delivery failed; will retry',
         'subscriber hiccup' FROM soak_runs`,
    );
    expect((await violations(known)).join("\n")).toMatch(/run again after its handler returned/);
    // ... a heartbeat failing is one, and so is a run of the process aborted for a lost lease.
    await db.pool.query(
      `INSERT INTO soak_logs SELECT 'w', 1, max(stopped) + 500, 'warn', 'heartbeat failed; leases run on',
         'Connection terminated unexpectedly' FROM soak_runs`,
    );
    expect(await violations(known)).toEqual([]);
    await db.pool.query(
      `DELETE FROM soak_logs;
       INSERT INTO soak_runs (run_id, operation_id, node, pid, attempt, mode, started, stopped, outcome, aborted_by)
       SELECT gen_random_uuid(), gen_random_uuid(), 'w', 1, 1, 'slow', max(stopped), max(stopped) + 700, 'aborted',
         'LeaseLost' FROM soak_runs`,
    );
    expect(await violations(known)).toEqual([]);
  });

  it("excuse a snoozed run of an operation cancelled before any claim (a snooze uses no attempt)", async () => {
    const known = await settledHistory();
    await db.pool.query(
      `INSERT INTO soak_runs (run_id, operation_id, node, pid, attempt, mode, started, stopped, outcome)
       SELECT gen_random_uuid(), id, 'w', 1, 1, 'long', ${NOW_MS} - 60000, ${NOW_MS} - 59999, 'snoozed'
       FROM operations WHERE status = 'cancelled' LIMIT 1`,
    );
    expect(await violations(known)).toEqual([]);
  });

  it("excuse an event its subscriber never received when its delivery died and was pruned", async () => {
    const known = await settledHistory();
    await db.pool.query(
      `INSERT INTO soak_pruned_dead SELECT event_id, subscriber, now() FROM soak_deliveries
       WHERE event_id = (SELECT max(event_id) FROM soak_deliveries);
       DELETE FROM soak_deliveries WHERE event_id = (SELECT max(event_id) FROM soak_deliveries)`,
    );
    expect(await violations(known)).toEqual([]);
  });

  it("excuse a revived delivery never delivered once it died again, or its subscriber was removed", async () => {
    const known = await settledHistory();
    await db.pool.query(
      `INSERT INTO soak_revivals SELECT min(id), 'recorder', ${NOW_MS}, ${NOW_MS} FROM operation_outbox`,
    );
    expect((await violations(known)).join("\n")).toMatch(/revived, never delivered/);
    await db.pool.query(
      `INSERT INTO soak_pruned_dead SELECT min(id), 'recorder', clock_timestamp() - interval '1 minute' FROM operation_outbox`,
    );
    expect((await violations(known)).join("\n")).toMatch(/revived, never delivered/); // died before, not again
    await db.pool.query(
      `INSERT INTO soak_pruned_dead SELECT min(id), 'recorder', clock_timestamp() FROM operation_outbox`,
    );
    expect(await violations(known)).toEqual([]);
    await db.pool.query(
      `DELETE FROM soak_pruned_dead; INSERT INTO soak_removals VALUES ('recorder', ${NOW_MS} + 1, ${NOW_MS} + 2)`,
    );
    expect(await violations(known)).toEqual([]);
  });

  it("count handler starts after the cancel covering them returned, unless retried in between", async () => {
    await settledHistory();
    expect(await measureRuns(db.pool)).toEqual({
      startsAfterCancel: { count: 0, maxMs: 0 },
      stalls: { count: 0, maxMs: 0 },
      nodeLogs: {},
    });
    const late = `INSERT INTO soak_runs (run_id, operation_id, batch_id, node, pid, attempt, mode, started)
       SELECT gen_random_uuid(), o.id, o.batch_id, 'w', 1, 1, 'ok', c.returned + 250
       FROM soak_cancels c JOIN operations o ON o.batch_id = c.target`;
    await db.pool.query(late);
    expect(await measureRuns(db.pool)).toEqual({
      startsAfterCancel: { count: 1, maxMs: 250 },
      stalls: { count: 0, maxMs: 0 },
      nodeLogs: {},
    });
    await db.pool.query(
      `INSERT INTO soak_retries SELECT target, returned + 100, returned + 120 FROM soak_cancels`,
    );
    expect(await measureRuns(db.pool)).toEqual({
      startsAfterCancel: { count: 0, maxMs: 0 },
      stalls: { count: 0, maxMs: 0 },
      nodeLogs: {},
    });
  });
});
