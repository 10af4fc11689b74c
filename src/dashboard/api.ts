// The dashboard's JSON API: reads through the service's Inspector (scoped to the operator's
// tenants), actions through the service's own cancel, retry and redeliver (same rules, typed
// errors). Routes are below `api/`:
//
//   GET  session                      CSRF token, tenants, read-only
//   GET  overview[?type]              queues, throughput, subscribers, workers, recent batches
//   GET  batches[?tenant&type&status&cursor&limit]
//   GET  batches/:id[?status&cursor]  a batch, a page of its children, its events
//   GET  operations[?tenant&type&status&cursor]   standalone operations
//   GET  operations/:id               an operation, its events
//   GET  dead[?subscriber&tenant&cursor]          dead deliveries
//   POST batches/:id/cancel | batches/:id/retry | operations/:id/cancel | operations/:id/retry
//   POST dead/redeliver               { deliveries: [{ eventId, subscriber }] } or { subscriber, all: true }
import { OPERATION_STATUSES } from "../domain/status";
import { ValidationError } from "../errors";
import type { Inspector } from "../inspection/inspector";
import type { OperationTypes } from "../operation-types";
import type { OperationsService } from "../service";
import type { DashboardRequest } from "./http";
import type { DashboardGrant } from "./security";

export interface ApiContext {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  operations: OperationsService<OperationTypes, any>;
  inspector: Inspector;
  grant: DashboardGrant;
  readOnly: boolean;
  csrfToken: string;
  pollIntervalMs: number;
}

function invalid(path: string, message: string): ValidationError {
  return new ValidationError([{ path: [path], code: "invalid_query", message }]);
}

function text(query: URLSearchParams, name: string, max = 255): string | undefined {
  const value = query.get(name);
  if (value === null || value === "") return undefined;
  if (value.length > max || value.includes("\0")) throw invalid(name, `${name} is not a valid filter`);
  return value;
}

function statuses(query: URLSearchParams): string[] | undefined {
  const value = text(query, "status");
  if (value === undefined) return undefined;
  const list = value.split(",");
  for (const status of list) {
    if (!(OPERATION_STATUSES as readonly string[]).includes(status)) {
      throw invalid("status", `status must be among ${OPERATION_STATUSES.join(", ")}`);
    }
  }
  return list;
}

function limit(query: URLSearchParams): number | undefined {
  const value = text(query, "limit");
  return value === undefined ? undefined : Number(value);
}

/** The answer to a GET below `api/`, or undefined for an unknown route. */
export async function read(ctx: ApiContext, route: string[], query: URLSearchParams): Promise<unknown> {
  const { inspector } = ctx;
  const [resource, id, extra] = route;
  if (extra !== undefined) return undefined;
  switch (resource) {
    case "session":
      return id === undefined
        ? {
            csrfToken: ctx.csrfToken,
            tenants: ctx.grant.tenants,
            readOnly: ctx.readOnly,
            types: ctx.operations.typeNames,
            pollIntervalMs: ctx.pollIntervalMs,
          }
        : undefined;
    case "overview":
      return id === undefined ? inspector.overview({ type: text(query, "type") }) : undefined;
    case "batches":
      return id === undefined
        ? inspector.batches({
            tenantId: text(query, "tenant"),
            type: text(query, "type"),
            statuses: statuses(query),
            cursor: text(query, "cursor", 200),
            limit: limit(query),
          })
        : inspector.batch(id, {
            statuses: statuses(query),
            cursor: text(query, "cursor", 200),
            limit: limit(query),
          });
    case "operations":
      return id === undefined
        ? inspector.operations({
            tenantId: text(query, "tenant"),
            type: text(query, "type"),
            statuses: statuses(query),
            cursor: text(query, "cursor", 200),
            limit: limit(query),
          })
        : inspector.operation(id);
    case "dead":
      return id === undefined
        ? inspector.deadDeliveries({
            subscriber: text(query, "subscriber"),
            tenantId: text(query, "tenant"),
            cursor: text(query, "cursor", 300),
            limit: limit(query),
          })
        : undefined;
    default:
      return undefined;
  }
}

function parseBody(body: string): Record<string, unknown> {
  if (body.trim() === "") return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new ValidationError([{ path: [], code: "invalid_json", message: "the body is not JSON" }]);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new ValidationError([
      { path: [], code: "invalid_json", message: "the body must be a JSON object" },
    ]);
  }
  return parsed as Record<string, unknown>;
}

/** The answer to a POST below `api/`, or undefined for an unknown route. */
export async function act(ctx: ApiContext, route: string[], request: DashboardRequest): Promise<unknown> {
  const { operations, inspector } = ctx;
  const [resource, id, action, extra] = route;
  if (extra !== undefined) return undefined;
  if ((resource === "batches" || resource === "operations") && id !== undefined) {
    const kind = resource === "batches" ? "batch" : "operation";
    if (action !== "cancel" && action !== "retry") return undefined;
    const tenantId = await inspector.tenantOf(kind, id);
    if (kind === "batch") {
      const batch =
        action === "cancel"
          ? await operations.cancelBatch(tenantId, id)
          : await operations.retryBatch(tenantId, id);
      return { batch };
    }
    if (action === "cancel") return operations.cancelOperation(tenantId, id);
    return { operation: await operations.retryOperation(tenantId, id) };
  }
  if (resource === "dead" && id === "redeliver" && action === undefined) {
    return { redelivered: await redeliver(ctx, parseBody(await request.body())) };
  }
  return undefined;
}

/** Redelivers dead deliveries: the ones named, or all of one subscriber — only in the operator's tenants. */
async function redeliver(ctx: ApiContext, body: Record<string, unknown>): Promise<number> {
  const bySubscriber = new Map<string | undefined, string[] | undefined>();
  if (body.all === true) {
    if (body.subscriber !== undefined && typeof body.subscriber !== "string") {
      throw new ValidationError([
        { path: ["subscriber"], code: "invalid_type", message: "subscriber must be a string" },
      ]);
    }
    bySubscriber.set(body.subscriber as string | undefined, undefined);
  } else {
    const deliveries = body.deliveries;
    if (!Array.isArray(deliveries) || deliveries.length === 0 || deliveries.length > 500) {
      throw new ValidationError([
        {
          path: ["deliveries"],
          code: "invalid_type",
          message: "deliveries must list 1 to 500 { eventId, subscriber }",
        },
      ]);
    }
    deliveries.forEach((delivery: { eventId?: unknown; subscriber?: unknown }, index) => {
      if (
        typeof delivery?.eventId !== "string" ||
        !/^\d{1,19}$/.test(delivery.eventId) ||
        typeof delivery.subscriber !== "string" ||
        delivery.subscriber.length === 0
      ) {
        throw new ValidationError([
          {
            path: ["deliveries", index],
            code: "invalid_type",
            message: "each delivery needs an eventId and a subscriber",
          },
        ]);
      }
      const list = bySubscriber.get(delivery.subscriber) ?? [];
      list.push(delivery.eventId);
      bySubscriber.set(delivery.subscriber, list);
    });
  }
  // One call per tenant the operator may see: the service filters by tenant in SQL.
  const tenants = ctx.grant.tenants === "*" ? [undefined] : ctx.grant.tenants;
  let redelivered = 0;
  for (const [subscriber, eventIds] of bySubscriber) {
    for (const tenantId of tenants) {
      redelivered += await ctx.operations.redeliverDead({ subscriber, eventIds, tenantId });
    }
  }
  return redelivered;
}
