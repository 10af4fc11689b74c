// What the service returns: plain objects shaped for callers, not Prisma rows.
import type { Operation, OperationBatch } from "../generated/prisma/client";
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

/** Children not yet terminal, by state (counted, since the batch row keeps only terminal counters). */
export interface StatusCounts {
  pending: number;
  processing: number;
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
  lockedBy: string | null;
  lockedUntil: Date | null;
  idempotencyKey: string | null;
  /** When a cancel was asked for while it ran (it ends cancelled when its handler returns). */
  cancelRequestedAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
}

export function toBatchView(
  row: OperationBatch,
  active: StatusCounts = { pending: 0, processing: 0 },
): BatchView {
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
      pending: active.pending,
      processing: active.processing,
      completed: row.completedCount,
      failed: row.failedCount,
      cancelled: row.cancelledCount,
    },
    progress: { done, total: row.childCount, ratio: row.childCount === 0 ? 0 : done / row.childCount },
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
    startedAt: row.startedAt,
    finishedAt: row.finishedAt,
  };
}

export function toOperationView(row: Operation): OperationView {
  return {
    id: row.id,
    tenantId: row.tenantId,
    batchId: row.batchId,
    type: row.type,
    status: row.status,
    payload: row.payload,
    result: row.result,
    error: row.error,
    attempts: row.attempts,
    maxAttempts: row.maxAttempts,
    runAt: row.runAt,
    lockedBy: row.lockedBy,
    lockedUntil: row.lockedUntil,
    idempotencyKey: row.idempotencyKey,
    cancelRequestedAt: row.cancelRequestedAt,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
    startedAt: row.startedAt,
    finishedAt: row.finishedAt,
  };
}

// Rows returned by row_to_json (snake_case columns, timestamps as strings) in the model's shape.
const date = (value: unknown) => (value == null ? null : new Date(value as string));

export function batchFromJson(row: Record<string, unknown>): OperationBatch {
  return {
    id: row.id as string,
    tenantId: row.tenant_id as string,
    type: row.type as string,
    status: row.status as OperationBatch["status"],
    failurePolicy: row.failure_policy as OperationBatch["failurePolicy"],
    childCount: row.child_count as number,
    completedCount: row.completed_count as number,
    failedCount: row.failed_count as number,
    cancelledCount: row.cancelled_count as number,
    metadata: row.metadata as OperationBatch["metadata"],
    idempotencyKey: row.idempotency_key as string | null,
    error: row.error as OperationBatch["error"],
    createdAt: date(row.created_at)!,
    updatedAt: date(row.updated_at)!,
    startedAt: date(row.started_at),
    finishedAt: date(row.finished_at),
  };
}

export function operationFromJson(row: Record<string, unknown>): Operation {
  return {
    id: row.id as string,
    tenantId: row.tenant_id as string,
    batchId: row.batch_id as string | null,
    type: row.type as string,
    status: row.status as Operation["status"],
    payload: row.payload as Operation["payload"],
    result: row.result as Operation["result"],
    error: row.error as Operation["error"],
    attempts: row.attempts as number,
    maxAttempts: row.max_attempts as number,
    runAt: date(row.run_at)!,
    lockedBy: row.locked_by as string | null,
    lockedUntil: date(row.locked_until),
    createdAt: date(row.created_at)!,
    updatedAt: date(row.updated_at)!,
    startedAt: date(row.started_at),
    finishedAt: date(row.finished_at),
    idempotencyKey: row.idempotency_key as string | null,
    cancelRequestedAt: date(row.cancel_requested_at),
  };
}
