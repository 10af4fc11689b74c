// The public API of prisma-operations. Everything an application needs is exported here by name.
export { createOperations, OperationsService } from "./service";
export type {
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
  TaskBackendOption,
} from "./service-types";
export type { CancelResult } from "./control";

export { defineOperationType, DEFAULT_MAX_ATTEMPTS, InvalidOperationTypeError } from "./operation-types";
export type {
  BatchConfig,
  BatchItemInput,
  OperationType,
  OperationTypes,
  Payload,
  PayloadInput,
} from "./operation-types";

export {
  BatchBuildError,
  ConcurrentUpdateError,
  ConflictError,
  DatabaseUnavailableError,
  EmptyBatchError,
  IdempotencyConflictError,
  InvalidIdError,
  NotFoundError,
  OperationsError,
  PayloadTooLargeError,
  SchemaMissingError,
  UnexpectedDatabaseError,
  UnknownOperationTypeError,
  ValidationError,
} from "./errors";
export type { InputIssue } from "./errors";

export {
  HandlerTimeoutError,
  LeaseLost,
  NonRetryableError,
  OperationCancelled,
  Snooze,
  snooze,
  WorkerShutdown,
} from "./execution/handlers";
export type { HandlerContext, Handlers, OperationHandler } from "./execution/handlers";
export { CANCEL_CHANNEL, OUTBOX_CHANNEL, WAKE_CHANNEL } from "./store/statements/shared";
export { Worker } from "./execution/worker";
export type { WorkerOptions, WorkerStats } from "./execution/worker";
export { DEFAULT_REAPER_OPTIONS, Reaper } from "./execution/reaper";
export type { ReaperOptions, ReaperPass } from "./execution/reaper";
export { DEFAULT_RETENTION } from "./domain/retention";
export type { RetentionOptions, TypeRetention } from "./domain/retention";
export type { PrunedCounts, PrunePass } from "./execution/pruner";
export { Inspector } from "./inspection/inspector";
export type {
  BatchFilter as InspectorBatchFilter,
  DeadFilter as InspectorDeadFilter,
} from "./inspection/inspector";
export type {
  BatchDetail,
  BatchSummary,
  OperationDetail,
  OperationSummary,
  Overview,
  Page,
  QueueView,
  TenantAccess,
  WorkerView,
} from "./inspection/views";
export type { WaitingCode, WaitingReason, WaitingSeverity } from "./domain/waiting";
export type { QueueStats, QueueStatsRow } from "./metrics";
export type { DeliveryStatsRow } from "./store/store";
export type { StoredError } from "./domain/retry";

export { TOPICS } from "./outbox/events";
export type { DeliveredEvent, EventSubscriber, Topic } from "./outbox/events";
export { DEFAULT_OUTBOX_POLICY, DeliveryError } from "./outbox/dispatcher";
export type { DispatchReport, OutboxPolicy } from "./outbox/dispatcher";
export { DEFAULT_RELAY_OPTIONS, OutboxRelay } from "./outbox/relay";
export {
  EVENT_ID_HEADER,
  SIGNATURE_HEADER,
  verifyWebhookSignature,
  webhookBody,
  webhookSubscriber,
} from "./outbox/transports/webhook";
export type { WebhookOptions } from "./outbox/transports/webhook";
export type { RelayOptions, RelayPass } from "./outbox/relay";

export { DEFAULT_LIMITS } from "./submit/plan";
export type { SubmitLimits } from "./submit/plan";
export type { SplitRule } from "./domain/split";
export type { BackoffPolicy } from "./domain/backoff";
export { batchOutcome, BATCH_STATUSES, FAILURE_POLICIES, OPERATION_STATUSES } from "./domain/status";
export type {
  BatchCounters,
  BatchStatus,
  FailurePolicy,
  OperationStatus,
  TerminalStatus,
} from "./domain/status";

export type { BatchCounts, BatchProgress, BatchView, OperationView } from "./store/views";
export type {
  CheckedClient,
  Db,
  ModuleModel,
  OperationsPrismaClient,
  PrismaClientLike,
  TransactionClient,
  TransactionClientOf,
} from "./store/client";
export type { DeadFilter, OutboxEvent, WrittenEvent } from "./store/statements/outbox";
export type { PgPool, PgQueryConfig } from "./store/pool";

export { applyMigrations, readMigrations, MigrationStateError } from "./store/migrations";
export type { Migration, MigrationReport, SqlConnection } from "./store/migrations";

export { consoleLogger, silentLogger } from "./logger";
export { preparedStatementNames } from "./prepared-statements";
export type { Logger } from "./logger";
