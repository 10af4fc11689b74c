// What an operator sees (the dashboard's JSON): queues, throughput, subscribers, workers, batches
// and operations, each unfinished one with the reason it waits. Plain data, JSON-ready.
import type { WaitingReason } from "../domain/waiting";
import type {
  BatchWaitingRow,
  DeadDeliveryRow,
  EventRow,
  OperationDetailRow,
  OperationSummaryRow,
  QueueRow,
  SubscriberRow,
  ThroughputRow,
} from "../store/statements/dashboard";
import type { BatchView } from "../store/views";

/** The tenants an operator may see: a list, or `"*"` for all. */
export type TenantAccess = readonly string[] | "*";

/** A queue (type and tenant) and, when its due rows wait, why. */
export interface QueueView extends QueueRow {
  reason: WaitingReason | null;
}

/** A worker from the registry. */
export interface WorkerView {
  id: string;
  hostname: string;
  pid: number;
  types: string[];
  concurrency: number;
  /** Operations it holds now; null for an operator restricted to some tenants (it is all tenants' load). */
  running: number | null;
  heartbeatMs: number;
  startedAt: Date;
  seenAt: Date;
  stoppedAt: Date | null;
  /** `live`: reported within three heartbeats; `stopped`: stopped gracefully; `gone`: neither. */
  state: "live" | "stopped" | "gone";
}

/** A batch with its counts, progress and, while in flight, why it is not finished. */
export interface BatchSummary extends BatchView {
  reason: WaitingReason | null;
}

/** An operation in a list (no payload or result), with why it waits. */
export interface OperationSummary extends OperationSummaryRow {
  reason: WaitingReason | null;
}

/** A page of a list: `nextCursor` is null on the last page. */
export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export interface Overview {
  /** The database's clock when this was read. */
  now: Date;
  queues: QueueView[];
  /** Operations finished in each of the last 60 minutes. */
  throughput: ThroughputRow[];
  subscribers: SubscriberRow[];
  workers: WorkerView[];
  /** The most recent batches. */
  recentBatches: BatchSummary[];
  /** Registered operation types (a type with no row yet still appears in filters). */
  types: string[];
}

export interface BatchDetail {
  now: Date;
  batch: BatchSummary;
  children: Page<OperationSummary>;
  /** Events about the batch itself, in order, each with every subscriber's delivery state. */
  events: EventRow[];
}

export interface OperationDetail {
  now: Date;
  operation: Omit<
    OperationDetailRow,
    "batchFailurePolicy" | "batchFailedCount" | "batchStatus" | "batchCancelledAt"
  >;
  reason: WaitingReason | null;
  batch: { id: string; status: BatchWaitingRow["status"] } | null;
  /** Events about the operation, in order, with their deliveries: its timeline. */
  events: EventRow[];
}

export type { DeadDeliveryRow, EventRow, SubscriberRow, ThroughputRow };
