// Claims and leases: workers take due operations with FOR UPDATE SKIP LOCKED, each claim named by
// a fresh token, and keep them alive by heartbeat.
import type { Tables } from "../tables";
import { lockedById, milliseconds, sql, type Sql } from "./shared";

/** A claimed operation: what a handler needs, and the claim it runs under. */
export interface ClaimedRow {
  id: string;
  tenantId: string;
  batchId: string | null;
  type: string;
  payload: unknown;
  attempts: number;
  maxAttempts: number;
  /** Names this claim: its outcome, heartbeats and hand-back count only while the row still has it. */
  lockToken: string;
  /** Its place in the claim (1 first): rows are handed to slots in this order. */
  pickOrder: number;
}

/** How a claim chooses among due rows. */
export interface ClaimPolicy {
  /**
   * Share the claim between the (type, tenant) queues that have due rows, round-robin (weighted),
   * each queue oldest first; otherwise oldest due first across queues (FIFO).
   */
  fair: boolean;
  /** Where this claimer's previous fair claim stopped: it goes on after that queue. */
  after?: { type: string; tenantId: string };
  /** Running limits per type, enforced across every process. */
  limits?: readonly { type: string; total?: number; perTenant?: number }[];
  /** A tenant's weight in a fair claim (default 1): its share is proportional to it. */
  weights?: Readonly<Record<string, number>>;
}

export const FIFO: ClaimPolicy = { fair: false };

/**
 * Marks the picked rows processing under a lease held by `workerId` with a new claim token,
 * counting an attempt, and marks their batches started — one statement. `picked` selects ids FOR
 * UPDATE SKIP LOCKED, so concurrent claimers never get the same row and never wait for each other.
 */
function claim(t: Tables, picked: Sql, workerId: string, leaseMs: number): Sql {
  return sql`
    WITH picked AS (${picked}), claimed AS (
      UPDATE ${t.operations} o
      SET status = 'processing', locked_by = ${workerId}, locked_until = now() + ${milliseconds(leaseMs)},
          lock_token = gen_random_uuid(), attempts = o.attempts + 1,
          started_at = COALESCE(o.started_at, now()), updated_at = now()
      FROM picked
      WHERE o.id = picked.picked_id AND o.status = 'pending'
      RETURNING o.id::text AS "id", o.tenant_id AS "tenantId", o.batch_id::text AS "batchId", o.type,
        o.payload, o.attempts, o.max_attempts AS "maxAttempts", o.lock_token::text AS "lockToken",
        picked.pick_order AS "pickOrder"
    ), started AS (
      UPDATE ${t.batches} b
      SET status = 'processing', started_at = COALESCE(b.started_at, now()), updated_at = now()
      WHERE b.id IN (SELECT "batchId"::uuid FROM claimed) AND b.status = 'pending'
    )
    SELECT * FROM claimed ORDER BY "pickOrder"`;
}

/**
 * The claim query: up to `limit` due, pending operations (of `types`, when given), chosen by
 * `policy` (see the pick function in the migration). It reads the operations table only — a batch
 * (parent) cannot be returned, in any state.
 */
export function claimDue(
  t: Tables,
  limit: number,
  workerId: string,
  leaseMs: number,
  types?: readonly string[],
  policy: ClaimPolicy = FIFO,
): Sql {
  const limits = policy.limits ?? [];
  return claim(
    t,
    sql`SELECT picked_id, pick_order FROM ${t.pickClaimable}(${limit}::int, ${types ?? null}::text[],
          ${policy.fair}::boolean, ${policy.after?.type ?? null}::text, ${policy.after?.tenantId ?? null}::text,
          ${limits.map((l) => l.type)}::text[], ${limits.map((l) => l.total ?? null)}::int[],
          ${limits.map((l) => l.perTenant ?? null)}::int[], ${policy.weights ? JSON.stringify(policy.weights) : null}::jsonb)`,
    workerId,
    leaseMs,
  );
}

/** A (type, tenant) queue: the rows of one type of one tenant, claimed oldest first. */
export interface QueueKey {
  type: string;
  tenantId: string;
}

/**
 * Up to `perQueue` due rows of each of `queues`, oldest first (see operations_pick_announced in
 * the migrations): the claim for queues a submit has just announced. Not for a type with
 * concurrency limits, whose claims must count what runs (claimDue).
 */
export function claimAnnounced(
  t: Tables,
  queues: readonly QueueKey[],
  perQueue: number,
  workerId: string,
  leaseMs: number,
): Sql {
  return claim(
    t,
    sql`SELECT picked_id, pick_order FROM ${t.pickAnnounced}(${queues.map((q) => q.type)}::text[],
          ${queues.map((q) => q.tenantId)}::text[], ${perQueue}::int)`,
    workerId,
    leaseMs,
  );
}

/** Claims the named operations that are still pending, whatever their run_at (the sync backend). */
export function claimById(t: Tables, ids: readonly string[], workerId: string, leaseMs: number): Sql {
  return claim(
    t,
    sql`
      SELECT picked_id, (row_number() OVER (ORDER BY picked_id))::int AS pick_order
      FROM (SELECT id AS picked_id FROM ${t.operations}
            WHERE id = ANY(${ids}::uuid[]) AND status = 'pending'
            ORDER BY id
            FOR UPDATE SKIP LOCKED) locked`,
    workerId,
    leaseMs,
  );
}

/** Extends the leases of the claims still held; says which of them were asked to cancel. */
export function heartbeat(
  t: Tables,
  claims: readonly { id: string; lockToken: string }[],
  leaseMs: number,
): Sql {
  // Rows locked in id order first, as every multi-row statement locks operations (no deadlock
  // with a cancel of the same batch).
  return sql`
    UPDATE ${t.operations} o
    SET locked_until = now() + ${milliseconds(leaseMs)}
    FROM (
      SELECT c.id, u.token
      FROM ${lockedById(t, sql`unnest(${claims.map((c) => c.id)}::uuid[], ${claims.map((c) => c.lockToken)}::uuid[]) AS u(id, token)`)}
      WHERE c.lock_token = u.token AND c.status = 'processing'
    ) p
    WHERE o.id = p.id -- locked and checked by id above (see move in transitions.ts)
    RETURNING o.lock_token::text AS "lockToken", o.cancel_requested_at IS NOT NULL AS "cancelRequested"`;
}
