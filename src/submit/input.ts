// The shape of every service input, as zod schemas: the first thing each method does is parse its
// input here, so bad input is refused with paths before any query runs.
import { z } from "zod";
import { InvalidIdError, ValidationError, type InputIssue } from "../errors";
import { isUuid } from "../domain/ids";
import { FAILURE_POLICIES, OPERATION_STATUSES } from "../domain/status";

const noNul = (value: string) => !value.includes("\u0000");

/** A tenant id: what scopes every row and every query. */
export const tenantIdSchema = z
  .string()
  .min(1, "tenantId must not be empty")
  .max(255)
  .refine(noNul, "tenantId must not contain NUL characters");

const typeNameSchema = z.string().min(1, "type must not be empty").max(255);

const idempotencyKeySchema = z
  .string()
  .min(1, "idempotencyKey must not be empty")
  .max(255)
  .refine(noNul, "idempotencyKey must not contain NUL characters");

const splitRuleSchema = z
  .object({
    maxItems: z.number().int().min(1).optional(),
    maxWeight: z.number().positive().refine(Number.isFinite, "maxWeight must be finite").optional(),
  })
  .strict();

const maxAttemptsSchema = z.number().int().min(1).max(1000);

// A Date, or an ISO 8601 timestamp with its offset (what a JSON body carries).
const runAtSchema = z
  .union([z.date(), z.iso.datetime({ offset: true })])
  .transform((value) => new Date(value))
  .refine((date) => !Number.isNaN(date.getTime()), "runAt must be a valid date");

export const submitBatchSchema = z
  .object({
    tenantId: tenantIdSchema,
    type: typeNameSchema,
    items: z.array(z.unknown()),
    split: splitRuleSchema.optional(),
    idempotencyKey: idempotencyKeySchema.optional(),
    metadata: z.unknown().optional(),
    failurePolicy: z.enum(FAILURE_POLICIES).optional(),
    maxAttempts: maxAttemptsSchema.optional(),
    runAt: runAtSchema.optional(),
  })
  .strict();

export const submitOperationSchema = z
  .object({
    tenantId: tenantIdSchema,
    type: typeNameSchema,
    payload: z.unknown(),
    idempotencyKey: idempotencyKeySchema.optional(),
    maxAttempts: maxAttemptsSchema.optional(),
    runAt: runAtSchema.optional(),
  })
  .strict();

const statusFilterSchema = z.union([z.enum(OPERATION_STATUSES), z.array(z.enum(OPERATION_STATUSES)).min(1)]);

export const listOperationsSchema = z
  .object({
    tenantId: tenantIdSchema,
    status: statusFilterSchema.optional(),
    type: typeNameSchema.optional(),
    batchId: z.unknown().optional(), // checked by parseId, which raises InvalidIdError
    includeBatches: z.boolean().optional(),
    limit: z.number().int().min(1).max(500).optional(),
    cursor: z.string().max(200).optional(),
  })
  .strict();

/** zod's issues in this module's shape. */
export function toInputIssues(error: z.ZodError, prefix: (string | number)[] = []): InputIssue[] {
  return error.issues.map((issue) => ({
    path: [...prefix, ...issue.path.map((part) => (typeof part === "symbol" ? String(part) : part))],
    message: issue.message,
    code: issue.code,
  }));
}

/** Parses `input` with `schema` or throws a ValidationError listing every issue with its path. */
export function parseInput<S extends z.ZodType>(
  schema: S,
  input: unknown,
  prefix: (string | number)[] = [],
): z.output<S> {
  const parsed = schema.safeParse(input);
  if (!parsed.success) throw new ValidationError(toInputIssues(parsed.error, prefix));
  return parsed.data;
}

/** Refuses anything but a UUID, before it reaches a query (a uuid column would reject it anyway). */
export function parseId(value: unknown, path: (string | number)[]): string {
  if (typeof value !== "string" || !isUuid(value)) throw new InvalidIdError(path, value);
  return value.toLowerCase();
}
