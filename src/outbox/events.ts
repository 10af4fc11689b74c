import type { OutboxRow } from "../store/sql";

/** Topics the module writes. */
export const TOPICS = {
  batchSubmitted: "batch.submitted",
  operationSubmitted: "operation.submitted",
  batchRetried: "batch.retried",
  operationRetried: "operation.retried",
  operationCompleted: "operation.completed",
  operationFailed: "operation.failed",
  operationCancelled: "operation.cancelled",
  batchCompleted: "batch.completed",
  batchFailed: "batch.failed",
  batchCancelled: "batch.cancelled",
} as const;

export type Topic = (typeof TOPICS)[keyof typeof TOPICS];

/**
 * One delivery of an outbox event. Delivery is at-least-once: the same `id` can arrive again
 * (after a crash, or when another subscriber of the event failed), so consumers de-duplicate on it.
 */
export interface DeliveredEvent {
  /** The outbox row's id: stable across redeliveries, increasing in commit-ish order. */
  id: string;
  tenantId: string;
  topic: string;
  /** The batch or operation the event is about. */
  aggregateId: string;
  payload: unknown;
  /** 1 for the first delivery attempt. */
  attempt: number;
  createdAt: Date;
}

/** Receives events after the transaction that wrote them has committed. */
export interface EventSubscriber {
  /** For logs and error messages. */
  name: string;
  /** Topics to receive; all topics when absent. */
  topics?: readonly string[];
  /** Throwing (or rejecting) marks the delivery failed; the event is delivered again later. */
  deliver(event: DeliveredEvent): Promise<void> | void;
}

export function toDeliveredEvent(row: OutboxRow, attempt: number): DeliveredEvent {
  return {
    id: row.id,
    tenantId: row.tenantId,
    topic: row.topic,
    aggregateId: row.aggregateId,
    payload: row.payload,
    attempt,
    createdAt: row.createdAt,
  };
}
