// Framework-neutral HTTP mapping of the module's errors, shared by the NestJS filter and the
// Next.js route handlers.
import {
  ConflictError,
  DatabaseUnavailableError,
  NotFoundError,
  OperationsError,
  ValidationError,
} from "../errors";

export interface HttpError {
  status: number;
  body: { error: string; message: string; issues?: unknown };
}

/**
 * Validation → 400 (with the zod issue paths), not found (or another tenant's) → 404, conflict
 * (including concurrent updates that kept colliding) → 409, database unavailable → 503; anything
 * else of the module's (a missing schema, an unexpected database error) → 500.
 */
export function toHttpError(error: OperationsError): HttpError {
  if (error instanceof ValidationError) {
    return { status: 400, body: { error: error.code, message: error.message, issues: error.issues } };
  }
  if (error instanceof NotFoundError)
    return { status: 404, body: { error: error.code, message: error.message } };
  if (error instanceof ConflictError)
    return { status: 409, body: { error: error.code, message: error.message } };
  if (error instanceof DatabaseUnavailableError)
    return { status: 503, body: { error: error.code, message: error.message } };
  return { status: 500, body: { error: error.code, message: error.message } };
}

/** The filters of `GET /operations`, from query-string values (strings) to `listOperations` input. */
export function listQueryFromSearchParams(
  tenantId: string,
  params: URLSearchParams | Record<string, string | undefined>,
) {
  const get = (key: string) =>
    params instanceof URLSearchParams ? (params.get(key) ?? undefined) : params[key];
  const status = get("status");
  const limit = get("limit");
  const includeBatches = get("includeBatches");
  return {
    tenantId,
    status: status === undefined ? undefined : (status.split(",") as never),
    type: get("type"),
    batchId: get("batchId"),
    includeBatches: includeBatches === undefined ? undefined : includeBatches === "true",
    limit: limit === undefined ? undefined : Number(limit),
    cursor: get("cursor"),
  };
}
