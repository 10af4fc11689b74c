// Claims and leases: workers take due operations with FOR UPDATE SKIP LOCKED, each claim named by
// a fresh token, and keep them alive by heartbeat.
import type { Tables } from "../tables";
import { sql, type Sql } from "./shared";

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
 * counting an attempt, and marks their batches started. `picked` selects ids FOR UPDATE SKIP
 * LOCKED in pick order, so concurrent claimers never get the same row and never wait for each
 * other; the claim function then updates them in a statement of its own, after the pick (see
 * operations_claim in the migrations: it can claim every row the pick locked, and finds each by
 * primary key whatever the statistics say).
 */
function claim(t: Tables, picked: Sql, workerId: string, leaseMs: number): Sql {
  return sql`
    SELECT c.claimed_id::text AS "id", c.claimed_tenant_id AS "tenantId", c.claimed_batch_id::text AS "batchId",
           c.claimed_type AS "type", c.claimed_payload AS "payload", c.claimed_attempts AS "attempts",
           c.claimed_max_attempts AS "maxAttempts", c.claimed_lock_token::text AS "lockToken",
           c.claimed_order AS "pickOrder"
    FROM ${t.claim}(ARRAY(${picked}), ${workerId}, ${leaseMs / 1000}::float8) c
    ORDER BY c.claimed_order`;
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
    sql`SELECT picked_id FROM ${t.pickClaimable}(${limit}::int, ${types ?? null}::text[],
          ${policy.fair}::boolean, ${policy.after?.type ?? null}::text, ${policy.after?.tenantId ?? null}::text,
          ${limits.map((l) => l.type)}::text[], ${limits.map((l) => l.total ?? null)}::int[],
          ${limits.map((l) => l.perTenant ?? null)}::int[], ${policy.weights ? JSON.stringify(policy.weights) : null}::jsonb)
        ORDER BY pick_order`,
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
    sql`SELECT picked_id FROM ${t.pickAnnounced}(${queues.map((q) => q.type)}::text[],
          ${queues.map((q) => q.tenantId)}::text[], ${perQueue}::int)
        ORDER BY pick_order`,
    workerId,
    leaseMs,
  );
}

/** Claims the named operations that are still pending, whatever their run_at (the sync backend). */
export function claimById(t: Tables, ids: readonly string[], workerId: string, leaseMs: number): Sql {
  return claim(
    t,
    sql`
      SELECT id FROM ${t.operations}
      WHERE id = ANY(${ids}::uuid[]) AND status = 'pending'
      ORDER BY id
      FOR UPDATE SKIP LOCKED`,
    workerId,
    leaseMs,
  );
}

/**
 * Extends the leases of the claims still held; says which of them were asked to cancel. Each row
 * is locked by primary key in id order, as every multi-row statement locks operations (no deadlock
 * with a cancel of the same batch), whatever the statistics say (see operations_heartbeat in the
 * migrations).
 */
export function heartbeat(
  t: Tables,
  claims: readonly { id: string; lockToken: string }[],
  leaseMs: number,
): Sql {
  return sql`
    SELECT h.beat_lock_token::text AS "lockToken", h.beat_cancel_requested AS "cancelRequested"
    FROM ${t.heartbeat}(${claims.map((c) => c.id)}::uuid[], ${claims.map((c) => c.lockToken)}::uuid[],
                        ${leaseMs / 1000}::float8) h`;
}
