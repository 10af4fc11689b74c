import type { OperationType, OperationTypes, Payload } from "../operation-types";
import type { z } from "zod";

/** What a handler knows about the operation it runs. */
export interface HandlerContext {
  operationId: string;
  batchId: string | null;
  tenantId: string;
  type: string;
  /** 1 on the first attempt. */
  attempt: number;
  maxAttempts: number;
  /** Aborted when the operation is cancelled or the worker shuts down past its grace period. */
  signal: AbortSignal;
}

/** Runs one operation; what it returns (JSON) is stored as the operation's result. */
export type OperationHandler<T extends OperationType<z.ZodType, z.ZodType | undefined>> = (
  payload: Payload<T>,
  context: HandlerContext,
) => unknown;

/** A handler per operation type, typed from the type's payload schema. */
export type Handlers<T extends OperationTypes> = { [K in keyof T]?: OperationHandler<T[K]> };

/** Thrown by a handler: the operation fails at once, whatever attempts remain. */
export class NonRetryableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "NonRetryableError";
  }
}
