// Operation types and small helpers shared by the database tests.
import { z } from "zod";
import type { Pool } from "pg";
import { defineOperationType } from "../../src";

export const Document = z.object({
  id: z.string(),
  tokens: z.number().int().nonnegative(),
  text: z.string(),
});

export const types = {
  // The seed system's use: documents split into children by a token budget.
  "documents.ingest": defineOperationType({
    payload: z.object({ documents: z.array(Document).min(1), chunk: z.number().int() }),
    batch: {
      item: Document,
      toPayload: (documents, child) => ({ documents, chunk: child.index }),
      weigh: (document) => document.tokens,
      split: { maxWeight: 1000 },
    },
    maxAttempts: 3,
  }),
  "email.send": defineOperationType({
    payload: z.object({ to: z.string().email(), subject: z.string() }),
    maxAttempts: 2,
  }),
};

export type TestTypes = typeof types;

export function documents(count: number, tokens = 300): z.input<typeof Document>[] {
  return Array.from({ length: count }, (_, i) => ({ id: `doc-${i}`, tokens, text: `text ${i}` }));
}

export interface RowCounts {
  batches: number;
  operations: number;
  outbox: number;
}

/** Rows in every table of the module, read outside the code under test. */
export async function countRows(pool: Pool): Promise<RowCounts> {
  const { rows } = await pool.query<{ batches: number; operations: number; outbox: number }>(`
    SELECT (SELECT count(*) FROM operation_batches)::int AS batches,
           (SELECT count(*) FROM operations)::int AS operations,
           (SELECT count(*) FROM operation_outbox)::int AS outbox`);
  return rows[0]!;
}

export async function truncateAll(pool: Pool): Promise<void> {
  await pool.query(
    `TRUNCATE operation_deliveries, operation_delivery_holds, operation_subscribers, operation_outbox, operations,
       operation_batches, operation_workers RESTART IDENTITY`,
  );
}

/** Deliveries still owed to any subscriber: delivery rows not delivered yet, and events held for inline delivery. */
export const OWED_DELIVERIES_SQL = `
  SELECT (SELECT count(*) FROM operation_deliveries WHERE delivered_at IS NULL)::int
       + (SELECT COALESCE(sum(cardinality(event_ids)), 0) FROM operation_delivery_holds)::int AS owed`;

/** Resolves when `condition` holds, polling; fails with `what` if it does not within `timeoutMs`. */
export async function waitFor(
  what: string,
  condition: () => Promise<boolean> | boolean,
  timeoutMs = 10_000,
  intervalMs = 20,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * Resolves once the clock is past the millisecond in which the subscribers' registration times
 * were fixed: an event written in that millisecond may read as owed or not (and be replayed as
 * well); one written after it was owed.
 */
export function afterRegistration(pool: Pool): Promise<void> {
  return waitFor("the registration's millisecond to pass", async () => {
    const { rows } = await pool.query(
      `SELECT bool_and(clock_timestamp() >= registered_at + interval '2 milliseconds') AS past FROM operation_subscribers`,
    );
    return rows[0].past !== false;
  });
}

/** The pid of a backend of `applicationName` once it sleeps in pg_sleep (a fault trigger holding it mid-statement). */
export async function sleepingBackend(pool: Pool, applicationName: string, what: string): Promise<number> {
  let pid = 0;
  await waitFor(what, async () => {
    const { rows } = await pool.query(
      `SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND wait_event = 'PgSleep'`,
      [applicationName],
    );
    pid = rows[0]?.pid ?? 0;
    return pid !== 0;
  });
  return pid;
}

/** Whether a backend of `applicationName` on this database waits for a lock now. */
export async function waitsForLock(pool: Pool, applicationName: string): Promise<boolean> {
  const { rows } = await pool.query(
    `SELECT count(*)::int AS n FROM pg_stat_activity
     WHERE datname = current_database() AND application_name = $1 AND wait_event_type = 'Lock'`,
    [applicationName],
  );
  return rows[0].n > 0;
}

/**
 * Resolves once `work` has settled, or a backend of `applicationName` waits for a lock: how a test
 * knows that a step it started has gone as far as it can while another transaction holds its rows.
 */
export async function settledOrWaiting(
  work: Promise<unknown>,
  pool: Pool,
  applicationName: string,
  what: string,
): Promise<"settled" | "waiting"> {
  let settled = false;
  void work.then(
    () => (settled = true),
    () => (settled = true),
  );
  let state: "settled" | "waiting" = "settled";
  await waitFor(what, async () => {
    if (settled) return true;
    if (!(await waitsForLock(pool, applicationName))) return false;
    state = "waiting";
    return true;
  });
  return state;
}

/** Delivery rows and holds for a subscriber that is not registered: no relay delivers them, nothing shows them. */
export async function orphans(pool: Pool): Promise<{ deliveries: number; holds: number }> {
  const { rows } = await pool.query(`
    SELECT (SELECT count(*) FROM operation_deliveries d
            WHERE NOT EXISTS (SELECT 1 FROM operation_subscribers s WHERE s.name = d.subscriber))::int AS deliveries,
           (SELECT count(*) FROM operation_delivery_holds h
            WHERE NOT EXISTS (SELECT 1 FROM operation_subscribers s WHERE s.name = h.subscriber))::int AS holds`);
  return rows[0];
}

/**
 * Deadlocks PostgreSQL has counted in this database. Each backend reports its victims when it is
 * next idle for a while, and at exit at the latest: read it once the backends that may have been
 * victims have ended (endBackends).
 */
export async function deadlocks(pool: Pool): Promise<number> {
  const { rows } = await pool.query(
    `SELECT deadlocks::int AS n FROM pg_stat_database WHERE datname = current_database()`,
  );
  return rows[0].n;
}

/** Ends `ending` (a pool of application `applicationName`) and resolves once its backends are gone. */
export async function endBackends(pool: Pool, ending: Pool, applicationName: string): Promise<void> {
  await ending.end();
  await waitFor(`the backends of ${applicationName} to exit`, async () => {
    const { rows } = await pool.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1`,
      [applicationName],
    );
    return rows[0].n === 0;
  });
}
