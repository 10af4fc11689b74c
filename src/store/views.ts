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
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
    startedAt: row.startedAt,
    finishedAt: row.finishedAt,
  };
}
