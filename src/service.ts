// The service an application calls: submit batches and operations atomically, read them back,
// and dispatch their side effects after commit.
import type { BackoffPolicy } from "./domain/backoff";
import type { SplitRule } from "./domain/split";
import type { FailurePolicy, OperationStatus } from "./domain/status";
import {
  ConflictError,
  IdempotencyConflictError,
  NotFoundError,
  OperationsError,
  ValidationError,
} from "./errors";
import { syncBackend } from "./execution/backends";
import { DEFAULT_REAPER_OPTIONS, Reaper, type ReaperOptions } from "./execution/reaper";
import type { ExecutionConfig } from "./execution/runner";
import { Worker, type WorkerOptions } from "./execution/worker";
import { isTerminal } from "./domain/status";
import { prometheusText, readQueueStats, type QueueStats } from "./metrics";
import type { Handlers } from "./execution/handlers";
import { consoleLogger, type Logger } from "./logger";
import type { BatchItemInput, OperationTypes, PayloadInput } from "./operation-types";
import {
  DEFAULT_OUTBOX_POLICY,
  OutboxDispatcher,
  type DispatchReport,
  type OutboxPolicy,
} from "./outbox/dispatcher";
import { TOPICS, type EventSubscriber } from "./outbox/events";
import { DEFAULT_RELAY_OPTIONS, OutboxRelay, type RelayOptions } from "./outbox/relay";
import * as repo from "./store/repository";
import type { Db, OperationsPrismaClient, TransactionClient } from "./store/repository";
import type { OutboxRow } from "./store/sql";
import { toBatchView, toOperationView, type BatchView, type OperationView } from "./store/views";
import {
  listOperationsSchema,
  parseId,
  parseInput,
  submitBatchSchema,
  submitOperationSchema,
  tenantIdSchema,
} from "./submit/input";
import { DEFAULT_LIMITS, planBatch, planOperation, type BatchPlan, type SubmitLimits } from "./submit/plan";

/** Where the work goes after a submit commits. */
export type TaskBackendOption<T extends OperationTypes> =
  /** Workers claim it; the submit's commit wakes them (NOTIFY). The default. */
  | "worker"
  /** The submitting process runs every handler inline right after commit (tests, development). */
  | { sync: Handlers<T> };

/**
 * Named points of a submit, for fault injection in tests: before and after its one statement.
 * Inside a caller's transaction `after-insert` comes before the commit; on its own, after it.
 */
export type SubmitBoundary = "before-insert" | "after-insert";

export interface OperationsOptions<T extends OperationTypes> {
  /** A Prisma 7 client with the PostgreSQL driver adapter, from a schema holding the module's models. */
  prisma: OperationsPrismaClient;
  /** Operation types by name, each from `defineOperationType`. */
  types: T;
  /** Default `"worker"`. */
  backend?: TaskBackendOption<T>;
  /** Receive every committed event (`batch.submitted`, `operation.completed`, …), at least once. */
  subscribers?: readonly EventSubscriber[];
  /** Size limits checked before any write; see {@link SubmitLimits} for defaults. */
  limits?: Partial<SubmitLimits>;
  /** Delivery attempts, backoff and inline lease of outbox events. */
  outbox?: Partial<OutboxPolicy>;
  /** Backoff between attempts of a failing operation. Default 1 s doubling to 1 h, half jitter. */
  retryBackoff?: BackoffPolicy;
  /** Limits of the interactive transactions `transaction()` opens. Default 30 s / 5 s. */
  transaction?: { timeoutMs?: number; maxWaitMs?: number };
  /** Default: warnings and errors to the console. */
  logger?: Logger;
  /**
   * Called at named points of a submit (see {@link SubmitBoundary}); a throw there aborts the
   * submit. For tests that recreate crash windows, not for production use.
   */
  onSubmitBoundary?: (boundary: SubmitBoundary, db: Db) => void | Promise<void>;
}

/** Input of {@link OperationsService.submitBatch}. */
export interface SubmitBatchInput<T extends OperationTypes, K extends keyof T & string> {
  tenantId: string;
  type: K;
  /** Validated with the type's batch item schema (or its payload schema when it has no batch config). */
  items: BatchItemInput<T[K]>[];
  /** How items are grouped into children; default the type's rule, else one item per child. */
  split?: SplitRule;
  /** A repeated submit with the same tenant and key returns the first batch instead of a new one. */
  idempotencyKey?: string;
  /** Any JSON, stored on the batch. */
  metadata?: unknown;
  /** Default `wait_all`. */
  failurePolicy?: FailurePolicy;
  /** Attempts per child; default the type's. */
  maxAttempts?: number;
  /** Children are not claimed before this time (a Date or an ISO 8601 string). Default: now. */
  runAt?: Date | string;
}

/** Input of {@link OperationsService.submitOperation}. */
export interface SubmitOperationInput<T extends OperationTypes, K extends keyof T & string> {
  tenantId: string;
  type: K;
  payload: PayloadInput<T[K]>;
  idempotencyKey?: string;
  maxAttempts?: number;
  /** Not claimed before this time (a Date or an ISO 8601 string). Default: now. */
  runAt?: Date | string;
}

/** Whether the submit's events were handed to subscribers yet. */
export type DispatchStatus =
  /** Delivered right after commit. */
  | { status: "delivered" }
  /** Committed, but a subscriber failed: the relay delivers it later. The batch exists regardless. */
  | { status: "failed"; failures: DispatchReport["failed"] }
  /** Inside a caller's transaction: delivered after it commits (by `transaction()`, or the relay). */
  | { status: "after_commit" }
  /** Nothing to deliver: the idempotency key matched an earlier submit. */
  | { status: "none" };

export interface SubmitBatchResult {
  batch: BatchView;
  /** The children's ids, in the order of the items they hold. */
  operationIds: string[];
  /** False when the idempotency key returned an earlier batch. */
  created: boolean;
  dispatch: DispatchStatus;
}

export interface SubmitOperationResult {
  operation: OperationView;
  created: boolean;
  dispatch: DispatchStatus;
}

/** Input of {@link OperationsService.listOperations}. */
export interface ListOperationsInput {
  tenantId: string;
  status?: OperationStatus | OperationStatus[];
  type?: string;
  /** Only this batch's children. */
  batchId?: string;
  /** Include batches (parents) in the list, each as `kind: "batch"`. Default false. */
  includeBatches?: boolean;
  /** Page size, 1 to 500. Default 50. */
  limit?: number;
  /** `nextCursor` of the previous page. */
  cursor?: string;
}

export interface ListOperationsResult {
  items: repo.ListedItem[];
  /** Pass as `cursor` for the next page; null on the last page. */
  nextCursor: string | null;
}

export interface CancelResult {
  /** `cancelled`: it was pending and is cancelled now. `cancel_requested`: it is running; its signal fired. */
  state: "cancelled" | "cancel_requested";
  operation: OperationView;
}

export interface SubmitOptions {
  /**
   * The caller's interactive transaction: the submit joins it, so the app's writes and the batch
   * commit or roll back together. Events are dispatched after commit when the transaction was
   * opened with `operations.transaction()`, otherwise by the relay.
   */
  tx?: TransactionClient;
}

interface Written<V> {
  view: V;
  created: boolean;
  events: OutboxRow[];
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

function isSerializationFailure(error: unknown): boolean {
  return typeof error === "object" && error !== null && (error as { code?: unknown }).code === "P2034";
}

export class OperationsService<T extends OperationTypes> {
  private readonly prisma: OperationsPrismaClient;
  private readonly limits: SubmitLimits;
  private readonly logger: Logger;
  readonly dispatcher: OutboxDispatcher;
  // Transactions opened by transaction(): the events written in each, dispatched after its commit.
  private readonly pendingDispatch = new WeakMap<TransactionClient, OutboxRow[]>();

  constructor(private readonly options: OperationsOptions<T>) {
    this.prisma = options.prisma;
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.logger = options.logger ?? consoleLogger;
    const policy = { ...DEFAULT_OUTBOX_POLICY, ...options.outbox };
    const backend = options.backend ?? "worker";
    // The app's subscribers first: they see `batch.submitted` before the sync backend's runs
    // produce `operation.completed`.
    const subscribers: EventSubscriber[] = [...(options.subscribers ?? [])];
    this.dispatcher = new OutboxDispatcher(this.prisma, subscribers, policy, this.logger);
    if (backend !== "worker") {
      subscribers.push(
        syncBackend(
          this.prisma,
          this.executionConfig(backend.sync),
          policy.inlineLeaseMs,
          policy.inlineLeaseMs,
          (rows) => this.dispatcher.dispatchCommitted(rows),
        ),
      );
    }
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

  /**
   * Submits a batch: the parent, all of its children and the `batch.submitted` event are written
   * by one statement — one transaction on its own, or part of the caller's — and commit together
   * or not at all. Input is validated, split and size-checked before anything is sent; after
   * commit the event is dispatched (and workers were woken by the commit itself).
   */
  async submitBatch<K extends keyof T & string>(
    input: SubmitBatchInput<T, K>,
    options: SubmitOptions = {},
  ): Promise<SubmitBatchResult> {
    const parsed = parseInput(submitBatchSchema, input);
    const plan = planBatch(parsed, this.options.types, this.limits);
    const written = await this.write(options.tx, (tx, delay) => this.writeBatch(tx, plan, delay));
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
    const written = await this.write(options.tx, async (tx, delay): Promise<Written<OperationView>> => {
      await this.boundary("before-insert", tx);
      const inserted = await repo
        .insertOperation(tx, plan, delay)
        .catch((error) => this.mapInsertError(error, plan.idempotencyKey));
      await this.boundary("after-insert", tx);
      if (inserted.row)
        return { view: toOperationView(inserted.row), created: true, events: inserted.events };
      // The idempotency key was taken (the insert did nothing): return the operation that has it.
      const existing = (await repo.readOperationByKey(tx, plan.tenantId, plan.idempotencyKey!))!;
      this.assertSameType(existing.type, plan.type, plan.idempotencyKey!);
      return { view: existing, created: false, events: [] };
    });
    return {
      operation: written.view,
      created: written.created,
      dispatch: await this.dispatchWritten(written, options.tx),
    };
  }

  /** A tenant's batch with its counts and progress. Another tenant's id is not found. */
  async getBatch(tenantId: string, batchId: string): Promise<BatchView> {
    const tenant = parseInput(tenantIdSchema, tenantId, ["tenantId"]);
    const id = parseId(batchId, ["batchId"]);
    const batch = await this.prisma.$transaction((tx) => repo.readBatch(tx, tenant, id), {
      isolationLevel: "RepeatableRead",
    });
    if (!batch) throw new NotFoundError("batch", id);
    return batch;
  }

  /** A tenant's operation. Another tenant's id is not found. */
  async getOperation(tenantId: string, operationId: string): Promise<OperationView> {
    const tenant = parseInput(tenantIdSchema, tenantId, ["tenantId"]);
    const id = parseId(operationId, ["operationId"]);
    const operation = await repo.readOperation(this.prisma, tenant, id);
    if (!operation) throw new NotFoundError("operation", id);
    return operation;
  }

  /** A tenant's operations (and batches, if asked), newest first, a page at a time. */
  async listOperations(input: ListOperationsInput): Promise<ListOperationsResult> {
    const parsed = parseInput(listOperationsSchema, input);
    const limit = parsed.limit ?? 50;
    const statuses =
      parsed.status === undefined ? undefined : ([] as OperationStatus[]).concat(parsed.status);
    const page = await repo.listItems(this.prisma, {
      tenantId: parsed.tenantId,
      statuses,
      type: parsed.type,
      batchId: parsed.batchId === undefined ? undefined : parseId(parsed.batchId, ["batchId"]),
      includeBatches: parsed.includeBatches ?? false,
      limit,
      beforeId: parsed.cursor === undefined ? undefined : decodeCursor(parsed.cursor),
    });
    const last = page.items[page.items.length - 1];
    return { items: page.items, nextCursor: page.hasMore && last ? encodeCursor(last.id) : null };
  }

  /**
   * Runs `fn` in an interactive transaction and, once it has committed, dispatches the events of
   * every submit made with `{ tx }` inside it. Nothing is dispatched if it rolls back.
   */
  async transaction<R>(
    fn: (tx: TransactionClient) => Promise<R>,
    options: {
      timeoutMs?: number;
      maxWaitMs?: number;
      isolationLevel?: "ReadCommitted" | "RepeatableRead" | "Serializable";
    } = {},
  ): Promise<R> {
    const written: OutboxRow[] = [];
    const result = await this.prisma.$transaction(
      async (tx) => {
        this.pendingDispatch.set(tx, written);
        return fn(tx);
      },
      {
        timeout: options.timeoutMs ?? this.options.transaction?.timeoutMs ?? 30_000,
        maxWait: options.maxWaitMs ?? this.options.transaction?.maxWaitMs ?? 5_000,
        isolationLevel: options.isolationLevel,
      },
    );
    await this.dispatcher.dispatchCommitted(written);
    return result;
  }

  /** Delivers events the caller committed in its own transaction (see {@link SubmitOptions.tx}). */
  dispatch(events: readonly OutboxRow[]): Promise<DispatchReport> {
    return this.dispatcher.dispatchCommitted(events);
  }

  /** A relay delivering what inline dispatch left behind, with this service's subscribers. */
  createRelay(options: Partial<RelayOptions> = {}): OutboxRelay {
    return new OutboxRelay(
      this.prisma,
      this.dispatcher,
      { ...DEFAULT_RELAY_OPTIONS, ...options },
      this.logger,
    );
  }

  /**
   * Cancels an operation: a pending one is cancelled at once; a running one has its handler's
   * AbortSignal fired and ends `cancelled` when the handler returns. A finished one is a conflict.
   */
  async cancelOperation(tenantId: string, operationId: string): Promise<CancelResult> {
    const tenant = parseInput(tenantIdSchema, tenantId, ["tenantId"]);
    const id = parseId(operationId, ["operationId"]);
    const target = { operationId: id, tenantId: tenant };
    const outcome = await this.retryingDeadlocks(() =>
      this.prisma.$transaction(async (tx) => {
        const row = await repo.lockOperation(tx, tenant, id);
        if (!row) throw new NotFoundError("operation", id);
        if (isTerminal(row.status)) {
          throw new ConflictError(`operation ${id} is already ${row.status}`, "operation_finished");
        }
        if (row.status === "processing") {
          await repo.requestCancel(tx, target);
          return { state: "cancel_requested" as const, events: [] };
        }
        const transition = await repo.cancelPending(tx, target, this.dispatcher.policy.inlineLeaseMs);
        return { state: "cancelled" as const, events: transition.events };
      }),
    );
    await this.dispatcher.dispatchCommitted(outcome.events);
    return { state: outcome.state, operation: await this.getOperation(tenant, id) };
  }

  /**
   * Cancels every child of a batch that has not finished (pending ones at once, running ones by
   * their AbortSignal). The batch ends `cancelled` — or `failed`/`completed` by what its children
   * did — once the last one is terminal. A finished batch is a conflict.
   */
  async cancelBatch(tenantId: string, batchId: string): Promise<BatchView> {
    const tenant = parseInput(tenantIdSchema, tenantId, ["tenantId"]);
    const id = parseId(batchId, ["batchId"]);
    const target = { batchId: id, tenantId: tenant };
    const before = await this.getBatch(tenant, id);
    if (isTerminal(before.status))
      throw new ConflictError(`batch ${id} is already ${before.status}`, "batch_finished");
    // Running children first, then pending ones: the same order workers lock rows in (child, then batch).
    const events = await this.retryingDeadlocks(() =>
      this.prisma.$transaction(async (tx) => {
        await repo.requestCancel(tx, target);
        return (await repo.cancelPending(tx, target, this.dispatcher.policy.inlineLeaseMs)).events;
      }),
    );
    await this.dispatcher.dispatchCommitted(events);
    return this.getBatch(tenant, id);
  }

  /**
   * Runs a failed or cancelled operation again with fresh attempts; its batch, if finished, is
   * processing again. Retrying a pending, running or completed operation is a conflict.
   */
  async retryOperation(tenantId: string, operationId: string): Promise<OperationView> {
    const tenant = parseInput(tenantIdSchema, tenantId, ["tenantId"]);
    const id = parseId(operationId, ["operationId"]);
    const events = await this.retryingDeadlocks(() =>
      this.prisma.$transaction(async (tx) => {
        const row = await repo.lockOperation(tx, tenant, id);
        if (!row) throw new NotFoundError("operation", id);
        if (row.status !== "failed" && row.status !== "cancelled") {
          throw new ConflictError(
            `operation ${id} is ${row.status}; only failed or cancelled ones can be retried`,
            "not_retryable",
          );
        }
        const transition = await repo.requeueFinished(
          tx,
          { operationId: id, tenantId: tenant },
          this.dispatcher.policy.inlineLeaseMs,
        );
        return transition.events;
      }),
    );
    await this.dispatcher.dispatchCommitted(events);
    return this.getOperation(tenant, id);
  }

  /**
   * Runs a batch's failed and cancelled children again with fresh attempts (completed ones stay
   * completed) and moves the batch back to `processing`. A batch with nothing to retry is a conflict.
   */
  async retryBatch(tenantId: string, batchId: string): Promise<BatchView> {
    const tenant = parseInput(tenantIdSchema, tenantId, ["tenantId"]);
    const id = parseId(batchId, ["batchId"]);
    const before = await this.getBatch(tenant, id);
    if (before.counts.failed + before.counts.cancelled === 0) {
      throw new ConflictError(`batch ${id} has no failed or cancelled children to retry`, "not_retryable");
    }
    const delay = this.dispatcher.policy.inlineLeaseMs;
    const events = await this.retryingDeadlocks(() =>
      this.prisma.$transaction(async (tx) => {
        const transition = await repo.requeueFinished(tx, { batchId: id, tenantId: tenant }, delay);
        if (transition.changed === 0) return [];
        const retried = await repo.insertOutboxEvents(
          tx,
          [
            {
              tenantId: tenant,
              topic: TOPICS.batchRetried,
              aggregateId: id,
              payload: { batchId: id, type: before.type, retried: transition.changed },
            },
          ],
          delay,
        );
        return [...transition.events, ...retried];
      }),
    );
    if (events.length === 0)
      throw new ConflictError(`batch ${id} has no failed or cancelled children to retry`, "not_retryable");
    await this.dispatcher.dispatchCommitted(events);
    return this.getBatch(tenant, id);
  }

  /** Queue depth as operators need it, per type and tenant; batches (parents) are never counted as work. */
  async queueStats(): Promise<QueueStats> {
    return readQueueStats(this.prisma);
  }

  /** {@link queueStats} as Prometheus text exposition (for a `/metrics` endpoint). */
  async metrics(): Promise<string> {
    return prometheusText(await this.queueStats());
  }

  /**
   * A worker running the given handlers. It delivers the events its outcomes write right after
   * each commit. By default it also runs a relay (for events left undelivered by a crash or a
   * failing subscriber) and a reaper; both are safe on every node.
   */
  createWorker(
    options: WorkerOptions & {
      handlers: Handlers<T>;
      relay?: Partial<RelayOptions> | false;
      reaper?: Partial<ReaperOptions> | false;
    },
  ): Worker {
    const relay = options.relay === false ? undefined : this.createRelay(options.relay);
    const reaper =
      options.reaper === false ? undefined : this.createReaper(options.reaper, () => relay?.wake());
    return new Worker(
      {
        db: this.prisma,
        execution: this.executionConfig(options.handlers),
        logger: this.logger,
        dispatch: (events) => this.dispatcher.dispatchCommitted(events),
        eventDelayMs: this.dispatcher.policy.inlineLeaseMs,
        companions: [relay, reaper].filter((companion) => companion !== undefined),
      },
      options,
    );
  }

  /** A reaper: expired leases and stuck batches, continuously; safe to run on every node. */
  createReaper(
    options: Partial<ReaperOptions> = {},
    onEvents: (events: OutboxRow[]) => void = () => undefined,
  ): Reaper {
    return new Reaper(this.prisma, { ...DEFAULT_REAPER_OPTIONS, ...options }, this.logger, onEvents);
  }

  // --- internals ----------------------------------------------------------------------------------

  /** Runs `fn` again when PostgreSQL chose it as a deadlock victim (P2034), up to 3 times. */
  private async retryingDeadlocks<R>(fn: () => Promise<R>): Promise<R> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (error) {
        const code = (error as { code?: unknown } | null)?.code;
        if (code !== "P2034" || attempt >= 3) throw error;
      }
    }
  }

  /**
   * Runs `work` (one statement) in the caller's transaction, or on its own. `eventDelayMs` tells
   * the writer how long to keep its events from the relay: the inline lease when this process will
   * dispatch them after commit, zero when only the relay will.
   */
  private async write<V>(
    tx: TransactionClient | undefined,
    work: (db: Db, eventDelayMs: number) => Promise<Written<V>>,
  ): Promise<Written<V>> {
    if (!tx) {
      // The write is one statement, so on its own it is one transaction: no BEGIN/COMMIT needed.
      return work(this.prisma, this.dispatcher.policy.inlineLeaseMs);
    }
    const collector = this.pendingDispatch.get(tx);
    const written = await work(tx, collector ? this.dispatcher.policy.inlineLeaseMs : 0);
    collector?.push(...written.events);
    return written;
  }

  private async dispatchWritten(
    written: Written<unknown>,
    tx: TransactionClient | undefined,
  ): Promise<DispatchStatus> {
    if (!written.created) return { status: "none" };
    if (tx) return { status: "after_commit" };
    const report = await this.dispatcher.dispatchCommitted(written.events);
    return report.failed.length ? { status: "failed", failures: report.failed } : { status: "delivered" };
  }

  private async writeBatch(
    tx: Db,
    plan: BatchPlan,
    eventDelayMs: number,
  ): Promise<Written<{ batch: BatchView; operationIds: string[] }>> {
    await this.boundary("before-insert", tx);
    const inserted = await repo
      .insertBatch(tx, plan, eventDelayMs)
      .catch((error) => this.mapInsertError(error, plan.idempotencyKey));
    await this.boundary("after-insert", tx);
    if (inserted.row) {
      const batch = toBatchView(inserted.row, { pending: plan.children.length, processing: 0 });
      return {
        view: { batch, operationIds: plan.children.map((child) => child.id) },
        created: true,
        events: inserted.events,
      };
    }
    // The idempotency key was taken (the insert did nothing): return the batch that has it.
    const existing = (await repo.findBatchByKey(tx, plan.tenantId, plan.idempotencyKey!))!;
    this.assertSameType(existing.type, plan.type, plan.idempotencyKey!);
    const batch = (await repo.readBatch(tx, plan.tenantId, existing.id))!;
    return {
      view: { batch, operationIds: await repo.childIds(tx, existing.id) },
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
    if (idempotencyKey && isSerializationFailure(error)) throw new IdempotencyConflictError(idempotencyKey);
    throw error;
  }

  private async boundary(name: SubmitBoundary, db: Db): Promise<void> {
    await this.options.onSubmitBoundary?.(name, db);
  }
}

/** Creates the service. One per process (per PrismaClient) is the intended use. */
export function createOperations<T extends OperationTypes>(
  options: OperationsOptions<T>,
): OperationsService<T> {
  if (!options.prisma) throw new OperationsError("invalid_options", "createOperations: `prisma` is required");
  return new OperationsService(options);
}
