// What the service takes and gives: its options, the inputs of its calls and their results. The
// service itself is in service.ts.
import type { BackoffPolicy } from "./domain/backoff";
import type { RetentionOptions } from "./domain/retention";
import type { SplitRule } from "./domain/split";
import type { FailurePolicy, OperationStatus } from "./domain/status";
import type { Handlers } from "./execution/handlers";
import type { Logger } from "./logger";
import type { BatchItemInput, OperationTypes, PayloadInput } from "./operation-types";
import type { DispatchReport, OutboxPolicy } from "./outbox/dispatcher";
import type { EventSubscriber } from "./outbox/events";
import type { Db, OperationsPrismaClient, PrismaClientLike } from "./store/client";
import type { PgPool } from "./store/pool";
import type { BatchView, OperationView } from "./store/views";
import type { SubmitLimits } from "./submit/plan";

/** Where the work goes after a submit commits. */
export type TaskBackendOption<T extends OperationTypes> =
  /** Workers claim it; the submit's commit wakes them (NOTIFY). The default. */
  | "worker"
  /**
   * The submitting process runs every handler inline right after commit (tests, development).
   * Only for submits and retries made through this service or `ops.transaction()`: work submitted
   * inside your own `$transaction` waits for a worker.
   */
  | { sync: Handlers<T> };

/**
 * Named points of a submit, for fault injection in tests: before and after its one statement.
 * Inside a caller's transaction `after-insert` comes before the commit; on its own, after it.
 */
export type SubmitBoundary = "before-insert" | "after-insert";

export interface OperationsOptions<
  T extends OperationTypes,
  C extends PrismaClientLike = OperationsPrismaClient,
> {
  /**
   * Your Prisma 7 client (PostgreSQL driver adapter), generated from a schema that contains the
   * module's models (`npx prisma-operations init` copies them in). Your own models are welcome.
   */
  prisma: C;
  /**
   * The `pg` pool your PrismaPg adapter is built on (`new PrismaPg(pool)`): the module then sends
   * its own statements to the pool directly instead of through the Prisma client — the same
   * connections, without Prisma's query pipeline around each statement, and without Prisma's query
   * compiler in a process that only runs workers. Statements inside your transactions (`{ tx }`,
   * `ops.transaction`) still go through their transaction client. A pool other than the one the
   * adapter is built on is checked by `ready()` to reach the same tables as `prisma`. Without it,
   * everything goes through `prisma`.
   */
  pool?: PgPool;
  /**
   * With `pool`: the module's hot-path statements (submits, claims, outcomes, heartbeats,
   * deliveries) are prepared once per connection. Default true; set false behind PgBouncer in
   * transaction mode before 1.21 (from 1.21 on, set its `max_prepared_statements`). Without
   * `pool`, pass `preparedStatementNames()` to your adapter instead.
   */
  preparedStatements?: boolean;
  /** Operation types by name, each from `defineOperationType`. */
  types: T;
  /**
   * The PostgreSQL schema holding the module's tables. Default: the `schema` your PrismaPg adapter
   * was given (`new PrismaPg(config, { schema })`), else the connection's search_path.
   */
  schema?: string;
  /** Default `"worker"`. */
  backend?: TaskBackendOption<T>;
  /**
   * Receive committed events (`batch.submitted`, `operation.completed`, …), at least once, each
   * with its own delivery state. Every process that has a subscriber registers it; events written
   * while it is registered are owed to it until a process that has it delivers them.
   */
  subscribers?: readonly EventSubscriber[];
  /** Size limits checked before any write; see {@link SubmitLimits} for defaults. */
  limits?: Partial<SubmitLimits>;
  /** Delivery attempts, backoff and inline lease of outbox deliveries. */
  outbox?: Partial<OutboxPolicy>;
  /** Backoff between attempts of a failing operation. Default 1 s doubling to 1 h, half jitter. */
  retryBackoff?: BackoffPolicy;
  /** Limits of the interactive transactions `transaction()` and the retries open. Default 30 s / 5 s. */
  transaction?: { timeoutMs?: number; maxWaitMs?: number };
  /** Default: warnings and errors to the console. */
  logger?: Logger;
  /**
   * How long finished history is kept; the reapers delete what has expired (see
   * {@link RetentionOptions} for the defaults: completed 7 days, failed or cancelled 30 days,
   * delivered events 24 hours, dead ones 30 days). `false` keeps everything.
   */
  retention?: RetentionOptions | false;
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

/** Whether the submit's events were handed to this process's subscribers yet. */
export type DispatchStatus =
  /** Delivered right after commit (or nothing of this process subscribes to them). */
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

/** One entry of {@link ListOperationsResult}. */
export type ListedItem = ({ kind: "operation" } & OperationView) | ({ kind: "batch" } & BatchView);

export interface ListOperationsResult {
  items: ListedItem[];
  /** Pass as `cursor` for the next page; null on the last page. */
  nextCursor: string | null;
}

export interface SubmitOptions {
  /**
   * The caller's interactive transaction: the submit joins it, so the app's writes and the batch
   * commit or roll back together. Events are delivered after commit when the transaction was
   * opened with `ops.transaction()`; inside your own `$transaction`, the relays deliver them.
   */
  tx?: Db;
}
