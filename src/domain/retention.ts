// How long finished history is kept before the reaper deletes it: the policy as an application
// gives it, checked and resolved into the seconds the retention statements take. Pure.
import { OperationsError } from "../errors";

/** Keeping times of one operation type, overriding the service's. */
export interface TypeRetention {
  /** Days a completed batch or standalone operation of this type is kept after it finished. */
  completedDays?: number;
  /** Days a failed or cancelled one is kept after it finished. */
  failedDays?: number;
}

/**
 * What `createOperations({ retention })` takes. Every time is counted from when the row finished
 * (or was delivered, or died); `Infinity` keeps that kind of row for ever. A batch goes with its
 * children and events, never before all of its events are delivered or past `deadEventDays`.
 */
export interface RetentionOptions extends TypeRetention {
  /** Days a completed batch or standalone operation is kept. Default 7. */
  completedDays?: number;
  /** Days a failed or cancelled batch or standalone operation is kept. Default 30. */
  failedDays?: number;
  /** Hours an outbox event is kept after it was delivered to every subscriber (or written, if none wanted it). Default 24. */
  deliveredEventHours?: number;
  /** Days an event with a dead delivery is kept for redelivery after it died. Default 30. */
  deadEventDays?: number;
  /** Hours a stopped (or vanished) worker stays in the registry. Default 24. */
  workerHours?: number;
  /** Per operation type: its own completedDays and failedDays. */
  types?: Record<string, TypeRetention>;
  /** Rows a pruning statement looks at (a batch's children count towards it). Default 500. */
  chunkSize?: number;
  /** Statements per pruning pass at most; the next pass goes on where this one stopped. Default 20. */
  maxChunksPerPass?: number;
  /** Pause between pruning passes (the reaper runs more often; it prunes at this pace). Default 60 s. */
  intervalMs?: number;
}

export const DEFAULT_RETENTION = {
  completedDays: 7,
  failedDays: 30,
  deliveredEventHours: 24,
  deadEventDays: 30,
  workerHours: 24,
  chunkSize: 500,
  maxChunksPerPass: 20,
  intervalMs: 60_000,
} as const;

/** Seconds to keep a row; null keeps it for ever. */
export type KeepSeconds = number | null;

/** The policy resolved: keeping times in seconds, as the statements take them. */
export interface RetentionPolicy {
  completedSeconds: KeepSeconds;
  failedSeconds: KeepSeconds;
  /** Types with their own keeping times (fully resolved: each falls back to the defaults above). */
  types: { type: string; completedSeconds: KeepSeconds; failedSeconds: KeepSeconds }[];
  deliveredEventSeconds: KeepSeconds;
  deadEventSeconds: KeepSeconds;
  workerSeconds: KeepSeconds;
  chunkSize: number;
  maxChunksPerPass: number;
  intervalMs: number;
}

const DAY = 86_400;
const HOUR = 3_600;

function keep(value: number | undefined, fallback: number, unitSeconds: number, name: string): KeepSeconds {
  const chosen = value ?? fallback;
  if (chosen === Infinity) return null;
  if (typeof chosen !== "number" || !Number.isFinite(chosen) || chosen < 0) {
    throw new OperationsError(
      "invalid_options",
      `retention.${name} must be a number >= 0 (or Infinity to keep for ever), got ${String(value)}`,
    );
  }
  return chosen * unitSeconds;
}

function count(value: number | undefined, fallback: number, name: string): number {
  const chosen = value ?? fallback;
  if (!Number.isInteger(chosen) || chosen < 1) {
    throw new OperationsError(
      "invalid_options",
      `retention.${name} must be a whole number >= 1, got ${String(value)}`,
    );
  }
  return chosen;
}

/** Checks `options` and resolves them with the defaults; `false` turns retention off (null). */
export function resolveRetention(options: RetentionOptions | false | undefined): RetentionPolicy | null {
  if (options === false) return null;
  const o = options ?? {};
  const completedSeconds = keep(o.completedDays, DEFAULT_RETENTION.completedDays, DAY, "completedDays");
  const failedSeconds = keep(o.failedDays, DEFAULT_RETENTION.failedDays, DAY, "failedDays");
  return {
    completedSeconds,
    failedSeconds,
    types: Object.entries(o.types ?? {}).map(([type, t]) => ({
      type,
      completedSeconds:
        t.completedDays === undefined
          ? completedSeconds
          : keep(t.completedDays, 0, DAY, `types.${type}.completedDays`),
      failedSeconds:
        t.failedDays === undefined ? failedSeconds : keep(t.failedDays, 0, DAY, `types.${type}.failedDays`),
    })),
    deliveredEventSeconds: keep(
      o.deliveredEventHours,
      DEFAULT_RETENTION.deliveredEventHours,
      HOUR,
      "deliveredEventHours",
    ),
    deadEventSeconds: keep(o.deadEventDays, DEFAULT_RETENTION.deadEventDays, DAY, "deadEventDays"),
    workerSeconds: keep(o.workerHours, DEFAULT_RETENTION.workerHours, HOUR, "workerHours"),
    chunkSize: count(o.chunkSize, DEFAULT_RETENTION.chunkSize, "chunkSize"),
    maxChunksPerPass: count(o.maxChunksPerPass, DEFAULT_RETENTION.maxChunksPerPass, "maxChunksPerPass"),
    intervalMs:
      keep(o.intervalMs, DEFAULT_RETENTION.intervalMs, 1, "intervalMs") ?? DEFAULT_RETENTION.intervalMs,
  };
}

/** Seconds a finished batch or standalone operation of `type` ending in `status` is kept (null: for ever). */
export function keepSecondsFor(
  policy: RetentionPolicy,
  type: string,
  status: "completed" | "failed" | "cancelled",
): KeepSeconds {
  const own = policy.types.find((t) => t.type === type) ?? policy;
  return status === "completed" ? own.completedSeconds : own.failedSeconds;
}

/**
 * The shortest keeping time of finished rows: nothing that finished more recently can have
 * expired, so the statements read only the part of the history older than this. Null when every
 * finished row is kept for ever.
 */
export function shortestKeep(policy: RetentionPolicy): KeepSeconds {
  const all = [policy.completedSeconds, policy.failedSeconds]
    .concat(policy.types.flatMap((t) => [t.completedSeconds, t.failedSeconds]))
    .filter((s): s is number => s !== null);
  return all.length ? Math.min(...all) : null;
}
