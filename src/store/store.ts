// Runs the statements of ./statements on a client (or a transaction) and shapes what they return.
// Nothing here decides policy: it takes plans and returns rows.
import type { OperationStatus } from "../domain/status";
import type { BatchPlan, OperationPlan } from "../submit/plan";
import { moduleStatement } from "../prepared-statements";
import type { Db } from "./client";
import type { RetentionPolicy } from "../domain/retention";
import * as claims from "./statements/claims";
import * as dashboard from "./statements/dashboard";
import * as outbox from "./statements/outbox";
import * as reads from "./statements/reads";
import * as retention from "./statements/retention";
import type { Sql } from "./statements/shared";
import * as stats from "./statements/stats";
import * as submit from "./statements/submit";
import * as transitions from "./statements/transitions";
import * as workers from "./statements/workers";
import type { ClaimedRow, ClaimPolicy } from "./statements/claims";
import type {
  BatchListFilter,
  DeadDeliveryRow,
  EventRow,
  OperationListFilter,
  QueueRow,
  SubscriberRow,
  TenantScope,
  ThroughputRow,
} from "./statements/dashboard";
import type {
  ClaimedDelivery,
  DeadFilter,
  DeliveryRef,
  HoldSettlement,
  Inline,
  NewOutboxEvent,
  OutboxEvent,
  WrittenEvent,
} from "./statements/outbox";
import type { ListFilter } from "./statements/reads";
import type { EventCursor, FinishedCursor, PruneStep } from "./statements/retention";
import type { Outcome, Target, TransitionRow } from "./statements/transitions";
import type { WorkerIdentity, WorkerRow } from "./statements/workers";
import type { Tables } from "./tables";
import {
  insertedBatchView,
  insertedOperationView,
  toBatchView,
  type BatchRow,
  type BatchView,
  type OperationView,
} from "./views";

/**
 * Marks a statement of the hot path — submits, claims, outcomes, heartbeats, deliveries — to be
 * prepared by `preparedStatementNames`. Only these: each finds its rows by key, or through the
 * functions that pin their plans, so a generic plan serves them as well (plans.test.ts holds the
 * group commit, heartbeat, reaper and delivery records to it). A read filtered by tenant is left
 * unnamed: a generic plan is made for the average tenant, and for a page of a tenant's operations
 * it scans the primary key backwards, which reads the whole table for a small tenant beside a big
 * one.
 */
function prepared(statement: Sql): Sql {
  moduleStatement(statement.text);
  return statement;
}

/** Events as json_agg returns them: createdAt is a string there. */
function parseEvents(events: unknown): WrittenEvent[] {
  return ((events as (WrittenEvent & { createdAt: string })[] | null) ?? []).map((event) => ({
    ...event,
    createdAt: new Date(event.createdAt),
  }));
}

/** Work per type and tenant, as the stats read it. */
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

/** A subscriber's deliveries still owed, and dead. */
export interface DeliveryStatsRow {
  subscriber: string;
  backlog: number;
  dead: number;
  /** Age of the oldest event not yet delivered to it (0 when none). */
  oldestUndeliveredAgeSeconds: number;
}

export class Store {
  constructor(
    readonly db: Db,
    readonly tables: Tables,
  ) {}

  /** The same store on another client: a caller's transaction. */
  on(db: Db): Store {
    return db === this.db ? this : new Store(db, this.tables);
  }

  private query<T>(statement: Sql): Promise<T[]> {
    return Promise.resolve(this.db.$queryRaw<T[]>(statement));
  }

  /** Runs a statement that returns no rows; resolves to the number of rows it changed. */
  private execute(statement: Sql): Promise<number> {
    return Promise.resolve(this.db.$executeRaw(statement));
  }

  private async one<T>(statement: Sql): Promise<T | undefined> {
    return (await this.query<T>(statement))[0];
  }

  /** Runs a statement that calls a function of the migrations returning the rows it changed, as `changed`. */
  private async changed(statement: Sql): Promise<number> {
    return (await this.one<{ changed: number }>(statement))!.changed;
  }

  // --- submits ------------------------------------------------------------------------------------

  /** Parent, children and `batch.submitted` in one statement; `batch` null when the idempotency key was taken. */
  async insertBatch(
    plan: BatchPlan,
    inline: Inline,
  ): Promise<{ batch: BatchView | null; events: WrittenEvent[] }> {
    const row = await this.one<submit.InsertedRow>(prepared(submit.insertBatch(this.tables, plan, inline)));
    return {
      batch: row?.inserted ? insertedBatchView(row.inserted) : null,
      events: parseEvents(row?.events),
    };
  }

  /** An operation and `operation.submitted` in one statement; `operation` null when the key was taken. */
  async insertOperation(
    plan: OperationPlan,
    inline: Inline,
  ): Promise<{ operation: OperationView | null; events: WrittenEvent[] }> {
    const row = await this.one<submit.InsertedRow>(
      prepared(submit.insertOperation(this.tables, plan, inline)),
    );
    return {
      operation: row?.inserted ? insertedOperationView(row.inserted) : null,
      events: parseEvents(row?.events),
    };
  }

  async insertEvents(events: readonly NewOutboxEvent[], inline: Inline): Promise<WrittenEvent[]> {
    if (events.length === 0) return [];
    const row = await this.one<{ events: unknown }>(
      prepared(outbox.insertEvents(this.tables, events, inline)),
    );
    return parseEvents(row?.events);
  }

  // --- reads --------------------------------------------------------------------------------------

  async readBatch(tenantId: string, id: string): Promise<BatchView | null> {
    const row = await this.one<BatchRow>(reads.readBatch(this.tables, tenantId, id));
    return row ? toBatchView(row) : null;
  }

  async readOperation(tenantId: string, id: string): Promise<OperationView | null> {
    return (await this.one<OperationView>(reads.readOperation(this.tables, tenantId, id))) ?? null;
  }

  async batchByKey(tenantId: string, idempotencyKey: string): Promise<BatchView | null> {
    const row = await this.one<BatchRow>(reads.batchByKey(this.tables, tenantId, idempotencyKey));
    return row ? toBatchView(row) : null;
  }

  async operationByKey(tenantId: string, idempotencyKey: string): Promise<OperationView | null> {
    return (
      (await this.one<OperationView>(reads.operationByKey(this.tables, tenantId, idempotencyKey))) ?? null
    );
  }

  /** Rows running now per type and tenant, for `types`. */
  async runningOf(types: readonly string[]): Promise<{ type: string; tenantId: string; running: number }[]> {
    if (types.length === 0) return [];
    return this.query(reads.runningOf(this.tables, types));
  }

  /** Throws (as the database does) when the module's tables cannot be reached. */
  async probe(): Promise<void> {
    await this.query(reads.probe(this.tables));
  }

  /** The database this store's connection reaches, and the oid of the operations table in it (null: none). */
  async identity(): Promise<{ database: string; operationsTable: string | null }> {
    return (await this.one<{ database: string; operationsTable: string | null }>(
      reads.identity(this.tables),
    ))!;
  }

  async childIds(batchId: string, status?: "pending"): Promise<string[]> {
    const rows = await this.query<{ id: string }>(reads.childIds(this.tables, batchId, status));
    return rows.map((row) => row.id);
  }

  listOperations(filter: ListFilter): Promise<OperationView[]> {
    return this.query<OperationView>(reads.listOperations(this.tables, filter));
  }

  async listBatches(filter: ListFilter): Promise<BatchView[]> {
    return (await this.query<BatchRow>(reads.listBatches(this.tables, filter))).map(toBatchView);
  }

  // --- claims and leases --------------------------------------------------------------------------

  /** Claims due rows; `policy` says how to choose among them (default: oldest due first). */
  claimDue(
    limit: number,
    workerId: string,
    leaseMs: number,
    types?: readonly string[],
    policy?: ClaimPolicy,
  ): Promise<ClaimedRow[]> {
    return this.query<ClaimedRow>(
      prepared(claims.claimDue(this.tables, limit, workerId, leaseMs, types, policy)),
    );
  }

  async claimAnnounced(
    queues: readonly claims.QueueKey[],
    perQueue: number,
    workerId: string,
    leaseMs: number,
  ): Promise<ClaimedRow[]> {
    if (queues.length === 0 || perQueue <= 0) return [];
    return this.query<ClaimedRow>(
      prepared(claims.claimAnnounced(this.tables, queues, perQueue, workerId, leaseMs)),
    );
  }

  async claimById(ids: readonly string[], workerId: string, leaseMs: number): Promise<ClaimedRow[]> {
    if (ids.length === 0) return [];
    return this.query<ClaimedRow>(prepared(claims.claimById(this.tables, ids, workerId, leaseMs)));
  }

  async heartbeat(
    held: readonly { id: string; lockToken: string }[],
    leaseMs: number,
  ): Promise<{ lockToken: string; cancelRequested: boolean }[]> {
    if (held.length === 0) return [];
    return this.query(prepared(claims.heartbeat(this.tables, held, leaseMs)));
  }

  // --- transitions --------------------------------------------------------------------------------

  private async transition(statement: Sql): Promise<TransitionRow> {
    const row = await this.one<TransitionRow & { events: unknown }>(statement);
    if (!row) return { changed: 0, rows: [], events: [], cancelRequested: 0 };
    return { ...row, events: parseEvents(row.events) };
  }

  finishOperations(outcomes: readonly Outcome[], inline: Inline): Promise<TransitionRow> {
    return this.transition(prepared(transitions.finishOperations(this.tables, outcomes, inline)));
  }

  reapExpiredLeases(limit: number, inline: Inline): Promise<TransitionRow> {
    return this.transition(prepared(transitions.reapExpiredLeases(this.tables, limit, inline)));
  }

  cancelTarget(target: Target, inline: Inline): Promise<TransitionRow> {
    return this.transition(transitions.cancelTarget(this.tables, target, inline));
  }

  /**
   * Re-queues the target's failed and cancelled rows: locks them and reads their status, then moves
   * them. Two statements, so call it inside a transaction (the lock holds until it ends).
   */
  async requeueTarget(target: Target, inline: Inline): Promise<TransitionRow> {
    const locked = await this.query<{ id: string; status: string }>(
      transitions.lockFinished(this.tables, target),
    );
    if (locked.length === 0) return { changed: 0, rows: [], events: [], cancelRequested: 0 };
    return this.transition(transitions.requeueLocked(this.tables, locked, inline));
  }

  async reconcileBatches(
    limit: number,
    minAgeMs: number,
    inline: Inline,
  ): Promise<{ fixed: number; events: WrittenEvent[] }> {
    const row = await this.one<{ fixed: number; events: unknown }>(
      transitions.reconcileBatches(this.tables, limit, minAgeMs, inline),
    );
    return { fixed: row?.fixed ?? 0, events: parseEvents(row?.events) };
  }

  // --- outbox -------------------------------------------------------------------------------------

  async registerSubscribers(
    subscribers: readonly { name: string; topics: readonly string[] | undefined }[],
  ): Promise<void> {
    if (subscribers.length === 0) return;
    const registered = await this.query<{ name: string; registering: boolean }>(
      outbox.registerSubscribers(this.tables, subscribers),
    );
    const unfixed = registered.filter((row) => row.registering).map((row) => row.name);
    if (unfixed.length) await this.execute(outbox.registrationCommitted(this.tables, unfixed));
  }

  async removeSubscriber(name: string): Promise<{ removed: number; deliveries: number }> {
    return (await this.one<{ removed: number; deliveries: number }>(
      outbox.removeSubscriber(this.tables, name),
    ))!;
  }

  async replayEvents(subscriber: string, since: Date | undefined): Promise<number> {
    return (
      (await this.one<{ added: number }>(outbox.replayEvents(this.tables, subscriber, since)))?.added ?? 0
    );
  }

  async claimDeliveries(subscriber: string, limit: number, leaseMs: number): Promise<ClaimedDelivery[]> {
    const rows = await this.query<OutboxEvent & { attempts: number; attempt: number }>(
      prepared(outbox.claimDeliveries(this.tables, subscriber, limit, leaseMs)),
    );
    return rows.map(({ attempts, attempt, ...event }) => ({ event, subscriber, attempts, attempt }));
  }

  async extendDeliveries(deliveries: readonly DeliveryRef[], leaseMs: number): Promise<number> {
    if (deliveries.length === 0) return 0;
    return this.changed(prepared(outbox.extendDeliveries(this.tables, deliveries, leaseMs)));
  }

  async markDelivered(deliveries: readonly DeliveryRef[]): Promise<number> {
    if (deliveries.length === 0) return 0;
    return this.changed(prepared(outbox.markDelivered(this.tables, deliveries)));
  }

  markFailed(delivery: DeliveryRef, error: string, retryDelayMs: number | null): Promise<number> {
    return this.changed(prepared(outbox.markFailed(this.tables, delivery, error, retryDelayMs)));
  }

  /** Settles holds (see outbox.settleHolds): how many were still there, and the delivery rows their failures got. */
  async settleHolds(settlements: readonly HoldSettlement[]): Promise<{ settled: number; failed: number }> {
    if (settlements.length === 0) return { settled: 0, failed: 0 };
    return (await this.one<{ settled: number; failed: number }>(
      prepared(outbox.settleHolds(this.tables, settlements)),
    ))!;
  }

  async redeliverDead(filter: DeadFilter): Promise<number> {
    return (
      (await this.one<{ redelivered: number }>(outbox.redeliverDead(this.tables, filter)))?.redelivered ?? 0
    );
  }

  // --- worker registry ----------------------------------------------------------------------------

  async announceWorker(worker: WorkerIdentity): Promise<void> {
    await this.execute(workers.announceWorker(this.tables, worker));
  }

  async workerSeen(worker: WorkerIdentity): Promise<void> {
    await this.execute(workers.workerSeen(this.tables, worker));
  }

  async workerStopped(id: string): Promise<void> {
    await this.execute(workers.workerStopped(this.tables, id));
  }

  listWorkers(): Promise<(WorkerRow & { running: number })[]> {
    return this.query(workers.listWorkers(this.tables));
  }

  // --- retention ----------------------------------------------------------------------------------

  async pruneBatches(
    policy: RetentionPolicy,
    shortest: number,
    after: FinishedCursor | undefined,
  ): Promise<PruneStep<FinishedCursor>> {
    return finishedStep(await this.one(retention.pruneBatches(this.tables, policy, shortest, after)));
  }

  async pruneOperations(
    policy: RetentionPolicy,
    shortest: number,
    after: FinishedCursor | undefined,
  ): Promise<PruneStep<FinishedCursor>> {
    return finishedStep(await this.one(retention.pruneOperations(this.tables, policy, shortest, after)));
  }

  async pruneEvents(
    policy: RetentionPolicy,
    after: EventCursor | undefined,
  ): Promise<PruneStep<EventCursor>> {
    const row = await this.one<{
      events: number;
      scanned: number;
      reachedEnd: boolean;
      next: { createdAt: string; id: string } | null;
    }>(retention.pruneEvents(this.tables, policy, after));
    return {
      batches: 0,
      operations: 0,
      events: row?.events ?? 0,
      scanned: row?.scanned ?? 0,
      reachedEnd: row?.reachedEnd ?? true,
      next: row?.next ? { createdAt: new Date(row.next.createdAt), id: row.next.id } : undefined,
    };
  }

  async pruneWorkers(policy: RetentionPolicy): Promise<number> {
    return (await this.one<{ workers: number }>(retention.pruneWorkers(this.tables, policy)))?.workers ?? 0;
  }

  // --- dashboard reads (each restricted to the operator's tenants) --------------------------------

  async databaseNow(): Promise<Date> {
    return (await this.one<{ now: Date }>(dashboard.databaseNow()))!.now;
  }

  queues(scope: TenantScope): Promise<QueueRow[]> {
    return this.query(dashboard.queues(this.tables, scope));
  }

  throughput(scope: TenantScope, type?: string): Promise<ThroughputRow[]> {
    return this.query(dashboard.throughput(this.tables, scope, type));
  }

  subscriberBacklogs(scope: TenantScope): Promise<SubscriberRow[]> {
    return this.query(dashboard.subscribers(this.tables, scope));
  }

  listBatchesWaiting(scope: TenantScope, filter: BatchListFilter): Promise<dashboard.BatchWaitingRow[]> {
    return this.query(dashboard.listBatches(this.tables, scope, filter));
  }

  async batchWaiting(scope: TenantScope, id: string): Promise<dashboard.BatchWaitingRow | null> {
    return (await this.one<dashboard.BatchWaitingRow>(dashboard.batchById(this.tables, scope, id))) ?? null;
  }

  batchChildren(
    scope: TenantScope,
    batchId: string,
    page: { afterId?: string; statuses?: readonly string[]; limit: number },
  ): Promise<dashboard.OperationSummaryRow[]> {
    return this.query(dashboard.batchChildren(this.tables, scope, batchId, page));
  }

  listStandalone(scope: TenantScope, filter: OperationListFilter): Promise<dashboard.OperationSummaryRow[]> {
    return this.query(dashboard.listStandalone(this.tables, scope, filter));
  }

  async operationWithBatch(scope: TenantScope, id: string): Promise<dashboard.OperationDetailRow | null> {
    return (
      (await this.one<dashboard.OperationDetailRow>(dashboard.operationById(this.tables, scope, id))) ?? null
    );
  }

  eventsAbout(scope: TenantScope, aggregateId: string, limit: number): Promise<EventRow[]> {
    return this.query(dashboard.eventsAbout(this.tables, scope, aggregateId, limit));
  }

  deadDeliveries(
    scope: TenantScope,
    filter: Parameters<typeof dashboard.deadDeliveries>[2],
  ): Promise<DeadDeliveryRow[]> {
    return this.query(dashboard.deadDeliveries(this.tables, scope, filter));
  }

  // --- stats --------------------------------------------------------------------------------------

  async stats(): Promise<{
    operations: OperationStatsRow[];
    batches: { type: string; tenantId: string; inFlight: number }[];
    deliveries: DeliveryStatsRow[];
  }> {
    const [operations, batches, deliveries] = await Promise.all([
      this.query<OperationStatsRow>(stats.operationStats(this.tables)),
      this.query<{ type: string; tenantId: string; inFlight: number }>(stats.batchStats(this.tables)),
      this.query<DeliveryStatsRow>(stats.deliveryStats(this.tables)),
    ]);
    return { operations, batches, deliveries };
  }
}

/** A pruning step's row: the cursor comes back as JSON (its timestamp a string). */
function finishedStep(
  row:
    | {
        batches: number;
        operations: number;
        events: number;
        scanned: number;
        reachedEnd: boolean;
        next: { finishedAt: string; id: string } | null;
      }
    | undefined,
): PruneStep<FinishedCursor> {
  return {
    batches: row?.batches ?? 0,
    operations: row?.operations ?? 0,
    events: row?.events ?? 0,
    scanned: row?.scanned ?? 0,
    reachedEnd: row?.reachedEnd ?? true,
    next: row?.next ? { finishedAt: new Date(row.next.finishedAt), id: row.next.id } : undefined,
  };
}

export type { OperationStatus };
