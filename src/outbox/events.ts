import type { OutboxEvent } from "../store/statements/outbox";

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
 * One delivery of an outbox event to one subscriber. Delivery is at-least-once: the same `id` can
 * arrive again after a crash or a lost claim, so consumers de-duplicate on it. Each subscriber has
 * its own delivery state: another subscriber's failure never makes this one receive it again.
 */
export interface DeliveredEvent {
  /** The outbox row's id: stable across redeliveries, increasing in commit-ish order. */
  id: string;
  tenantId: string;
  topic: string;
  /** The batch or operation the event is about. */
  aggregateId: string;
  payload: unknown;
  /** 1 for this subscriber's first delivery attempt. */
  attempt: number;
  createdAt: Date;
}

/**
 * Receives events after the transaction that wrote them has committed. Its `name` is registered in
 * the database by every process that has it: events written from then on, by any process, are
 * owed to it until one of those processes delivers them.
 */
export interface EventSubscriber {
  /** Identifies its delivery state across processes and restarts: keep it stable. Letters, digits, `._:@/-`. */
  name: string;
  /** Topics to receive; all topics when absent or empty. */
  topics?: readonly string[];
  /** Throwing (or rejecting) marks this delivery failed; it is tried again later, for this subscriber only. */
  deliver(event: DeliveredEvent): Promise<void> | void;
}

export function toDeliveredEvent(row: OutboxEvent, attempt: number): DeliveredEvent {
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
