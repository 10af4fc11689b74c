// Every error this module throws on purpose is an OperationsError with a stable `code`, so an
// application can map them (HTTP status, retry or not) without parsing messages.

/** One problem with an input: where it is (a path into the input) and what is wrong. */
export interface InputIssue {
  path: (string | number)[];
  message: string;
  /** zod's issue code when zod found it, else one of this module's codes. */
  code: string;
}

/** Base class of every error the module raises deliberately. */
export class OperationsError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

function describeIssues(issues: readonly InputIssue[]): string {
  return issues
    .slice(0, 5)
    .map((issue) => `${issue.path.length ? issue.path.join(".") : "(input)"}: ${issue.message}`)
    .concat(issues.length > 5 ? [`… and ${issues.length - 5} more`] : [])
    .join("; ");
}

/** The input was refused before anything was written. `issues` says what and where. */
export class ValidationError extends OperationsError {
  constructor(
    readonly issues: readonly InputIssue[],
    code = "validation_failed",
  ) {
    super(code, `invalid input: ${describeIssues(issues)}`);
  }
}

/** The operation type is not registered with this service. */
export class UnknownOperationTypeError extends ValidationError {
  constructor(
    readonly type: string,
    readonly knownTypes: readonly string[],
    path: (string | number)[] = ["type"],
  ) {
    super(
      [
        {
          path,
          code: "unknown_operation_type",
          message: `unknown operation type "${type}"; registered: ${knownTypes.join(", ") || "(none)"}`,
        },
      ],
      "unknown_operation_type",
    );
  }
}

/** A batch needs at least one item. */
export class EmptyBatchError extends ValidationError {
  constructor() {
    super(
      [{ path: ["items"], code: "empty_batch", message: "a batch needs at least one item" }],
      "empty_batch",
    );
  }
}

/** A payload (or metadata) is over the configured size limit. */
export class PayloadTooLargeError extends ValidationError {
  constructor(
    path: (string | number)[],
    readonly bytes: number,
    readonly limitBytes: number,
  ) {
    super(
      [
        {
          path,
          code: "payload_too_large",
          message: `${bytes} bytes is over the limit of ${limitBytes} bytes`,
        },
      ],
      "payload_too_large",
    );
  }
}

/** An id that is not a UUID: it cannot name any row, so nothing is read or written. */
export class InvalidIdError extends ValidationError {
  constructor(path: (string | number)[], value: unknown) {
    super([{ path, code: "invalid_id", message: `${JSON.stringify(value)} is not a UUID` }], "invalid_id");
  }
}

/** No such batch or operation for this tenant (another tenant's rows are never revealed). */
export class NotFoundError extends OperationsError {
  constructor(
    readonly entity: "batch" | "operation",
    readonly id: string,
  ) {
    super("not_found", `${entity} ${id} not found`);
  }
}

/** The request conflicts with the row's current state (e.g. cancelling a finished operation). */
export class ConflictError extends OperationsError {
  constructor(message: string, code = "conflict") {
    super(code, message);
  }
}

/**
 * Two submits with one idempotency key raced inside a caller's transaction whose isolation level
 * kept the loser from seeing the winner. Retrying the caller's transaction returns the winner.
 */
export class IdempotencyConflictError extends ConflictError {
  constructor(readonly idempotencyKey: string) {
    super(
      `a concurrent submit with idempotency key "${idempotencyKey}" won; retry to get its result`,
      "idempotency_conflict",
    );
  }
}

/**
 * Concurrent changes to the same rows kept colliding (PostgreSQL chose this request as a deadlock
 * victim, or failed it on serialization) even after retries. Nothing was changed; try again.
 */
export class ConcurrentUpdateError extends ConflictError {
  constructor(
    readonly action: string,
    cause: unknown,
  ) {
    super(
      `${action}: concurrent changes to the same rows kept colliding; nothing was changed, try again`,
      "concurrent_update",
    );
    this.cause = cause;
  }
}

/**
 * The database could not be reached, or the connection was lost mid-request. For a read or a
 * cancel/retry, trying again is safe. For a submit the outcome may be unknown (the connection can
 * drop at commit): retry with the same idempotency key to get the batch if it was written.
 */
export class DatabaseUnavailableError extends OperationsError {
  constructor(
    readonly action: string,
    cause: unknown,
  ) {
    super("database_unavailable", `${action}: the database is unavailable (${lastLine(cause)})`, {
      cause,
    });
  }
}

/** The module's tables or functions are not in the database (or not in the configured schema). */
export class SchemaMissingError extends OperationsError {
  constructor(cause: unknown) {
    super(
      "schema_missing",
      "prisma-operations' tables or functions were not found, or are an older version's: apply its migrations (`npx prisma-operations init`, then " +
        "`prisma migrate deploy`), and if they live in another PostgreSQL schema, pass `schema` to createOperations " +
        `(${lastLine(cause)})`,
      { cause },
    );
  }
}

/** The database refused a statement for a reason this module does not expect: a defect, or a change made outside it. */
export class UnexpectedDatabaseError extends OperationsError {
  constructor(
    readonly action: string,
    cause: unknown,
  ) {
    super("database_error", `${action}: unexpected database error (${lastLine(cause)})`, {
      cause,
    });
  }
}

/**
 * The application's own batch code threw while a batch was being built — its `weigh` (for an
 * item) or its `toPayload` (for a child) — so nothing was written.
 */
export class BatchBuildError extends OperationsError {
  constructor(
    readonly stage: "weigh" | "toPayload",
    /** The item's index for `weigh`, the child's index for `toPayload`. */
    readonly index: number,
    cause: unknown,
  ) {
    const what = stage === "weigh" ? `weighing item ${index}` : `building the payload of child ${index}`;
    super("batch_build_failed", `${what} failed: ${errorMessage(cause)}`, { cause });
  }
}

/** The last non-empty line of an error's message (Prisma puts the database's words there). */
export function lastLine(error: unknown): string {
  return (
    errorMessage(error)
      .split("\n")
      .map((line) => line.trim())
      .filter(Boolean)
      .pop() ?? "no message"
  );
}

/** A short message for any thrown value. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
