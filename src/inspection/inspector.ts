// Read-only views of the queues for an operator restricted to some tenants: what the dashboard
// shows. Every read is scoped to the operator's tenants in SQL, and every unfinished row comes
// with the reason it waits (domain/waiting.ts), read against the database's clock and the worker
// registry.
import {
  batchWaitingReason,
  isLive,
  operationWaitingReason,
  queueWaitingReason,
  queueKey,
  type WaitingContext,
  type WorkerSeen,
} from "../domain/waiting";
import { NotFoundError, ValidationError } from "../errors";
import { withDatabase } from "../store/database-errors";
import type { BatchWaitingRow, TenantScope } from "../store/statements/dashboard";
import type { Store } from "../store/store";
import { toBatchView } from "../store/views";
import { parseId } from "../submit/input";
import type {
  BatchDetail,
  BatchSummary,
  DeadDeliveryRow,
  OperationDetail,
  OperationSummary,
  Overview,
  Page,
  TenantAccess,
  WorkerView,
} from "./views";

/** Filters of {@link Inspector.batches}. */
export interface BatchFilter {
  tenantId?: string;
  type?: string;
  statuses?: readonly string[];
  cursor?: string;
  /** 1 to 200; default 25. */
  limit?: number;
}

/** Filters of {@link Inspector.deadDeliveries}. */
export interface DeadFilter {
  subscriber?: string;
  tenantId?: string;
  cursor?: string;
  limit?: number;
}

export interface InspectorOptions {
  /** Registered operation types. */
  typeNames: readonly string[];
  /** The types' concurrency limits, for "waiting for a slot". */
  limits?: Readonly<Record<string, { total?: number; perTenant?: number } | undefined>>;
  /** How long a due row may wait before it reads as unclaimed. Default 30 s. */
  stallAfterMs?: number;
}

const EVENTS_SHOWN = 200;

function encodeCursor(value: string): string {
  return Buffer.from(value, "utf8").toString("base64url");
}

function decodeCursor(cursor: string): string {
  return Buffer.from(cursor, "base64url").toString("utf8");
}

function badCursor(): ValidationError {
  return new ValidationError([
    { path: ["cursor"], code: "invalid_cursor", message: "cursor is not one this API returned" },
  ]);
}

function pageLimit(limit: number | undefined, fallback: number, max: number): number {
  if (limit === undefined) return fallback;
  if (!Number.isInteger(limit) || limit < 1 || limit > max) {
    throw new ValidationError([
      { path: ["limit"], code: "invalid_limit", message: `limit must be a whole number from 1 to ${max}` },
    ]);
  }
  return limit;
}

export class Inspector {
  private readonly scope: TenantScope;

  constructor(
    private readonly store: Store,
    readonly access: TenantAccess,
    private readonly options: InspectorOptions,
  ) {
    this.scope = access === "*" ? null : [...access];
  }

  /** Queues, throughput, subscribers, workers and the most recent batches. */
  async overview(options: { type?: string } = {}): Promise<Overview> {
    return withDatabase("dashboard overview", async () => {
      const [[context, workers], queues, throughput, subscribers, recent] = await Promise.all([
        this.readContext(),
        this.store.queues(this.scope),
        this.store.throughput(this.scope, options.type),
        this.store.subscriberBacklogs(this.scope),
        this.store.listBatchesWaiting(this.scope, { limit: 10 }),
      ]);
      return {
        now: context.now,
        queues: queues.map((queue) => ({ ...queue, reason: queueWaitingReason(queue, context) })),
        throughput,
        subscribers,
        workers: workers.map((worker): WorkerView => ({
          ...worker,
          types: [...worker.types],
          running: this.scope === null ? worker.running : null,
          state: worker.stoppedAt ? "stopped" : isLive(worker, context.now) ? "live" : "gone",
        })),
        recentBatches: recent.map((row) => this.summary(row, context)),
        types: [...this.options.typeNames],
      };
    });
  }

  /** Batches, newest first, a page at a time. */
  async batches(filter: BatchFilter = {}): Promise<Page<BatchSummary>> {
    const limit = pageLimit(filter.limit, 25, 200);
    const beforeId = filter.cursor === undefined ? undefined : this.idCursor(filter.cursor);
    return withDatabase("dashboard batches", async () => {
      const [context, rows] = await Promise.all([
        this.context(),
        this.store.listBatchesWaiting(this.scope, { ...filter, beforeId, limit: limit + 1 }),
      ]);
      return this.page(
        rows,
        limit,
        (row) => this.summary(row, context),
        (row) => row.id,
      );
    });
  }

  /** A batch with a page of its children (in submission order) and its events. */
  async batch(
    id: string,
    children: { cursor?: string; statuses?: readonly string[]; limit?: number } = {},
  ): Promise<BatchDetail> {
    const batchId = parseId(id, ["batchId"]);
    const limit = pageLimit(children.limit, 100, 500);
    const afterId = children.cursor === undefined ? undefined : this.idCursor(children.cursor);
    return withDatabase("dashboard batch", async () => {
      const [context, row] = await Promise.all([
        this.context(),
        this.store.batchWaiting(this.scope, batchId),
      ]);
      if (!row) throw new NotFoundError("batch", batchId);
      const [childRows, events] = await Promise.all([
        this.store.batchChildren(this.scope, batchId, {
          afterId,
          statuses: children.statuses,
          limit: limit + 1,
        }),
        this.store.eventsAbout(this.scope, batchId, EVENTS_SHOWN),
      ]);
      const batch = {
        failurePolicy: row.failurePolicy,
        failedCount: row.failedCount,
        cancelledAt: row.cancelledAt,
      };
      return {
        now: context.now,
        batch: this.summary(row, context),
        children: this.page(
          childRows,
          limit,
          (child): OperationSummary => ({ ...child, reason: operationWaitingReason(child, context, batch) }),
          (child) => child.id,
        ),
        events,
      };
    });
  }

  /** Standalone operations (not children of a batch), newest first. */
  async operations(filter: BatchFilter = {}): Promise<Page<OperationSummary>> {
    const limit = pageLimit(filter.limit, 25, 200);
    const beforeId = filter.cursor === undefined ? undefined : this.idCursor(filter.cursor);
    return withDatabase("dashboard operations", async () => {
      const [context, rows] = await Promise.all([
        this.context(),
        this.store.listStandalone(this.scope, { ...filter, beforeId, limit: limit + 1 }),
      ]);
      return this.page(
        rows,
        limit,
        (row): OperationSummary => ({ ...row, reason: operationWaitingReason(row, context) }),
        (row) => row.id,
      );
    });
  }

  /** An operation with its payload, result, error, lease, the reason it waits and its events. */
  async operation(id: string): Promise<OperationDetail> {
    const operationId = parseId(id, ["operationId"]);
    return withDatabase("dashboard operation", async () => {
      const [context, row, events] = await Promise.all([
        this.context(),
        this.store.operationWithBatch(this.scope, operationId),
        this.store.eventsAbout(this.scope, operationId, EVENTS_SHOWN),
      ]);
      if (!row) throw new NotFoundError("operation", operationId);
      const { batchFailurePolicy, batchFailedCount, batchStatus, batchCancelledAt, ...operation } = row;
      const batch =
        row.batchId && batchFailurePolicy
          ? {
              failurePolicy: batchFailurePolicy,
              failedCount: batchFailedCount ?? 0,
              cancelledAt: batchCancelledAt,
            }
          : undefined;
      return {
        now: context.now,
        operation,
        reason: operationWaitingReason(row, context, batch),
        batch: row.batchId && batchStatus ? { id: row.batchId, status: batchStatus } : null,
        events,
      };
    });
  }

  /** Dead deliveries, the most recent event first. */
  async deadDeliveries(filter: DeadFilter = {}): Promise<Page<DeadDeliveryRow>> {
    const limit = pageLimit(filter.limit, 50, 500);
    let before: { eventId: string; subscriber: string } | undefined;
    if (filter.cursor !== undefined) {
      const [eventId, ...rest] = decodeCursor(filter.cursor).split(":");
      if (!eventId || !/^\d{1,19}$/.test(eventId) || rest.length === 0) throw badCursor();
      before = { eventId, subscriber: rest.join(":") };
    }
    return withDatabase("dashboard dead deliveries", async () => {
      const rows = await this.store.deadDeliveries(this.scope, { ...filter, before, limit: limit + 1 });
      return this.page(
        rows,
        limit,
        (row) => row,
        (row) => `${row.eventId}:${row.subscriber}`,
      );
    });
  }

  /**
   * The tenant of a batch or operation the operator may see (so that an action can name it);
   * another tenant's, or none, is not found.
   */
  async tenantOf(kind: "batch" | "operation", id: string): Promise<string> {
    const parsed = parseId(id, [kind === "batch" ? "batchId" : "operationId"]);
    const row = await withDatabase("dashboard lookup", (): Promise<{ tenantId: string } | null> =>
      kind === "batch"
        ? this.store.batchWaiting(this.scope, parsed)
        : this.store.operationWithBatch(this.scope, parsed),
    );
    if (!row) throw new NotFoundError(kind, parsed);
    return row.tenantId;
  }

  /** Whether the operator may see (and so act on) `tenantId`. */
  canSee(tenantId: string): boolean {
    return this.scope === null || this.scope.includes(tenantId);
  }

  // --- internals ----------------------------------------------------------------------------------

  private async context(): Promise<WaitingContext> {
    return (await this.readContext())[0];
  }

  /** The database's clock and the worker registry: what the waiting rules read besides the row. */
  private async readContext(): Promise<[WaitingContext, Awaited<ReturnType<Store["listWorkers"]>>]> {
    const limits = this.options.limits ?? {};
    const limited = Object.keys(limits).filter((type) => limits[type]);
    const [now, workers, running] = await Promise.all([
      this.store.databaseNow(),
      this.store.listWorkers(),
      this.store.runningOf(limited),
    ]);
    const runningByType = new Map<string, number>();
    const runningByQueue = new Map<string, number>();
    for (const row of running) {
      runningByType.set(row.type, (runningByType.get(row.type) ?? 0) + row.running);
      runningByQueue.set(queueKey(row.type, row.tenantId), row.running);
    }
    return [
      {
        now,
        workers: workers as WorkerSeen[],
        stallAfterMs: this.options.stallAfterMs,
        slots: limited.length ? { limits, runningByType, runningByQueue } : undefined,
      },
      workers,
    ];
  }

  private idCursor(cursor: string): string {
    try {
      return parseId(decodeCursor(cursor), ["cursor"]);
    } catch {
      throw badCursor();
    }
  }

  private page<R, T>(rows: R[], limit: number, view: (row: R) => T, key: (row: R) => string): Page<T> {
    const items = rows.slice(0, limit);
    const last = items[items.length - 1];
    return {
      items: items.map(view),
      nextCursor: rows.length > limit && last ? encodeCursor(key(last)) : null,
    };
  }

  private summary(row: BatchWaitingRow, context: WaitingContext): BatchSummary {
    return {
      ...toBatchView({ ...row, processing: row.running + row.leaseExpired }),
      reason: batchWaitingReason(row, context),
    };
  }
}
