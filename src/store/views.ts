// What the service returns: plain objects shaped for callers, built from the rows the statements read.
import type { BatchStatus, FailurePolicy, OperationStatus } from "../domain/status";

/** How many children are in each state. */
export interface BatchCounts {
  total: number;
  pending: number;
  processing: number;
  completed: number;
  failed: number;
  cancelled: number;
}

export interface BatchProgress {
  /** Children in a terminal state (completed, failed or cancelled). */
  done: number;
  total: number;
  /** done / total, from 0 to 1. */
  ratio: number;
}

/** A batch as callers see it: the parent's state, its counts and its progress. */
export interface BatchView {
  id: string;
  tenantId: string;
  type: string;
  status: BatchStatus;
  failurePolicy: FailurePolicy;
  metadata: unknown;
  idempotencyKey: string | null;
  error: unknown;
  counts: BatchCounts;
  progress: BatchProgress;
  /** 1, then one more each time a retry re-opened the finished batch. */
  episode: number;
  createdAt: Date;
  updatedAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
}

/** An operation as callers see it. */
export interface OperationView {
  id: string;
  tenantId: string;
  batchId: string | null;
  type: string;
  status: OperationStatus;
  payload: unknown;
  result: unknown;
  error: unknown;
  attempts: number;
  maxAttempts: number;
  runAt: Date;
  /** The worker holding its lease while it runs. */
  lockedBy: string | null;
  lockedUntil: Date | null;
  idempotencyKey: string | null;
  /** When a cancel was asked for while it ran (it ends cancelled unless its handler completes). */
  cancelRequestedAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
}

/** A batch row as the reads return it (camelCase columns), with its running children counted. */
export interface BatchRow {
  id: string;
  tenantId: string;
  type: string;
  status: BatchStatus;
  failurePolicy: FailurePolicy;
  childCount: number;
  completedCount: number;
  failedCount: number;
  cancelledCount: number;
  episode: number;
  metadata: unknown;
  idempotencyKey: string | null;
  error: unknown;
  createdAt: Date;
  updatedAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  processing: number;
}

export function toBatchView(row: BatchRow): BatchView {
  const done = row.completedCount + row.failedCount + row.cancelledCount;
  return {
    id: row.id,
    tenantId: row.tenantId,
    type: row.type,
    status: row.status,
    failurePolicy: row.failurePolicy,
    metadata: row.metadata,
    idempotencyKey: row.idempotencyKey,
    error: row.error,
    counts: {
      total: row.childCount,
      // (never below 0, should counters and counted children come from different moments)
      pending: Math.max(0, row.childCount - done - row.processing),
      processing: row.processing,
      completed: row.completedCount,
      failed: row.failedCount,
      cancelled: row.cancelledCount,
    },
    progress: { done, total: row.childCount, ratio: done / row.childCount },
    episode: row.episode,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
    startedAt: row.startedAt,
    finishedAt: row.finishedAt,
  };
}

// Rows an insert returns through row_to_json: snake_case columns, timestamps as strings.
const date = (value: unknown) => (value == null ? null : new Date(value as string));

/** A batch just inserted (so none of its children runs yet). */
export function insertedBatchView(row: Record<string, unknown>): BatchView {
  return toBatchView({
    id: row.id as string,
    tenantId: row.tenant_id as string,
    type: row.type as string,
    status: row.status as BatchStatus,
    failurePolicy: row.failure_policy as FailurePolicy,
    childCount: row.child_count as number,
    completedCount: row.completed_count as number,
    failedCount: row.failed_count as number,
    cancelledCount: row.cancelled_count as number,
    episode: row.episode as number,
    metadata: row.metadata,
    idempotencyKey: row.idempotency_key as string | null,
    error: row.error,
    createdAt: date(row.created_at)!,
    updatedAt: date(row.updated_at)!,
    startedAt: date(row.started_at),
    finishedAt: date(row.finished_at),
    processing: 0,
  });
}

export function insertedOperationView(row: Record<string, unknown>): OperationView {
  return {
    id: row.id as string,
    tenantId: row.tenant_id as string,
    batchId: row.batch_id as string | null,
    type: row.type as string,
    status: row.status as OperationStatus,
    payload: row.payload,
    result: row.result,
    error: row.error,
    attempts: row.attempts as number,
    maxAttempts: row.max_attempts as number,
    runAt: date(row.run_at)!,
    lockedBy: row.locked_by as string | null,
    lockedUntil: date(row.locked_until),
    idempotencyKey: row.idempotency_key as string | null,
    cancelRequestedAt: date(row.cancel_requested_at),
    createdAt: date(row.created_at)!,
    updatedAt: date(row.updated_at)!,
    startedAt: date(row.started_at),
    finishedAt: date(row.finished_at),
  };
}
