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

/** A short message for any thrown value. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
