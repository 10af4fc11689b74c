import type { z } from "zod";
import type { OperationType, OperationTypes, Payload } from "../operation-types";

export { HandlerTimeoutError, NonRetryableError, Snooze, snooze } from "../domain/retry";

/** What a handler knows about the operation it runs. */
export interface HandlerContext {
  operationId: string;
  batchId: string | null;
  tenantId: string;
  type: string;
  /** 1 on the first attempt. */
  attempt: number;
  maxAttempts: number;
  /**
   * Aborted when the operation is cancelled, its lease is lost, it runs past its type's
   * `timeoutMs`, or the worker shuts down past its grace period. `signal.reason` says which.
   */
  signal: AbortSignal;
}

/** Runs one operation; what it returns (JSON) is stored as the operation's result. */
export type OperationHandler<T extends OperationType<z.ZodType, z.ZodType | undefined>> = (
  payload: Payload<T>,
  context: HandlerContext,
) => unknown;

/** A handler per operation type, typed from the type's payload schema. */
export type Handlers<T extends OperationTypes> = { [K in keyof T]?: OperationHandler<T[K]> };

/** Why a handler's AbortSignal fired. */
export class OperationCancelled extends Error {
  constructor() {
    super("the operation was cancelled");
    this.name = "OperationCancelled";
  }
}

/**
 * The worker no longer holds the operation's lease, or cannot be sure it does: a heartbeat found
 * it gone, or none could extend it before the worker's own deadline for it (a margin before the
 * lease could run out). Another worker may run the operation: stop.
 */
export class LeaseLost extends Error {
  constructor(message = "the worker lost this operation's lease; another worker may run it") {
    super(message);
    this.name = "LeaseLost";
  }
}

export class WorkerShutdown extends Error {
  constructor() {
    super("the worker is shutting down");
    this.name = "WorkerShutdown";
  }
}
