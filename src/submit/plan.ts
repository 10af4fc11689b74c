// Turns a validated submit into exactly the rows to write. Everything that can refuse an input
// happens here, before a transaction is opened: item and payload schemas, splitting, JSON and
// size checks. What comes out can only fail to write for database reasons.
import type { z } from "zod";
import { inspectJson, type JsonPath } from "../domain/json";
import { uuidv7 } from "../domain/ids";
import { InvalidWeightError, splitIntoChunks, type SplitRule } from "../domain/split";
import type { FailurePolicy } from "../domain/status";
import {
  BatchBuildError,
  EmptyBatchError,
  PayloadTooLargeError,
  UnknownOperationTypeError,
  ValidationError,
  type InputIssue,
} from "../errors";
import type { OperationType, OperationTypes } from "../operation-types";
import { toInputIssues } from "./input";

/** Limits on what a submit may write. Every one is checked before any write. */
export interface SubmitLimits {
  /** Largest payload of one operation, serialized as JSON (UTF-8 bytes). Default 1 MiB. */
  maxPayloadBytes: number;
  /** Largest batch metadata, serialized as JSON. Default 64 KiB. */
  maxMetadataBytes: number;
  /** Deepest nesting of a payload or metadata. Default 64. */
  maxJsonDepth: number;
  /** Most items one batch submit may carry. Default 100,000. */
  maxItemsPerBatch: number;
  /** Most children one batch may be split into. Default 10,000. */
  maxChildrenPerBatch: number;
}

export const DEFAULT_LIMITS: SubmitLimits = {
  maxPayloadBytes: 1024 * 1024,
  maxMetadataBytes: 64 * 1024,
  maxJsonDepth: 64,
  maxItemsPerBatch: 100_000,
  maxChildrenPerBatch: 10_000,
};

// Collecting every issue of a 100,000-item batch would cost more than it tells.
const MAX_REPORTED_ISSUES = 20;

/** A child as it is written: its payload validated and serialized once. */
export interface ChildPlan {
  id: string;
  payloadJson: string;
}

export interface BatchPlan {
  id: string;
  tenantId: string;
  type: string;
  failurePolicy: FailurePolicy;
  /** Serialized; undefined (no metadata) for an absent or null one. */
  metadataJson: string | undefined;
  idempotencyKey: string | undefined;
  maxAttempts: number;
  runAt: Date | undefined;
  children: ChildPlan[];
}

export interface OperationPlan {
  id: string;
  tenantId: string;
  type: string;
  payloadJson: string;
  idempotencyKey: string | undefined;
  maxAttempts: number;
  runAt: Date | undefined;
}

export interface BatchInput {
  tenantId: string;
  type: string;
  items: unknown[];
  split?: SplitRule;
  idempotencyKey?: string;
  metadata?: unknown;
  failurePolicy?: FailurePolicy;
  maxAttempts?: number;
  runAt?: Date;
}

export interface OperationInput {
  tenantId: string;
  type: string;
  payload: unknown;
  idempotencyKey?: string;
  maxAttempts?: number;
  runAt?: Date;
}

type AnyOperationType = OperationType<z.ZodType, z.ZodType | undefined>;

export function lookupType(types: OperationTypes, name: string): AnyOperationType {
  const type = Object.prototype.hasOwnProperty.call(types, name) ? types[name] : undefined;
  if (!type) throw new UnknownOperationTypeError(name, Object.keys(types));
  return type;
}

/** Checks a value bound for a jsonb column and returns it serialized, or throws with its path. */
function checkJson(value: unknown, path: JsonPath, maxBytes: number, limits: SubmitLimits): string {
  const inspection = inspectJson(value, { maxBytes, maxDepth: limits.maxJsonDepth });
  if (inspection.ok) return inspection.json;
  const { problem } = inspection;
  const at = [...path, ...problem.path];
  if (problem.kind === "too_large") throw new PayloadTooLargeError(at, problem.bytes, maxBytes);
  throw new ValidationError([{ path: at, code: "invalid_json", message: problem.message }]);
}

/** A payload: JSON within the payload limit, and not null (a row without a payload could never run). */
function checkPayload(value: unknown, path: JsonPath, limits: SubmitLimits): string {
  if (value === null)
    throw new ValidationError([{ path, code: "invalid_json", message: "a payload must not be null" }]);
  return checkJson(value, path, limits.maxPayloadBytes, limits);
}

/** Validates each value with `schema`; throws every issue found (up to a cap) with its path. */
function parseEach(schema: z.ZodType, values: readonly unknown[], prefix: string): unknown[] {
  const issues: InputIssue[] = [];
  const parsed = values.map((value, index) => {
    if (issues.length >= MAX_REPORTED_ISSUES) return undefined;
    const result = schema.safeParse(value);
    if (result.success) return result.data;
    issues.push(...toInputIssues(result.error, [prefix, index]));
    return undefined;
  });
  if (issues.length) throw new ValidationError(issues.slice(0, MAX_REPORTED_ISSUES));
  return parsed;
}

/** Builds the parent and children of a batch, or throws a typed error; writes nothing. */
export function planBatch(input: BatchInput, types: OperationTypes, limits: SubmitLimits): BatchPlan {
  const type = lookupType(types, input.type);
  if (input.items.length === 0) throw new EmptyBatchError();
  if (input.items.length > limits.maxItemsPerBatch) {
    throw new ValidationError([
      {
        path: ["items"],
        code: "too_many_items",
        message: `${input.items.length} items is over the limit of ${limits.maxItemsPerBatch} per batch`,
      },
    ]);
  }
  const batch = type.batch;
  const rule = input.split ?? batch?.split ?? {};
  if (!batch && (rule.maxWeight !== undefined || (rule.maxItems ?? 1) > 1)) {
    throw new ValidationError([
      {
        path: ["split"],
        code: "split_unsupported",
        message: `type "${input.type}" has no batch config, so each item is one child's payload and cannot be grouped`,
      },
    ]);
  }

  const items = parseEach(batch ? batch.item : type.payload, input.items, "items");
  const weigh = batch?.weigh;
  const weighItem = weigh
    ? (item: unknown, index: number) => {
        try {
          return weigh(item);
        } catch (error) {
          throw new BatchBuildError("weigh", index, error);
        }
      }
    : undefined;
  let chunks;
  try {
    chunks = splitIntoChunks(items, rule, weighItem);
  } catch (error) {
    if (error instanceof InvalidWeightError) {
      throw new ValidationError([
        { path: ["items", error.itemIndex], code: "invalid_weight", message: error.message },
      ]);
    }
    throw error;
  }
  if (chunks.length > limits.maxChildrenPerBatch) {
    throw new ValidationError([
      {
        path: ["items"],
        code: "too_many_children",
        message: `the split rule gives ${chunks.length} children, over the limit of ${limits.maxChildrenPerBatch}`,
      },
    ]);
  }

  const batchId = uuidv7(); // before the children's: a parent sorts before its children by id
  const children = chunks.map((chunk, index): ChildPlan => {
    if (!batch) {
      return { id: uuidv7(), payloadJson: checkPayload(chunk.items[0], ["items", chunk.firstIndex], limits) };
    }
    let built: unknown;
    try {
      built = batch.toPayload(chunk.items, { index });
    } catch (error) {
      throw new BatchBuildError("toPayload", index, error);
    }
    const payload = parseEach(type.payload, [built], "children")[0];
    return { id: uuidv7(), payloadJson: checkPayload(payload, ["children", index], limits) };
  });
  const metadataJson =
    input.metadata == null
      ? undefined
      : checkJson(input.metadata, ["metadata"], limits.maxMetadataBytes, limits);

  return {
    id: batchId,
    tenantId: input.tenantId,
    type: input.type,
    failurePolicy: input.failurePolicy ?? "wait_all",
    metadataJson,
    idempotencyKey: input.idempotencyKey,
    maxAttempts: input.maxAttempts ?? type.maxAttempts,
    runAt: input.runAt,
    children,
  };
}

/** Builds a standalone operation, or throws a typed error; writes nothing. */
export function planOperation(
  input: OperationInput,
  types: OperationTypes,
  limits: SubmitLimits,
): OperationPlan {
  const type = lookupType(types, input.type);
  const parsed = type.payload.safeParse(input.payload);
  if (!parsed.success) throw new ValidationError(toInputIssues(parsed.error, ["payload"]));
  return {
    id: uuidv7(),
    tenantId: input.tenantId,
    type: input.type,
    payloadJson: checkPayload(parsed.data, ["payload"], limits),
    idempotencyKey: input.idempotencyKey,
    maxAttempts: input.maxAttempts ?? type.maxAttempts,
    runAt: input.runAt,
  };
}
