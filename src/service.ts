// The service an application calls: submit batches and operations atomically, read them back,
// cancel and retry them, and have their side effects delivered after commit.
import * as control from "./control";
import type { CancelResult } from "./control";
import type { BackoffPolicy } from "./domain/backoff";
import { resolveRetention, type RetentionPolicy } from "./domain/retention";
import type { OperationStatus } from "./domain/status";
import { ConflictError, IdempotencyConflictError, OperationsError, ValidationError } from "./errors";
import { syncRunner } from "./execution/backends";
import { Pruner, PrunedTotals, type PrunedCounts, type PrunePass } from "./execution/pruner";
import { DEFAULT_REAPER_OPTIONS, Reaper, type ReaperOptions } from "./execution/reaper";
import type { ExecutionConfig } from "./execution/executor";
import type { Handlers } from "./execution/handlers";
import { Inspector } from "./inspection/inspector";
import type { TenantAccess } from "./inspection/views";
import { Worker, type WorkerOptions } from "./execution/worker";
import { consoleLogger, type Logger } from "./logger";
import { KnownSeries, prometheusText, readQueueStats, type QueueStats } from "./metrics";
import type { OperationTypes } from "./operation-types";
import { DEFAULT_OUTBOX_POLICY, OutboxDispatcher, type DispatchReport } from "./outbox/dispatcher";
import { DEFAULT_RELAY_OPTIONS, OutboxRelay, type RelayOptions } from "./outbox/relay";
import {
  interactive,
  type CheckedClient,
  type Db,
  type OperationsPrismaClient,
  type PrismaClientLike,
  type TransactionClientOf,
} from "./store/client";
import { isTransactionConflict, typedDatabaseError, withDatabase } from "./store/database-errors";
import { NO_INLINE, type DeadFilter, type Inline, type WrittenEvent } from "./store/statements/outbox";
import { Connection } from "./store/connection";
import type { Store } from "./store/store";
import type { BatchView, OperationView } from "./store/views";
import type {
  DispatchStatus,
  ListedItem,
  ListOperationsInput,
  ListOperationsResult,
  OperationsOptions,
  SubmitBatchInput,
  SubmitBatchResult,
  SubmitBoundary,
  SubmitOperationInput,
  SubmitOperationResult,
  SubmitOptions,
} from "./service-types";
import {
  listOperationsSchema,
  parseId,
  parseInput,
  submitBatchSchema,
  submitOperationSchema,
  tenantIdSchema,
} from "./submit/input";
import { DEFAULT_LIMITS, planBatch, planOperation, type BatchPlan, type SubmitLimits } from "./submit/plan";

export type { CancelResult };

interface Written<V> {
  view: V;
  created: boolean;
  events: WrittenEvent[];
}

const DEFAULT_RETRY_BACKOFF: BackoffPolicy = { baseMs: 1_000, maxMs: 60 * 60_000, jitter: 0.5 };

function encodeCursor(id: string): string {
  return Buffer.from(id, "utf8").toString("base64url");
}

function decodeCursor(cursor: string): string {
  const id = Buffer.from(cursor, "base64url").toString("utf8");
  try {
    return parseId(id, ["cursor"]);
  } catch {
    throw new ValidationError([
      { path: ["cursor"], code: "invalid_cursor", message: "cursor is not one this API returned" },
    ]);
  }
}

/**
 * The module's service, typed by your operation types `T` and your Prisma client `C` (so that
 * `ops.transaction(async (tx) => …)` hands you your own transaction client).
 */
export class OperationsService<
  T extends OperationTypes = OperationTypes,
  C extends PrismaClientLike = OperationsPrismaClient,
> {
  private readonly prisma: C;
  private readonly connection: Connection;
  private readonly store: Store;
  private readonly limits: SubmitLimits;
  private readonly logger: Logger;
  readonly dispatcher: OutboxDispatcher;
  private readonly runSync: ((events: readonly WrittenEvent[]) => Promise<void>) | undefined;
  private readonly knownSeries = new KnownSeries();
  private readonly retention: RetentionPolicy | null;
  private readonly prunedTotals = new PrunedTotals();
  private readiness: Promise<void> | undefined;
  // Transactions opened by transaction(): the events written in each, delivered after its commit.
  private readonly pendingDispatch = new WeakMap<object, WrittenEvent[]>();

  constructor(private readonly options: OperationsOptions<T, C>) {
    this.prisma = options.prisma;
    this.connection = new Connection(options);
    this.store = this.connection.store;
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.logger = options.logger ?? consoleLogger;
    this.retention = resolveRetention(options.retention);
    const policy = { ...DEFAULT_OUTBOX_POLICY, ...options.outbox };
    this.dispatcher = new OutboxDispatcher(this.store, options.subscribers ?? [], policy, this.logger);
    const backend = options.backend ?? "worker";
    this.runSync =
      backend === "worker"
        ? undefined
        : syncRunner(
            this.store,
            this.executionConfig(backend.sync),
            policy.inlineLeaseMs,
            () => this.dispatcher.inline,
            (events) => this.afterCommit(events),
            this.logger,
          );
  }

  private executionConfig(handlers: Handlers<T>): ExecutionConfig {
    return {
      types: this.options.types,
      handlers: handlers as Handlers<OperationTypes>,
      retryBackoff: this.options.retryBackoff ?? DEFAULT_RETRY_BACKOFF,
      maxResultBytes: this.limits.maxPayloadBytes,
      maxJsonDepth: this.limits.maxJsonDepth,
    };
  }

  /** Names of the registered operation types. */
  get typeNames(): string[] {
    return Object.keys(this.options.types);
  }

  /** The PostgreSQL schema of the module's tables (undefined: the search_path). */
  get schema(): string | undefined {
    return this.connection.schema;
  }

  /**
   * Checks that the module's tables are reachable and registers this process's subscribers, so
   * that events written from now on (by any process) are owed to them. Every write does this first,
   * once, and so does a worker's `start()` — which therefore fails fast, with a typed error
   * (`DatabaseUnavailableError`, `SchemaMissingError`), when the database or the tables are missing.
   * Call it at start-up to have it done early.
   */
  async ready(): Promise<void> {
    this.readiness ??= withDatabase("ready", async () => {
      await this.connection.probe();
      await this.dispatcher.ready();
    }).catch((error: unknown) => {
      this.readiness = undefined;
      throw error;
    });
    await this.readiness;
  }

  /**
   * Submits a batch: the parent, all of its children and the `batch.submitted` event are written
   * by one statement — one transaction on its own, or part of the caller's — and commit together
   * or not at all. Input is validated, split and size-checked before anything is sent; after
   * commit the event is delivered (and workers were woken by the commit itself).
   */
  async submitBatch<K extends keyof T & string>(
    input: SubmitBatchInput<T, K>,
    options: SubmitOptions = {},
  ): Promise<SubmitBatchResult> {
    const parsed = parseInput(submitBatchSchema, input);
    const plan = planBatch(parsed, this.options.types, this.limits);
    const written = await this.write("submitBatch", options.tx, (store, inline) =>
      this.writeBatch(store, plan, inline),
    );
    this.knownSeries.add(plan.type, plan.tenantId);
    return {
      batch: written.view.batch,
      operationIds: written.view.operationIds,
      created: written.created,
      dispatch: await this.dispatchWritten(written, options.tx),
    };
  }

  /** Submits one standalone operation and its `operation.submitted` event in one statement and transaction. */
  async submitOperation<K extends keyof T & string>(
    input: SubmitOperationInput<T, K>,
    options: SubmitOptions = {},
  ): Promise<SubmitOperationResult> {
    const parsed = parseInput(submitOperationSchema, input);
    const plan = planOperation(parsed, this.options.types, this.limits);
    const written = await this.write("submitOperation", options.tx, async (store, inline) => {
      await this.boundary("before-insert", store.db);
      const inserted = await store
        .insertOperation(plan, inline)
        .catch((error: unknown) => this.mapInsertError(error, plan.idempotencyKey));
      await this.boundary("after-insert", store.db);
      if (inserted.operation) return { view: inserted.operation, created: true, events: inserted.events };
      // The idempotency key was taken (the insert did nothing): return the operation that has it.
      const existing = (await store.operationByKey(plan.tenantId, plan.idempotencyKey!))!;
      this.assertSameType(existing.type, plan.type, plan.idempotencyKey!);
      return { view: existing, created: false, events: [] };
    });
    this.knownSeries.add(plan.type, plan.tenantId);
    return {
      operation: written.view,
      created: written.created,
      dispatch: await this.dispatchWritten(written, options.tx),
    };
  }

  /** A tenant's batch with its counts and progress. Another tenant's id is not found. */
  async getBatch(tenantId: string, batchId: string): Promise<BatchView> {
    const tenant = parseInput(tenantIdSchema, tenantId, ["tenantId"]);
    return control.readBatch(this.control, tenant, parseId(batchId, ["batchId"]));
  }

  /** A tenant's operation. Another tenant's id is not found. */
  async getOperation(tenantId: string, operationId: string): Promise<OperationView> {
    const tenant = parseInput(tenantIdSchema, tenantId, ["tenantId"]);
    return control.readOperation(this.control, tenant, parseId(operationId, ["operationId"]));
  }

  /** A tenant's operations (and batches, if asked), newest first, a page at a time. */
  async listOperations(input: ListOperationsInput): Promise<ListOperationsResult> {
    const parsed = parseInput(listOperationsSchema, input);
    const limit = parsed.limit ?? 50;
    const filter = {
      tenantId: parsed.tenantId,
      statuses: parsed.status === undefined ? undefined : ([] as OperationStatus[]).concat(parsed.status),
      type: parsed.type,
      batchId: parsed.batchId === undefined ? undefined : parseId(parsed.batchId, ["batchId"]),
      beforeId: parsed.cursor === undefined ? undefined : decodeCursor(parsed.cursor),
      limit: limit + 1,
    };
    const items = await withDatabase("listOperations", async (): Promise<ListedItem[]> => {
      const operations = (await this.store.listOperations(filter)).map((row): ListedItem => ({
        kind: "operation",
        ...row,
      }));
      if (!parsed.includeBatches || filter.batchId) return operations;
      // Ids of both are UUIDv7 from one generator, so one id cursor pages through both.
      const batches = (await this.store.listBatches(filter)).map((row): ListedItem => ({
        kind: "batch",
        ...row,
      }));
      return [...operations, ...batches].sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
    });
    const page = items.slice(0, limit);
    const last = page[page.length - 1];
    return { items: page, nextCursor: items.length > limit && last ? encodeCursor(last.id) : null };
  }

  /**
   * Runs `fn` in an interactive transaction and, once it has committed, delivers the events of
   * every submit (and runs the work, with the sync backend) made with `{ tx }` inside it. Nothing
   * is delivered if it rolls back. `tx` is your own client's transaction client: your models are on it.
   */
  async transaction<R>(
    fn: (tx: TransactionClientOf<C>) => Promise<R>,
    options: {
      timeoutMs?: number;
      maxWaitMs?: number;
      isolationLevel?: "ReadCommitted" | "RepeatableRead" | "Serializable";
    } = {},
  ): Promise<R> {
    await this.ready();
    const written: WrittenEvent[] = [];
    let callbackFailed = false;
    let result: R;
    try {
      result = await interactive(
        this.prisma,
        async (tx) => {
          this.pendingDispatch.set(tx, written);
          try {
            return await fn(tx as unknown as TransactionClientOf<C>);
          } catch (error) {
            callbackFailed = true;
            throw error;
          }
        },
        {
          timeout: options.timeoutMs ?? this.options.transaction?.timeoutMs ?? 30_000,
          maxWait: options.maxWaitMs ?? this.options.transaction?.maxWaitMs ?? 5_000,
          isolationLevel: options.isolationLevel,
        },
      );
    } catch (error) {
      // The callback's own errors are the caller's; what Prisma or the database threw around it is ours to type.
      throw callbackFailed ? error : typedDatabaseError(error, "transaction");
    }
    await this.afterCommit(written);
    return result;
  }

  /** A relay delivering what inline dispatch left behind, to this service's subscribers. */
  createRelay(options: Partial<RelayOptions> = {}): OutboxRelay {
    return new OutboxRelay(
      this.store,
      this.dispatcher,
      { ...DEFAULT_RELAY_OPTIONS, ...options },
      this.logger,
    );
  }

  /**
   * Cancels an operation: a pending one is cancelled at once; a running one has its handler's
   * AbortSignal fired and ends `cancelled` — unless its handler completes, in which case the work
   * is done and it is recorded `completed`. A finished one is a conflict.
   */
  async cancelOperation(tenantId: string, operationId: string): Promise<CancelResult> {
    const tenant = parseInput(tenantIdSchema, tenantId, ["tenantId"]);
    return this.acting(() =>
      control.cancelOperation(this.control, tenant, parseId(operationId, ["operationId"])),
    );
  }

  /**
   * Cancels every child of a batch that has not finished, in one statement (pending ones at once,
   * running ones by their AbortSignal). The batch ends `cancelled` — or `failed`/`completed` by what
   * its children did — once the last one is terminal. A finished batch is a conflict.
   */
  async cancelBatch(tenantId: string, batchId: string): Promise<BatchView> {
    const tenant = parseInput(tenantIdSchema, tenantId, ["tenantId"]);
    return this.acting(() => control.cancelBatch(this.control, tenant, parseId(batchId, ["batchId"])));
  }

  /**
   * Runs a failed or cancelled operation again with fresh attempts; its batch, if finished, is
   * processing again. Retrying a pending, running or completed operation is a conflict.
   */
  async retryOperation(tenantId: string, operationId: string): Promise<OperationView> {
    const tenant = parseInput(tenantIdSchema, tenantId, ["tenantId"]);
    return this.acting(() =>
      control.retryOperation(this.control, tenant, parseId(operationId, ["operationId"])),
    );
  }

  /**
   * Runs a batch's failed and cancelled children again with fresh attempts (completed ones stay
   * completed) and moves the batch back to `processing`. A batch with nothing to retry is a conflict.
   */
  async retryBatch(tenantId: string, batchId: string): Promise<BatchView> {
    const tenant = parseInput(tenantIdSchema, tenantId, ["tenantId"]);
    return this.acting(() => control.retryBatch(this.control, tenant, parseId(batchId, ["batchId"])));
  }

  /**
   * Hands dead deliveries back to the relays with a fresh budget of attempts: all of them, or those
   * of one subscriber, one tenant, or some events. Returns how many; one whose event retention
   * deletes at the same moment is neither revived nor counted.
   */
  async redeliverDead(filter: DeadFilter = {}): Promise<number> {
    return withDatabase("redeliverDead", () => this.store.redeliverDead(filter));
  }

  /**
   * Gives a registered subscriber deliveries of the events written before it was registered (all
   * still stored, or those since `since`) that match its topics. Returns how many.
   */
  async replayEvents(subscriber: string, options: { since?: Date } = {}): Promise<number> {
    return withDatabase("replayEvents", () => this.store.replayEvents(subscriber, options.since));
  }

  /**
   * Forgets a subscriber no process has any more, with every delivery still owed to it. Waits for
   * the writes under way that owe it something, and forgets what they wrote too; writes after it
   * owe it nothing. Run again for a name already gone, it forgets whatever is still owed to it.
   */
  async removeSubscriber(name: string): Promise<{ removed: boolean; deliveries: number }> {
    const result = await withDatabase("removeSubscriber", () => this.store.removeSubscriber(name));
    return { removed: result.removed > 0, deliveries: result.deliveries };
  }

  /** Queue depth as operators need it, per type and tenant; batches (parents) are never counted as work. */
  async queueStats(): Promise<QueueStats> {
    return withDatabase("queueStats", () => readQueueStats(this.store, this.options.types, this.knownSeries));
  }

  /**
   * {@link queueStats} as Prometheus text exposition (for a `/metrics` endpoint), with
   * `prisma_operations_pruned_total` (rows retention deleted in this process, by `what`).
   */
  async metrics(): Promise<string> {
    return prometheusText(await this.queueStats(), this.prunedTotals.snapshot());
  }

  /** Rows the reapers of this service (and {@link prune}) have deleted since it was created, by kind. */
  get pruned(): PrunedCounts {
    return this.prunedTotals.snapshot();
  }

  /**
   * Deletes expired history now, as a reaper does in the background: one pass, in bounded
   * statements; `more` says the pass stopped before the end (call again). Nothing when retention is off.
   */
  async prune(): Promise<PrunePass> {
    const pruner = this.createPruner();
    if (!pruner) return { pruned: { batches: 0, operations: 0, events: 0, workers: 0 }, more: false };
    return withDatabase("prune", () => pruner.runOnce());
  }

  /**
   * Read-only views for an operator who may see `tenants` (or `"*"` for all): queues with why their
   * rows wait, batches, operations, events and dead deliveries — what the dashboard shows.
   */
  inspect(tenants: TenantAccess, options: { stallAfterMs?: number } = {}): Inspector {
    const limits = Object.fromEntries(
      Object.entries(this.options.types).map(([name, type]) => [name, type.concurrency]),
    );
    return new Inspector(this.store, tenants, { typeNames: this.typeNames, limits, ...options });
  }

  /**
   * A worker running the given handlers. It delivers the events its outcomes write right after
   * each commit. By default it also runs a relay (for deliveries left behind by a crash, a failing
   * subscriber or another process) and a reaper; both are safe on every node.
   */
  createWorker(
    options: WorkerOptions & {
      handlers: Handlers<T>;
      /** The worker's relay is woken through the worker's own `listen`. */
      relay?: Partial<Omit<RelayOptions, "listen">> | false;
      reaper?: Partial<ReaperOptions> | false;
    },
  ): Worker {
    const relay = options.relay === false ? undefined : this.createRelay(options.relay);
    const reaper =
      options.reaper === false ? undefined : this.createReaper(options.reaper, () => relay?.wake());
    const listen = options.listen === undefined ? this.connection.listenConfig() : options.listen;
    return new Worker(
      {
        store: this.store,
        execution: this.executionConfig(options.handlers),
        logger: this.logger,
        inline: () => this.dispatcher.inline,
        ready: () => this.ready(),
        dispatch: (events) => this.dispatcher.dispatchCommitted(events),
        companions: [relay, reaper].filter((companion) => companion !== undefined),
        deliveriesDue: relay && ((subscriber) => relay.wake(subscriber)),
      },
      { ...options, listen },
    );
  }

  /**
   * A reaper: expired leases and stuck batches, continuously, and expired history under the
   * service's retention policy; safe to run on every node.
   */
  createReaper(
    options: Partial<ReaperOptions> = {},
    onEvents: (events: WrittenEvent[]) => void = () => undefined,
  ): Reaper {
    return new Reaper(
      this.store,
      { ...DEFAULT_REAPER_OPTIONS, ...options },
      this.logger,
      onEvents,
      this.createPruner(),
    );
  }

  // --- internals ----------------------------------------------------------------------------------

  private createPruner(): Pruner | undefined {
    return this.retention
      ? new Pruner(this.store, this.retention, this.prunedTotals, this.logger)
      : undefined;
  }

  private get control(): control.ControlContext {
    return {
      store: this.store,
      // With the limits `transaction()` has: Prisma's own (a 2 s wait for a connection) refused
      // retries racing each other on a busy pool as if the database were away.
      transaction: (fn) =>
        interactive(this.prisma, (tx) => fn(this.store.on(tx)), {
          timeout: this.options.transaction?.timeoutMs ?? 30_000,
          maxWait: this.options.transaction?.maxWaitMs ?? 5_000,
        }),
      inline: () => this.dispatcher.inline,
      afterCommit: (events) => this.afterCommit(events),
    };
  }

  private async acting<R>(action: () => Promise<R>): Promise<R> {
    await this.ready();
    return action();
  }

  /** What follows a commit of this process: inline delivery, and the sync backend's runs. */
  private async afterCommit(events: WrittenEvent[]): Promise<DispatchReport> {
    const report = await this.dispatcher.dispatchCommitted(events);
    await this.runSync?.(events);
    return report;
  }

  /**
   * Runs `work` (one statement) in the caller's transaction, or on its own. Its deliveries are held
   * for inline delivery when this process will deliver them after commit: always on its own, and in
   * a transaction opened by `transaction()`; inside any other transaction the relays deliver them.
   */
  private async write<V>(
    action: string,
    tx: Db | undefined,
    work: (store: Store, inline: Inline) => Promise<Written<V>>,
  ): Promise<Written<V>> {
    await this.ready();
    try {
      if (!tx) {
        // The write is one statement, so on its own it is one transaction: no BEGIN/COMMIT needed.
        return await work(this.store, this.dispatcher.inline);
      }
      const collector = this.pendingDispatch.get(tx);
      const written = await work(this.store.on(tx), collector ? this.dispatcher.inline : NO_INLINE);
      collector?.push(...written.events);
      return written;
    } catch (error) {
      throw typedDatabaseError(error, action);
    }
  }

  private async dispatchWritten(written: Written<unknown>, tx: Db | undefined): Promise<DispatchStatus> {
    if (!written.created) return { status: "none" };
    if (tx) return { status: "after_commit" };
    const report = await this.afterCommit(written.events);
    return report.failed.length ? { status: "failed", failures: report.failed } : { status: "delivered" };
  }

  private async writeBatch(
    store: Store,
    plan: BatchPlan,
    inline: Inline,
  ): Promise<Written<{ batch: BatchView; operationIds: string[] }>> {
    await this.boundary("before-insert", store.db);
    const inserted = await store
      .insertBatch(plan, inline)
      .catch((error: unknown) => this.mapInsertError(error, plan.idempotencyKey));
    await this.boundary("after-insert", store.db);
    if (inserted.batch) {
      return {
        view: { batch: inserted.batch, operationIds: plan.children.map((child) => child.id) },
        created: true,
        events: inserted.events,
      };
    }
    // The idempotency key was taken (the insert did nothing): return the batch that has it.
    const existing = (await store.batchByKey(plan.tenantId, plan.idempotencyKey!))!;
    this.assertSameType(existing.type, plan.type, plan.idempotencyKey!);
    return {
      view: { batch: existing, operationIds: await store.childIds(existing.id) },
      created: false,
      events: [],
    };
  }

  private assertSameType(existingType: string, requestedType: string, key: string): void {
    if (existingType !== requestedType) {
      throw new ConflictError(
        `idempotency key "${key}" was used for a "${existingType}" submit, not "${requestedType}"`,
        "idempotency_key_reused",
      );
    }
  }

  private mapInsertError(error: unknown, idempotencyKey: string | undefined): never {
    // Only at REPEATABLE READ or SERIALIZABLE (a caller's transaction): the winner of the key
    // committed after this transaction's snapshot, so the insert cannot just skip it.
    if (idempotencyKey && isTransactionConflict(error)) throw new IdempotencyConflictError(idempotencyKey);
    throw error;
  }

  private async boundary(name: SubmitBoundary, db: Db): Promise<void> {
    await this.options.onSubmitBoundary?.(name, db);
  }
}

/**
 * Creates the service. One per process (per PrismaClient) is the intended use. `prisma` is your
 * own client: it is refused at compile time, with a message saying what to do, when its schema
 * lacks the module's models.
 */
export function createOperations<T extends OperationTypes, C extends PrismaClientLike>(
  options: OperationsOptions<T, C> & { prisma: CheckedClient<C> },
): OperationsService<T, C> {
  if (!options.prisma) throw new OperationsError("invalid_options", "createOperations: `prisma` is required");
  return new OperationsService<T, C>(options);
}
