// Why something that has not finished has not finished yet, in words: the rule behind the
// dashboard's "why is it waiting" for every pending or running operation, every batch in flight
// and every queue. Pure: the database's clock, the workers seen and the row come in as arguments,
// so the same row always reads the same way and every branch is tested without a database.
import type { FailurePolicy, OperationStatus } from "./status";

/** What keeps a row from finishing, from the most benign to the most likely stuck. */
export type WaitingCode =
  /** Pending, not due yet: submitted with a later `runAt`, or snoozed. */
  | "scheduled"
  /** Pending, not due yet: a failed attempt's backoff. */
  | "backing_off"
  /** Pending and due for less than the stall threshold: a worker should take it any moment. */
  | "due"
  /** Due, but its type (or its tenant of that type) runs as many as its concurrency limit allows. */
  | "waiting_for_slot"
  /** Due for longer than the threshold, and every live worker of its type is busy. */
  | "workers_busy"
  /** Due for longer than the threshold, and no live worker handles its type. */
  | "no_worker"
  /** Due for longer than the threshold although live workers of its type have free slots. */
  | "unclaimed"
  /** Running under a lease. */
  | "running"
  /** Running, but its lease ran out: the reaper will take it back. */
  | "lease_expired"
  /** Running, asked to cancel: it ends when its handler stops. */
  | "cancel_requested"
  /** Running in a batch that was cancelled: it ends when its handler stops. */
  | "batch_cancelled"
  /** Running in a fail_fast batch where a sibling failed: it ends when its handler stops. */
  | "fail_fast";

/** How worried an operator should be: `ok` (moving), `wait` (waiting on time), `stuck` (needs someone). */
export type WaitingSeverity = "ok" | "wait" | "stuck";

/** Why a row is not finished, as a code, a severity and one sentence. */
export interface WaitingReason {
  code: WaitingCode;
  severity: WaitingSeverity;
  /** The sentence to show, with absolute times (UTC) and durations relative to `now`. */
  text: string;
  /** When the reason should change by itself (due time, backoff end, lease end), if known. */
  until?: Date;
}

/** A worker as its registry row says, with the operations it holds now. */
export interface WorkerSeen {
  id: string;
  types: readonly string[];
  concurrency: number;
  /** Operations it holds now. */
  running: number;
  heartbeatMs: number;
  seenAt: Date;
  stoppedAt: Date | null;
}

/** What the rules need besides the row: the database's clock and the workers seen. */
export interface WaitingContext {
  /** The database's `now()`: leases, run_at and backoff all use that clock. */
  now: Date;
  workers: readonly WorkerSeen[];
  /** How long a due row may wait before it counts as unclaimed. Default 30 s. */
  stallAfterMs?: number;
  /** The types' concurrency limits and what runs now, for "waiting for a slot". */
  slots?: SlotState;
}

/** Concurrency limits (`defineOperationType({ concurrency })`) and the rows running now. */
export interface SlotState {
  limits: Readonly<Record<string, { total?: number; perTenant?: number } | undefined>>;
  /** Running per type. */
  runningByType: ReadonlyMap<string, number>;
  /** Running per type and tenant, keyed by `queueKey(type, tenantId)`. */
  runningByQueue: ReadonlyMap<string, number>;
}

/** The key of a (type, tenant) queue in {@link SlotState.runningByQueue}. */
export function queueKey(type: string, tenantId: string): string {
  return JSON.stringify([type, tenantId]);
}

/** Which limit keeps due rows of this queue waiting, if one does. */
function slotReason(type: string, tenantId: string, ctx: WaitingContext): WaitingReason | null {
  const limits = ctx.slots?.limits[type];
  if (!limits || !ctx.slots) return null;
  const running = ctx.slots.runningByType.get(type) ?? 0;
  if (limits.total !== undefined && running >= limits.total) {
    return {
      code: "waiting_for_slot",
      severity: "wait",
      text: `Waiting for a slot: "${type}" runs at most ${limits.total} at once (limit per type), and ${running} are running.`,
    };
  }
  const ofTenant = ctx.slots.runningByQueue.get(queueKey(type, tenantId)) ?? 0;
  if (limits.perTenant !== undefined && ofTenant >= limits.perTenant) {
    return {
      code: "waiting_for_slot",
      severity: "wait",
      text: `Waiting for a slot: "${type}" runs at most ${limits.perTenant} at once for tenant ${tenantId} (limit per tenant), and ${ofTenant} are running.`,
    };
  }
  return null;
}

/** The batch an operation belongs to, as far as the rules need it. */
export interface BatchOfOperation {
  failurePolicy: FailurePolicy;
  failedCount: number;
  /** When the batch was cancelled, if it was (see `batchCancelledAt` in the store's reads). */
  cancelledAt: Date | null;
}

/** The fields of an operation the rules read. */
export interface WaitingOperation {
  type: string;
  tenantId: string;
  status: OperationStatus;
  attempts: number;
  maxAttempts: number;
  runAt: Date;
  lockedBy: string | null;
  lockedUntil: Date | null;
  cancelRequestedAt: Date | null;
  error: unknown;
}

export const DEFAULT_STALL_AFTER_MS = 30_000;

/** A worker is live while it has not stopped and has reported within three of its heartbeats (and 5 s). */
export function isLive(worker: WorkerSeen, now: Date): boolean {
  return (
    worker.stoppedAt === null && now.getTime() - worker.seenAt.getTime() <= 3 * worker.heartbeatMs + 5_000
  );
}

/** "42 s", "3 min 5 s", "2 h 4 min", "3 d 2 h". */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 ? `${m} min ${s % 60} s` : `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d} d ${h % 24} h` : `${d} d`;
}

/** "14:03:05 UTC" on `now`'s day (UTC), else "2026-11-27 14:03:05 UTC". */
export function formatClock(at: Date, now: Date): string {
  const iso = at.toISOString();
  const time = `${iso.slice(11, 19)} UTC`;
  return iso.slice(0, 10) === now.toISOString().slice(0, 10) ? time : `${iso.slice(0, 10)} ${time}`;
}

/** "14:03:05 UTC (in 42 s)" or "14:03:05 UTC (3 min ago)". */
function when(at: Date, now: Date): string {
  const delta = at.getTime() - now.getTime();
  const relative = delta >= 0 ? `in ${formatDuration(delta)}` : `${formatDuration(-delta)} ago`;
  return `${formatClock(at, now)} (${relative})`;
}

interface StoredErrorShape {
  retryable?: unknown;
  attempt?: unknown;
}

function retryableAttempt(error: unknown): number | undefined {
  const e = error as StoredErrorShape | null | undefined;
  return e && typeof e === "object" && e.retryable === true && typeof e.attempt === "number"
    ? e.attempt
    : undefined;
}

/** Who can take work of `type` now, as the due rule needs it. */
function capacity(type: string, ctx: WaitingContext): { live: number; busy: boolean } {
  const live = ctx.workers.filter((worker) => worker.types.includes(type) && isLive(worker, ctx.now));
  return { live: live.length, busy: live.length > 0 && live.every((w) => w.running >= w.concurrency) };
}

/**
 * The reason for `count` rows of `type` due since `dueSince`: moments ago, a wait for busy
 * workers, or stuck because nobody takes them.
 */
function dueReason(
  type: string,
  tenantId: string,
  count: number,
  dueSince: Date,
  ctx: WaitingContext,
): WaitingReason {
  const slot = slotReason(type, tenantId, ctx);
  if (slot) return slot;
  const waited = Math.max(0, ctx.now.getTime() - dueSince.getTime());
  const stallAfter = ctx.stallAfterMs ?? DEFAULT_STALL_AFTER_MS;
  const { live, busy } = capacity(type, ctx);
  const rows = count === 1 ? "this due row" : `these ${count} due rows`;
  const workersOfType = `${live} live worker${live === 1 ? "" : "s"} handle${live === 1 ? "s" : ""} "${type}"`;
  if (waited < stallAfter) {
    const who = live === 0 ? `but no live worker handles "${type}"` : `${workersOfType}`;
    return {
      code: "due",
      severity: live === 0 ? "wait" : "ok",
      text: `Due since ${when(dueSince, ctx.now)}; waiting to be claimed — ${who}.`,
    };
  }
  if (live === 0) {
    return {
      code: "no_worker",
      severity: "stuck",
      text: `No worker has claimed ${rows} for ${formatDuration(waited)} — no live worker handles "${type}" (is a worker for this type running?).`,
    };
  }
  if (busy) {
    return {
      code: "workers_busy",
      severity: "wait",
      text:
        `Due for ${formatDuration(waited)}: ` +
        (live === 1
          ? `the one live worker that handles "${type}" is busy.`
          : `all ${live} live workers that handle "${type}" are busy.`),
    };
  }
  return {
    code: "unclaimed",
    severity: "stuck",
    text: `No worker has claimed ${rows} for ${formatDuration(waited)}, although ${workersOfType} with free slots.`,
  };
}

function holder(op: WaitingOperation, ctx: WaitingContext): string {
  const id = op.lockedBy ?? "(unknown)";
  const worker = ctx.workers.find((w) => w.id === op.lockedBy);
  if (!worker || isLive(worker, ctx.now)) return `worker ${id}`;
  const seen = formatDuration(ctx.now.getTime() - worker.seenAt.getTime());
  return `worker ${id} (${worker.stoppedAt ? "stopped" : "not seen for " + seen})`;
}

/** Why an operation is not finished; null for a finished one. */
export function operationWaitingReason(
  op: WaitingOperation,
  ctx: WaitingContext,
  batch?: BatchOfOperation,
): WaitingReason | null {
  const { now } = ctx;
  if (op.status === "processing") {
    const until = op.lockedUntil ?? now;
    if (until.getTime() < now.getTime()) {
      return {
        code: "lease_expired",
        severity: "stuck",
        text: `The lease of ${holder(op, ctx)} expired at ${when(until, now)}; the reaper will take it back${
          op.cancelRequestedAt
            ? " as cancelled"
            : op.attempts >= op.maxAttempts
              ? " as failed (no attempts left)"
              : ""
        }.`,
        until,
      };
    }
    const stopping = `waiting for ${holder(op, ctx)} to stop its handler (lease until ${when(until, now)})`;
    if (op.cancelRequestedAt) {
      if (batch?.cancelledAt) {
        return {
          code: "batch_cancelled",
          severity: "wait",
          text: `Batch cancelled at ${when(batch.cancelledAt, now)}; ${stopping}.`,
          until,
        };
      }
      if (batch?.failurePolicy === "fail_fast" && batch.failedCount > 0) {
        return {
          code: "fail_fast",
          severity: "wait",
          text: `A sibling failed in this fail_fast batch: cancel requested at ${when(op.cancelRequestedAt, now)}; ${stopping}.`,
          until,
        };
      }
      return {
        code: "cancel_requested",
        severity: "wait",
        text: `Cancel requested at ${when(op.cancelRequestedAt, now)}; ${stopping}.`,
        until,
      };
    }
    return {
      code: "running",
      severity: "ok",
      text: `Held by ${holder(op, ctx)} until ${when(until, now)} (attempt ${op.attempts} of ${op.maxAttempts}).`,
      until,
    };
  }
  if (op.status !== "pending") return null;
  if (op.runAt.getTime() > now.getTime()) {
    const failedAttempt = retryableAttempt(op.error);
    if (failedAttempt !== undefined && op.attempts > 0) {
      return {
        code: "backing_off",
        severity: "wait",
        text: `Backing off after attempt ${failedAttempt} of ${op.maxAttempts} failed, until ${when(op.runAt, now)}.`,
        until: op.runAt,
      };
    }
    return { code: "scheduled", severity: "wait", text: `Due at ${when(op.runAt, now)}.`, until: op.runAt };
  }
  return dueReason(op.type, op.tenantId, 1, op.runAt, ctx);
}

/** A batch in flight, as counted from its unfinished children. */
export interface WaitingBatch {
  type: string;
  tenantId: string;
  status: OperationStatus;
  /** When the batch was cancelled, if it was. */
  cancelledAt: Date | null;
  /** Children pending and due, and the earliest run_at among them. */
  due: number;
  oldestDueAt: Date | null;
  /** Children pending until a later run_at, and the earliest of those. */
  scheduled: number;
  nextRunAt: Date | null;
  /** Children running (under a lease that has not run out), of which asked to cancel. */
  running: number;
  cancelRequested: number;
  /** Children still marked running whose lease ran out. */
  leaseExpired: number;
}

const SEVERITY_ORDER: readonly WaitingSeverity[] = ["ok", "wait", "stuck"];

/** Why a batch is not finished, summed up from its children; null for a finished one. */
export function batchWaitingReason(batch: WaitingBatch, ctx: WaitingContext): WaitingReason | null {
  if (batch.status !== "pending" && batch.status !== "processing") return null;
  const parts: { reason: WaitingReason; rank: number }[] = [];
  const add = (reason: WaitingReason) => parts.push({ reason, rank: parts.length });
  const { now } = ctx;
  if (batch.leaseExpired > 0) {
    add({
      code: "lease_expired",
      severity: "stuck",
      text: `${batch.leaseExpired} running with an expired lease (the reaper will take them back)`,
    });
  }
  if (batch.cancelledAt && batch.running > 0) {
    add({
      code: "batch_cancelled",
      severity: "wait",
      text: `cancelled at ${when(batch.cancelledAt, now)}: waiting for ${batch.running} running to stop`,
    });
  } else if (batch.running > 0) {
    const stopping = batch.cancelRequested > 0 ? `, ${batch.cancelRequested} of them asked to cancel` : "";
    add({ code: "running", severity: "ok", text: `${batch.running} running${stopping}` });
  }
  if (batch.due > 0 && batch.oldestDueAt) {
    const due = dueReason(batch.type, batch.tenantId, batch.due, batch.oldestDueAt, ctx);
    const counted = due.text.startsWith("Due ")
      ? `${batch.due} ${lowerFirst(due.text)}` // "3 due since …", "3 due for …"
      : `${batch.due} due: ${lowerFirst(due.text)}`;
    add({ ...due, text: counted.replace(/\.$/, "") });
  }
  if (batch.scheduled > 0 && batch.nextRunAt) {
    add({
      code: "scheduled",
      severity: "wait",
      text: `${batch.scheduled} not due before ${when(batch.nextRunAt, now)}`,
      until: batch.nextRunAt,
    });
  }
  if (parts.length === 0) {
    return {
      code: "due",
      severity: "stuck",
      text: "No child is pending or running, yet the batch is not finished; the reaper reconciles it.",
    };
  }
  const worst = parts.reduce((a, b) =>
    SEVERITY_ORDER.indexOf(b.reason.severity) > SEVERITY_ORDER.indexOf(a.reason.severity) ? b : a,
  );
  const text = parts.map((part) => part.reason.text).join(" · ");
  return { code: worst.reason.code, severity: worst.reason.severity, text: upperFirst(text) + "." };
}

/** One queue (a type and tenant): why its due rows have not been taken, when they have waited; else null. */
export function queueWaitingReason(
  queue: { type: string; tenantId: string; claimable: number; oldestClaimableAgeSeconds: number },
  ctx: WaitingContext,
): WaitingReason | null {
  if (queue.claimable === 0) return null;
  const dueSince = new Date(ctx.now.getTime() - queue.oldestClaimableAgeSeconds * 1000);
  return dueReason(queue.type, queue.tenantId, queue.claimable, dueSince, ctx);
}

function lowerFirst(text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1);
}

function upperFirst(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
