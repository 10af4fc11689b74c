// Queue depth split the way operators size worker pools by: claimable now, waiting on run_at,
// running, batches in flight, the age of the oldest claimable operation, and each subscriber's
// undelivered and dead events. Batches (parents) are never counted as work: they are not in the
// operations table. Known series read 0 when idle, rather than disappearing.
import { Counter, Gauge, Registry } from "prom-client";
import { PRUNED_KINDS, type PrunedCounts } from "./execution/pruner";
import type { DeliveryStatsRow, OperationStatsRow, Store } from "./store/store";

export interface QueueStatsRow extends OperationStatsRow {
  /** Batches of this type and tenant not yet terminal. */
  batchesInFlight: number;
  /** The type's running limits, when it has any (`defineOperationType({ concurrency })`). */
  limits?: { total?: number; perTenant?: number };
  /** Claimable rows wait for a slot: the type, or this tenant of it, runs as many as its limit allows. */
  waitingForSlot: boolean;
}

export interface QueueStats {
  /**
   * Per type and tenant: every pair with work now or seen earlier by this process, and every
   * registered type (with tenantId "" while no tenant of it has been seen), zeros included.
   */
  operations: QueueStatsRow[];
  /** Per registered subscriber: deliveries owed to it and dead ones. */
  deliveries: DeliveryStatsRow[];
  totals: {
    claimable: number;
    scheduled: number;
    processing: number;
    batchesInFlight: number;
    deliveryBacklog: number;
    deliveriesDead: number;
  };
}

/** Type and tenant pairs this process has reported: they keep reading 0 once idle. */
export class KnownSeries {
  private readonly pairs = new Set<string>();

  add(type: string, tenantId: string): void {
    this.pairs.add(JSON.stringify([type, tenantId]));
  }

  *entries(): Iterable<[string, string]> {
    for (const pair of this.pairs) yield JSON.parse(pair) as [string, string];
  }
}

export async function readQueueStats(
  store: Store,
  types: Readonly<Record<string, { concurrency?: { total?: number; perTenant?: number } }>>,
  known: KnownSeries,
): Promise<QueueStats> {
  const stats = await store.stats();
  const rows = new Map<string, QueueStatsRow>();
  const rowFor = (type: string, tenantId: string) => {
    const key = JSON.stringify([type, tenantId]);
    let row = rows.get(key);
    if (!row) {
      row = {
        type,
        tenantId,
        claimable: 0,
        scheduled: 0,
        processing: 0,
        oldestClaimableAgeSeconds: 0,
        batchesInFlight: 0,
        waitingForSlot: false,
      };
      rows.set(key, row);
    }
    return row;
  };
  for (const op of stats.operations) Object.assign(rowFor(op.type, op.tenantId), op);
  for (const batch of stats.batches) rowFor(batch.type, batch.tenantId).batchesInFlight = batch.inFlight;
  for (const row of rows.values()) known.add(row.type, row.tenantId);
  for (const [type, tenantId] of known.entries()) rowFor(type, tenantId);
  const typesSeen = new Set([...rows.values()].map((row) => row.type));
  for (const type of Object.keys(types)) if (!typesSeen.has(type)) rowFor(type, "");
  const runningOfType = new Map<string, number>();
  for (const row of rows.values())
    runningOfType.set(row.type, (runningOfType.get(row.type) ?? 0) + row.processing);
  for (const row of rows.values()) {
    const limits = types[row.type]?.concurrency;
    if (!limits) continue;
    row.limits = limits;
    const full =
      (limits.total !== undefined && runningOfType.get(row.type)! >= limits.total) ||
      (limits.perTenant !== undefined && row.processing >= limits.perTenant);
    row.waitingForSlot = row.claimable > 0 && full;
  }
  const operations = [...rows.values()].sort(
    (a, b) => a.type.localeCompare(b.type) || a.tenantId.localeCompare(b.tenantId),
  );
  const sum = <R>(list: readonly R[], pick: (row: R) => number) =>
    list.reduce((total, row) => total + pick(row), 0);
  return {
    operations,
    deliveries: stats.deliveries,
    totals: {
      claimable: sum(operations, (row) => row.claimable),
      scheduled: sum(operations, (row) => row.scheduled),
      processing: sum(operations, (row) => row.processing),
      batchesInFlight: sum(operations, (row) => row.batchesInFlight),
      deliveryBacklog: sum(stats.deliveries, (row) => row.backlog),
      deliveriesDead: sum(stats.deliveries, (row) => row.dead),
    },
  };
}

/**
 * The stats as Prometheus text exposition, with `type` and `tenant` (or `subscriber`) labels, and
 * the rows retention deleted (`prisma_operations_pruned_total{what}`) when given.
 */
export async function prometheusText(stats: QueueStats, pruned?: PrunedCounts): Promise<string> {
  const registry = new Registry();
  if (pruned) {
    const counter = new Counter({
      name: "prisma_operations_pruned_total",
      help: "Rows retention deleted since this process started: batches, operations, events, workers.",
      labelNames: ["what"],
      registers: [registry],
    });
    for (const what of PRUNED_KINDS) counter.inc({ what }, pruned[what]);
  }
  const gauge = (name: string, help: string, labelNames: string[]) =>
    new Gauge({ name: `prisma_operations_${name}`, help, labelNames, registers: [registry] });
  const perType: [string, string, (row: QueueStatsRow) => number][] = [
    ["claimable", "Operations pending and due: a worker could take them now.", (r) => r.claimable],
    ["scheduled", "Operations pending until their run_at (scheduled or backing off).", (r) => r.scheduled],
    ["processing", "Operations running under a lease.", (r) => r.processing],
    [
      "oldest_claimable_age_seconds",
      "Seconds since the oldest claimable operation became due.",
      (r) => r.oldestClaimableAgeSeconds,
    ],
    [
      "batches_in_flight",
      "Batches not yet terminal (parents; never counted as work).",
      (r) => r.batchesInFlight,
    ],
  ];
  for (const [name, help, pick] of perType) {
    const metric = gauge(name, help, ["type", "tenant"]);
    for (const row of stats.operations) metric.set({ type: row.type, tenant: row.tenantId }, pick(row));
  }
  const perSubscriber: [string, string, (row: DeliveryStatsRow) => number][] = [
    ["delivery_backlog", "Events not yet delivered to this subscriber.", (r) => r.backlog],
    ["deliveries_dead", "Deliveries to this subscriber that exhausted their attempts.", (r) => r.dead],
    [
      "oldest_undelivered_age_seconds",
      "Age of the oldest event not yet delivered to this subscriber.",
      (r) => r.oldestUndeliveredAgeSeconds,
    ],
  ];
  for (const [name, help, pick] of perSubscriber) {
    const metric = gauge(name, help, ["subscriber"]);
    for (const row of stats.deliveries) metric.set({ subscriber: row.subscriber }, pick(row));
  }
  return registry.metrics();
}
