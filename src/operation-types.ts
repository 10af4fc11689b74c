import { z } from "zod";
import type { BackoffPolicy } from "./domain/backoff";
import type { SplitRule } from "./domain/split";
import { OperationsError } from "./errors";

// An operation type is registered once with a zod schema for its payload; every payload type in
// the API (submit input, handler argument) is inferred from that schema.

/** How a type's batches are built: items are validated, split into chunks, each chunk one child. */
export interface BatchConfig<I extends z.ZodType, P extends z.ZodType> {
  /** Schema of one submitted item. */
  item: I;
  /** Builds a child's payload from its chunk of items; the result is validated against `payload`. */
  toPayload: (items: z.output<I>[], child: { index: number }) => z.input<P>;
  /** An item's weight for `SplitRule.maxWeight` (e.g. a document's tokens). Default: 1. */
  weigh?: (item: z.output<I>) => number;
  /** Split rule used when a submit gives none. Default: one item per child. */
  split?: SplitRule;
}

/** A registered operation type. Create it with {@link defineOperationType}. */
export interface OperationType<P extends z.ZodType = z.ZodType, I extends z.ZodType | undefined = undefined> {
  readonly payload: P;
  readonly batch: I extends z.ZodType ? BatchConfig<I, P> : undefined;
  /** Attempts before an operation of this type fails for good. Default 3. */
  readonly maxAttempts: number;
  /** Delay between attempts; default the service's `retryBackoff`. */
  readonly retryBackoff?: BackoffPolicy;
  /** A handler running longer is aborted and its attempt fails (retryably). Default: no limit. */
  readonly timeoutMs?: number;
  /** How many may run at once, across every worker process. Default: no limit. */
  readonly concurrency?: ConcurrencyLimits;
}

/**
 * Running limits of a type, enforced across every worker process: claims of a limited type are
 * serialized (a transaction-scoped advisory lock per type) and count what runs before taking more.
 * A reaped lease frees its slot. The sync backend runs inline and ignores them.
 */
export interface ConcurrencyLimits {
  /** At most this many of the type running at once, all tenants together. */
  total?: number;
  /** At most this many of the type running at once for one tenant. */
  perTenant?: number;
}

/** Options every operation type takes, with or without batch config. */
interface TypeOptions {
  maxAttempts?: number;
  retryBackoff?: BackoffPolicy;
  timeoutMs?: number;
  concurrency?: ConcurrencyLimits;
}

export const DEFAULT_MAX_ATTEMPTS = 3;

/** The operation-type definition is unusable (raised at start-up, not per request). */
export class InvalidOperationTypeError extends OperationsError {
  constructor(message: string) {
    super("invalid_operation_type", message);
  }
}

function assertJsonSchema(schema: z.ZodType, what: string): void {
  try {
    z.toJSONSchema(schema, { io: "output", unrepresentable: "throw" });
  } catch (error) {
    // Payloads are stored as jsonb and parsed again by the worker: a schema must describe JSON.
    throw new InvalidOperationTypeError(
      `${what} must describe plain JSON (no Date, bigint, Map, transform or custom types): ${(error as Error).message}`,
    );
  }
}

function assertMaxAttempts(maxAttempts: number): void {
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
    throw new InvalidOperationTypeError(`maxAttempts must be an integer >= 1, got ${maxAttempts}`);
  }
}

/**
 * Defines an operation type. Register it under a name in `createOperations({ types })`.
 *
 * @example
 * const sendEmail = defineOperationType({ payload: z.object({ to: z.email() }) });
 * const ingest = defineOperationType({
 *   payload: z.object({ documents: z.array(Doc) }),
 *   batch: { item: Doc, toPayload: (documents) => ({ documents }), weigh: (d) => d.tokens },
 * });
 */
export function defineOperationType<P extends z.ZodType, I extends z.ZodType>(
  definition: TypeOptions & { payload: P; batch: BatchConfig<I, P> },
): OperationType<P, I>;
export function defineOperationType<P extends z.ZodType>(
  definition: TypeOptions & { payload: P },
): OperationType<P, undefined>;
export function defineOperationType(
  definition: TypeOptions & { payload: z.ZodType; batch?: BatchConfig<z.ZodType, z.ZodType> },
): OperationType<z.ZodType, z.ZodType | undefined> {
  assertJsonSchema(definition.payload, "payload schema");
  if (definition.batch) assertJsonSchema(definition.batch.item, "batch item schema");
  const maxAttempts = definition.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  assertMaxAttempts(maxAttempts);
  if (definition.timeoutMs !== undefined && !(definition.timeoutMs > 0)) {
    throw new InvalidOperationTypeError(`timeoutMs must be > 0, got ${definition.timeoutMs}`);
  }
  for (const [name, limit] of Object.entries(definition.concurrency ?? {})) {
    if (limit !== undefined && !(Number.isInteger(limit) && limit >= 1)) {
      throw new InvalidOperationTypeError(`concurrency.${name} must be an integer >= 1, got ${limit}`);
    }
  }
  return Object.freeze({
    payload: definition.payload,
    batch: definition.batch,
    maxAttempts,
    retryBackoff: definition.retryBackoff,
    timeoutMs: definition.timeoutMs,
    concurrency: definition.concurrency,
  }) as never;
}

/** Operation types by name, as given to `createOperations`. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type OperationTypes = Record<string, OperationType<any, any>>;

/** What a submit accepts as the payload of an operation of type `T`. */
export type PayloadInput<T extends OperationType<z.ZodType, z.ZodType | undefined>> = z.input<T["payload"]>;

/** What a handler receives: the payload after validation. */
export type Payload<T extends OperationType<z.ZodType, z.ZodType | undefined>> = z.output<T["payload"]>;

/** What `submitBatch` accepts as one item: the batch item schema's input, or a payload when the type has no batch config. */
export type BatchItemInput<T> =
  T extends OperationType<infer P, infer I> ? (I extends z.ZodType ? z.input<I> : z.input<P>) : never;
