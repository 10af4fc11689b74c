// Reads and writes through Prisma's query API, and runs the raw statements of sql.ts. Nothing
// here decides policy; it takes plans and returns rows.
import type { Prisma, PrismaClient } from "../generated/prisma/client";
import type { OperationStatus } from "../domain/status";
import type { BatchPlan, OperationPlan } from "../submit/plan";
import * as statements from "./sql";
import type { Sql } from "@prisma/client/runtime/client";
import type { ClaimedRow, Finish, NewOutboxEvent, OutboxRow, Target, TransitionRow } from "./sql";
import {
  batchFromJson,
  operationFromJson,
  toBatchView,
  toOperationView,
  type BatchView,
  type OperationView,
  type StatusCounts,
} from "./views";

/**
 * The Prisma client the module runs on: one generated from a schema that contains the module's
 * models (OperationBatch, Operation, OutboxEvent), with the PostgreSQL driver adapter.
 */
export type OperationsPrismaClient = PrismaClient;

/** The client Prisma passes to an interactive transaction's callback. */
export type TransactionClient = Prisma.TransactionClient;

/** Either: reads and writes run on whichever they are given. */
export type Db = OperationsPrismaClient | TransactionClient;

export async function findBatchByKey(db: Db, tenantId: string, idempotencyKey: string) {
  return db.operationBatch.findUnique({ where: { tenantId_idempotencyKey: { tenantId, idempotencyKey } } });
}

export async function readOperationByKey(db: Db, tenantId: string, idempotencyKey: string) {
  const row = await db.operation.findFirst({ where: { tenantId, idempotencyKey } });
  return row ? toOperationView(row) : null;
}

export async function childIds(db: Db, batchId: string): Promise<string[]> {
  const rows = await db.operation.findMany({
    where: { batchId },
    select: { id: true },
    orderBy: { id: "asc" },
  });
  return rows.map((row) => row.id);
}

/** Events as json_agg returns them: createdAt is a string there. */
function parseEvents(events: OutboxRow[] | null): OutboxRow[] {
  return (events ?? []).map((event) => ({ ...event, createdAt: new Date(event.createdAt) }));
}

/**
 * Parent, children and `batch.submitted` in one statement. `row` is null when the idempotency key
 * was taken: nothing was written.
 */
export async function insertBatch(db: Db, plan: BatchPlan, eventDelayMs: number) {
  const [result] = await db.$queryRaw<statements.InsertedRow[]>(statements.insertBatch(plan, eventDelayMs));
  return {
    row: result?.inserted ? batchFromJson(result.inserted) : null,
    events: parseEvents(result?.events ?? null),
  };
}

/** A standalone operation and `operation.submitted` in one statement; `row` null when the key was taken. */
export async function insertOperation(db: Db, plan: OperationPlan, eventDelayMs: number) {
  const [result] = await db.$queryRaw<statements.InsertedRow[]>(
    statements.insertOperation(plan, eventDelayMs),
  );
  return {
    row: result?.inserted ? operationFromJson(result.inserted) : null,
    events: parseEvents(result?.events ?? null),
  };
}

export async function insertOutboxEvents(
  db: Db,
  events: readonly NewOutboxEvent[],
  delayMs: number,
): Promise<OutboxRow[]> {
  if (events.length === 0) return [];
  return db.$queryRaw<OutboxRow[]>(statements.insertOutboxEvents(events, delayMs));
}

async function childStatusCounts(db: Db, batchIds: readonly string[]): Promise<Map<string, StatusCounts>> {
  const groups = await db.operation.groupBy({
    by: ["batchId", "status"],
    where: { batchId: { in: [...batchIds] } },
    _count: { _all: true },
  });
  const counts = new Map<string, StatusCounts>();
  for (const group of groups) {
    const entry = counts.get(group.batchId!) ?? { pending: 0, processing: 0 };
    if (group.status === "pending" || group.status === "processing") entry[group.status] = group._count._all;
    counts.set(group.batchId!, entry);
  }
  return counts;
}

/**
 * A tenant's batch with its progress; null when absent or another tenant's. Two reads: run it in
 * a REPEATABLE READ transaction for counts from one snapshot.
 */
export async function readBatch(db: Db, tenantId: string, id: string): Promise<BatchView | null> {
  const batch = await db.operationBatch.findFirst({ where: { id, tenantId } });
  if (!batch) return null;
  const counts = await childStatusCounts(db, [id]);
  return toBatchView(batch, counts.get(id));
}

export async function readOperation(db: Db, tenantId: string, id: string): Promise<OperationView | null> {
  const row = await db.operation.findFirst({ where: { id, tenantId } });
  return row ? toOperationView(row) : null;
}

export interface ListQuery {
  tenantId: string;
  statuses?: OperationStatus[];
  type?: string;
  batchId?: string;
  includeBatches: boolean;
  limit: number;
  /** Only rows with a smaller id (ids are UUIDv7: older). */
  beforeId?: string;
}

export type ListedItem = ({ kind: "operation" } & OperationView) | ({ kind: "batch" } & BatchView);

/**
 * Newest first, by id. Operations and (when asked) batches are read with the same filters and
 * merged; ids of both are UUIDv7 from one generator, so one id cursor pages through both.
 */
export async function listItems(
  db: Db,
  query: ListQuery,
): Promise<{ items: ListedItem[]; hasMore: boolean }> {
  const common = {
    tenantId: query.tenantId,
    ...(query.statuses ? { status: { in: query.statuses } } : {}),
    ...(query.type ? { type: query.type } : {}),
    ...(query.beforeId ? { id: { lt: query.beforeId } } : {}),
  };
  const take = query.limit + 1;
  const operations = await db.operation.findMany({
    where: { ...common, ...(query.batchId ? { batchId: query.batchId } : {}) },
    orderBy: { id: "desc" },
    take,
  });
  const items: ListedItem[] = operations.map((row) => ({ kind: "operation", ...toOperationView(row) }));
  if (query.includeBatches && !query.batchId) {
    const batches = await db.operationBatch.findMany({ where: common, orderBy: { id: "desc" }, take });
    const counts = await childStatusCounts(
      db,
      batches.map((batch) => batch.id),
    );
    items.push(
      ...batches.map((row) => ({ kind: "batch" as const, ...toBatchView(row, counts.get(row.id)) })),
    );
    items.sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
  }
  return { items: items.slice(0, query.limit), hasMore: items.length > query.limit };
}

// --- outbox -------------------------------------------------------------------------------------

export async function claimDueEvents(db: Db, limit: number, leaseMs: number): Promise<OutboxRow[]> {
  const rows = await db.$queryRaw<OutboxRow[]>(statements.claimDueEvents(limit, leaseMs));
  return rows.sort((a, b) => Number(BigInt(a.id) - BigInt(b.id)));
}

export async function markEventsDispatched(
  db: Db,
  ids: readonly string[],
  countAttempt: boolean,
): Promise<void> {
  if (ids.length) await db.$executeRaw(statements.markEventsDispatched(ids, countAttempt));
}

export async function markEventFailed(
  db: Db,
  id: string,
  error: string,
  retryDelayMs: number | null,
  countAttempt: boolean,
): Promise<void> {
  await db.$executeRaw(statements.markEventFailed(id, error, retryDelayMs, countAttempt));
}

// --- execution ----------------------------------------------------------------------------------

export async function pendingChildIds(db: Db, batchId: string): Promise<string[]> {
  const rows = await db.$queryRaw<{ id: string }[]>(statements.pendingChildIds(batchId));
  return rows.map((row) => row.id);
}

export async function claimOperationsById(
  db: Db,
  ids: readonly string[],
  workerId: string,
  leaseMs: number,
): Promise<ClaimedRow[]> {
  if (ids.length === 0) return [];
  return db.$queryRaw<ClaimedRow[]>(statements.claimOperationsById(ids, workerId, leaseMs));
}

export async function claimDue(
  db: Db,
  limit: number,
  workerId: string,
  leaseMs: number,
  types?: readonly string[],
): Promise<ClaimedRow[]> {
  return db.$queryRaw<ClaimedRow[]>(statements.claimDue(limit, workerId, leaseMs, types));
}

async function runTransition(db: Db, statement: Sql): Promise<TransitionRow> {
  const [row] = await db.$queryRaw<TransitionRow[]>(statement);
  if (!row) return { changed: 0, rows: [], events: [], cancelRequested: 0 };
  return { ...row, events: parseEvents(row.events) };
}

export function finishOperations(
  db: Db,
  outcomes: readonly { id: string; finish: Finish }[],
  workerId: string,
  eventDelayMs: number,
) {
  return runTransition(db, statements.finishOperations(outcomes, workerId, eventDelayMs));
}

export function reapExpiredLeases(db: Db, limit: number, eventDelayMs: number) {
  return runTransition(db, statements.reapExpiredLeases(limit, eventDelayMs));
}

export function cancelPending(db: Db, target: Target, eventDelayMs: number) {
  return runTransition(db, statements.cancelPending(target, eventDelayMs));
}

export function requeueFinished(db: Db, target: Target, eventDelayMs: number) {
  return runTransition(db, statements.requeueFinished(target, eventDelayMs));
}

export async function requestCancel(db: Db, target: Target): Promise<number> {
  const [row] = await db.$queryRaw<{ requested: number }[]>(statements.requestCancel(target));
  return row?.requested ?? 0;
}

export async function heartbeat(
  db: Db,
  ids: readonly string[],
  workerId: string,
  leaseMs: number,
): Promise<{ id: string; cancelRequested: boolean }[]> {
  if (ids.length === 0) return [];
  return db.$queryRaw(statements.heartbeat(ids, workerId, leaseMs));
}

export async function lockOperation(tx: TransactionClient, tenantId: string, id: string) {
  const [row] = await tx.$queryRaw<{ status: OperationStatus }[]>(statements.lockOperation(tenantId, id));
  return row;
}

export async function reconcileBatches(
  db: Db,
  limit: number,
  minAgeMs: number,
  eventDelayMs: number,
): Promise<{ fixed: number; events: OutboxRow[] }> {
  const [row] = await db.$queryRaw<{ fixed: number; events: OutboxRow[] }[]>(
    statements.reconcileBatches(limit, minAgeMs, eventDelayMs),
  );
  return { fixed: row?.fixed ?? 0, events: parseEvents(row?.events ?? null) };
}

/** Work per type and tenant, as operationStats() reads it. */
export interface OperationStatsRow {
  type: string;
  tenantId: string;
  /** Pending and due: a worker could take it now. */
  claimable: number;
  /** Pending, waiting for its run_at (scheduled, or backing off after a failure). */
  scheduled: number;
  processing: number;
  /** Seconds since the oldest claimable operation became due (0 when none). */
  oldestClaimableAgeSeconds: number;
}

export async function readStats(db: Db) {
  const [operations, batches, outbox] = await Promise.all([
    db.$queryRaw<OperationStatsRow[]>(statements.operationStats()),
    db.$queryRaw<{ type: string; tenantId: string; inFlight: number }[]>(statements.batchStats()),
    db.$queryRaw<{ tenantId: string; backlog: number; dead: number }[]>(statements.outboxStats()),
  ]);
  return { operations, batches, outbox };
}
