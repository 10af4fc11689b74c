// Queue depth split the way operators size worker pools by: claimable now, waiting on run_at,
// running, batches in flight, the age of the oldest claimable operation, and the outbox backlog.
// Batches (parents) are never counted as work: they are not in the operations table.
import { Gauge, Registry } from "prom-client";
import { readStats, type Db, type OperationStatsRow } from "./store/repository";

export interface QueueStatsRow extends OperationStatsRow {
  /** Batches of this type and tenant not yet terminal. */
  batchesInFlight: number;
}

export interface QueueStats {
  operations: QueueStatsRow[];
  outbox: { tenantId: string; backlog: number; dead: number }[];
  totals: {
    claimable: number;
    scheduled: number;
    processing: number;
    batchesInFlight: number;
    outboxBacklog: number;
    outboxDead: number;
  };
}

export async function readQueueStats(db: Db): Promise<QueueStats> {
  const stats = await readStats(db);
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
      };
      rows.set(key, row);
    }
    return row;
  };
  for (const op of stats.operations) Object.assign(rowFor(op.type, op.tenantId), op);
  for (const batch of stats.batches) rowFor(batch.type, batch.tenantId).batchesInFlight = batch.inFlight;
  const operations = [...rows.values()].sort(
    (a, b) => a.type.localeCompare(b.type) || a.tenantId.localeCompare(b.tenantId),
  );
  const sum = (pick: (row: QueueStatsRow) => number) =>
    operations.reduce((total, row) => total + pick(row), 0);
  return {
    operations,
    outbox: stats.outbox,
    totals: {
      claimable: sum((row) => row.claimable),
      scheduled: sum((row) => row.scheduled),
      processing: sum((row) => row.processing),
      batchesInFlight: sum((row) => row.batchesInFlight),
      outboxBacklog: stats.outbox.reduce((total, row) => total + row.backlog, 0),
      outboxDead: stats.outbox.reduce((total, row) => total + row.dead, 0),
    },
  };
}

/** The stats as Prometheus text exposition, with `type` and `tenant` labels. */
export async function prometheusText(stats: QueueStats): Promise<string> {
  const registry = new Registry();
  const gauge = (name: string, help: string, labelNames: string[]) =>
    new Gauge({ name: `prisma_operations_${name}`, help, labelNames, registers: [registry] });
  const perType = [
    [
      "claimable",
      "Operations pending and due: a worker could take them now.",
      (r: QueueStatsRow) => r.claimable,
    ],
    [
      "scheduled",
      "Operations pending until their run_at (scheduled or backing off).",
      (r: QueueStatsRow) => r.scheduled,
    ],
    ["processing", "Operations running under a lease.", (r: QueueStatsRow) => r.processing],
    [
      "oldest_claimable_age_seconds",
      "Seconds since the oldest claimable operation became due.",
      (r: QueueStatsRow) => r.oldestClaimableAgeSeconds,
    ],
    [
      "batches_in_flight",
      "Batches not yet terminal (parents; never counted as work).",
      (r: QueueStatsRow) => r.batchesInFlight,
    ],
  ] as const;
  for (const [name, help, pick] of perType) {
    const metric = gauge(name, help, ["type", "tenant"]);
    for (const row of stats.operations) metric.set({ type: row.type, tenant: row.tenantId }, pick(row));
  }
  const backlog = gauge("outbox_backlog", "Outbox events not yet delivered.", ["tenant"]);
  const dead = gauge("outbox_dead", "Outbox events that exhausted their delivery attempts.", ["tenant"]);
  for (const row of stats.outbox) {
    backlog.set({ tenant: row.tenantId }, row.backlog);
    dead.set({ tenant: row.tenantId }, row.dead);
  }
  return registry.metrics();
}
