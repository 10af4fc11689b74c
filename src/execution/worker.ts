// The worker runtime: claims due operations with FOR UPDATE SKIP LOCKED, runs their handlers under
// a lease it keeps alive by heartbeat, and records each outcome with a fenced transition.
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { ClientConfig } from "pg";
import { errorMessage } from "../errors";
import type { Logger } from "../logger";
import { Loop } from "../loop";
import { claimDue, heartbeat, type Db } from "../store/repository";
import {
  CANCEL_CHANNEL,
  WAKE_CHANNEL,
  type ClaimedRow,
  type OutboxRow,
  type TransitionRow,
} from "../store/sql";
import { LeaseLost, OperationCancelled, WorkerShutdown } from "./handlers";
import { Listener } from "./listener";
import type { HandlerOutcome } from "../domain/retry";
import { executeHandler, recordOutcomes, type ExecutionConfig } from "./runner";

export interface WorkerOptions {
  /** Identifies this worker in `locked_by`. Default `hostname:pid:random`. */
  id?: string;
  /** Handlers running at once. Default 10. */
  concurrency?: number;
  /** Rows claimed per query. Default: `concurrency`. */
  batchSize?: number;
  /**
   * Rows claimed ahead of free slots, to start the next handler without a round trip. They are
   * handed back (attempt refunded) at shutdown. Default 0.
   */
  prefetch?: number;
  /** How long a claim is ours without a heartbeat. Default 30 s. */
  leaseMs?: number;
  /** How often leases are extended (and cancel requests picked up without NOTIFY). Default leaseMs / 3. */
  heartbeatIntervalMs?: number;
  /** Poll interval when idle and no notification arrives. Default 1,000 ms. */
  pollIntervalMs?: number;
  /**
   * A connection for LISTEN (wake-ups on submit, cancel requests). Without it the worker only
   * polls: wake-up latency is then up to `pollIntervalMs`, cancel latency up to a heartbeat.
   */
  listen?: ClientConfig | false;
  /** At stop, how long in-flight handlers may take before their signals abort. Default 30 s. */
  shutdownTimeoutMs?: number;
}

export interface WorkerDeps {
  db: Db;
  execution: ExecutionConfig;
  logger: Logger;
  /**
   * Delivers the events a group of outcomes wrote, right after their commit. They are written
   * with `eventDelayMs` of lease, so that no relay takes them meanwhile; after a crash the relay
   * delivers them once that lease has run out.
   */
  dispatch(events: OutboxRow[]): Promise<unknown>;
  eventDelayMs: number;
  /** Started and stopped with the worker (its relay and reaper). */
  companions?: { start(): unknown; stop(): Promise<void> }[];
}

interface Held {
  row: ClaimedRow;
  controller: AbortController;
  started: boolean;
}

export interface WorkerStats {
  claimed: number;
  completed: number;
  failed: number;
  retried: number;
  snoozed: number;
  cancelled: number;
  /** Outcomes refused because the lease was no longer ours (fencing). */
  rejected: number;
}

const RECORD_RETRY_MAX_DELAY_MS = 2_000;

interface Unrecorded {
  row: ClaimedRow;
  outcome: HandlerOutcome;
  resolve(): void;
}

export class Worker {
  readonly id: string;
  readonly stats: WorkerStats = {
    claimed: 0,
    completed: 0,
    failed: 0,
    retried: 0,
    snoozed: 0,
    cancelled: 0,
    rejected: 0,
  };
  private readonly concurrency: number;
  private readonly batchSize: number;
  private readonly prefetch: number;
  private readonly leaseMs: number;
  private readonly pollIntervalMs: number;
  private readonly shutdownTimeoutMs: number;
  private readonly types: string[];
  private readonly held = new Map<string, Held>();
  private readonly queue: ClaimedRow[] = [];
  private running = 0;
  /** Handlers done whose outcomes are not recorded yet. */
  private recording = 0;
  private readonly unrecorded: Unrecorded[] = [];
  private flushing = false;
  private idleWaiters: (() => void)[] = [];
  private readonly fetchLoop: Loop;
  private readonly heartbeatLoop: Loop;
  private readonly listener: Listener | undefined;
  private stopping = false;

  constructor(
    private readonly deps: WorkerDeps,
    options: WorkerOptions = {},
  ) {
    this.id = options.id ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    this.concurrency = options.concurrency ?? 10;
    this.batchSize = options.batchSize ?? this.concurrency;
    this.prefetch = options.prefetch ?? 0;
    this.leaseMs = options.leaseMs ?? 30_000;
    this.pollIntervalMs = options.pollIntervalMs ?? 1_000;
    this.shutdownTimeoutMs = options.shutdownTimeoutMs ?? 30_000;
    this.types = Object.keys(deps.execution.handlers);
    if (this.types.length === 0) throw new Error("createWorker: give at least one handler");
    const heartbeatIntervalMs = options.heartbeatIntervalMs ?? Math.max(50, Math.floor(this.leaseMs / 3));
    this.fetchLoop = new Loop(() => this.fetch());
    this.heartbeatLoop = new Loop(async () => {
      await this.beat();
      return heartbeatIntervalMs;
    });
    if (options.listen) {
      this.listener = new Listener({
        config: options.listen,
        channels: [WAKE_CHANNEL, CANCEL_CHANNEL],
        onNotification: (channel, payload) => {
          if (channel === WAKE_CHANNEL) this.fetchLoop.wake();
          else this.held.get(payload)?.controller.abort(new OperationCancelled());
        },
        onConnected: () => this.fetchLoop.wake(),
        logger: deps.logger,
      });
    }
  }

  /** Operations held now (running or claimed ahead). */
  get inFlight(): number {
    return this.held.size;
  }

  /** Connections the LISTEN side has made (0 without `listen`). */
  get listenerConnections(): number {
    return this.listener?.connections ?? 0;
  }

  async start(): Promise<this> {
    this.stopping = false;
    await this.listener?.start();
    this.heartbeatLoop.start();
    this.fetchLoop.start();
    for (const companion of this.deps.companions ?? []) companion.start();
    return this;
  }

  /**
   * Graceful stop: claims nothing more, hands back claimed rows not yet started, lets running
   * handlers finish for up to `shutdownTimeoutMs`, then aborts their signals and waits for them to
   * return. A handler that ignores its signal keeps its row until the lease runs out; the reaper
   * then takes it back.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.fetchLoop.stop();
    const unstarted = this.queue.splice(0);
    await Promise.all(
      unstarted.map(async (row) => {
        await this.record(row, { kind: "snoozed", delayMs: 0 });
        this.held.delete(row.id);
      }),
    );
    if (!(await this.idle(this.shutdownTimeoutMs))) {
      for (const held of this.held.values()) held.controller.abort(new WorkerShutdown());
      await this.idle(this.leaseMs);
    }
    await Promise.all(this.dispatching);
    await this.heartbeatLoop.stop();
    await this.listener?.stop();
    await Promise.all((this.deps.companions ?? []).map((companion) => companion.stop()));
  }

  /** Resolves true once nothing runs or waits to be recorded, or false after `timeoutMs`. */
  private idle(timeoutMs: number): Promise<boolean> {
    if (this.running + this.recording === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.idleWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  private async fetch(): Promise<number> {
    const free = this.concurrency + this.prefetch - this.running - this.queue.length;
    if (this.stopping || free <= 0) return this.pollIntervalMs; // woken when a slot frees
    const want = Math.min(this.batchSize, free);
    let rows: ClaimedRow[];
    try {
      rows = await claimDue(this.deps.db, want, this.id, this.leaseMs, this.types);
    } catch (error) {
      this.deps.logger.error("claim failed; retrying after the poll interval", {
        error: errorMessage(error),
      });
      return this.pollIntervalMs;
    }
    this.stats.claimed += rows.length;
    for (const row of rows) {
      this.held.set(row.id, { row, controller: new AbortController(), started: false });
      this.queue.push(row);
    }
    this.pump();
    return rows.length === want ? 0 : this.pollIntervalMs;
  }

  private pump(): void {
    while (this.running < this.concurrency && this.queue.length > 0) {
      const row = this.queue.shift()!;
      this.running++;
      void this.run(row);
    }
  }

  private async run(row: ClaimedRow): Promise<void> {
    const held = this.held.get(row.id)!;
    held.started = true;
    const outcome = await executeHandler(this.deps.execution, row, held.controller.signal);
    // The slot is free as soon as the handler is done: the next claim overlaps the recording.
    this.running--;
    this.recording++;
    this.pump();
    this.fetchLoop.wake();
    try {
      await this.record(row, outcome);
    } finally {
      this.held.delete(row.id);
      this.recording--;
      if (this.running + this.recording === 0) for (const waiter of this.idleWaiters.splice(0)) waiter();
    }
  }

  /**
   * Queues an outcome for the next group commit and resolves once it is recorded (or given up).
   * While one commit is in flight, the outcomes that finish meanwhile wait and go together in the
   * next: one statement for many under load, no added delay when idle.
   */
  private record(row: ClaimedRow, outcome: HandlerOutcome): Promise<void> {
    return new Promise((resolve) => {
      this.unrecorded.push({ row, outcome, resolve });
      if (!this.flushing) void this.flush();
    });
  }

  /** Dispatches in flight; stop() waits for them. */
  private readonly dispatching = new Set<Promise<unknown>>();

  private track(dispatch: Promise<unknown>): void {
    this.dispatching.add(dispatch);
    void dispatch.finally(() => this.dispatching.delete(dispatch));
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    while (this.unrecorded.length > 0) {
      const group = this.unrecorded.splice(0);
      const transition = await this.recordWithRetries(group);
      if (transition) {
        const changed = new Map(transition.rows.map((row) => [row.id, row.status]));
        for (const { row, outcome } of group) this.count(row, outcome.kind, changed.get(row.id));
        if (transition.events.length) this.track(this.deps.dispatch(transition.events));
      }
      for (const { resolve } of group) resolve();
    }
    this.flushing = false;
  }

  /**
   * Records a group, retrying while the database is unreachable — for as long as the leases could
   * still be ours. After that the reaper owns the rows, and so do their outcomes.
   */
  private async recordWithRetries(group: Unrecorded[]): Promise<TransitionRow | undefined> {
    const deadline = Date.now() + this.leaseMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await recordOutcomes(this.deps.db, group, this.id, this.deps.eventDelayMs);
      } catch (error) {
        if (Date.now() >= deadline) {
          this.deps.logger.error(
            "could not record outcomes before the lease ran out; the reaper takes the rows back",
            {
              operationIds: group.map(({ row }) => row.id),
              error: errorMessage(error),
            },
          );
          return undefined;
        }
        await new Promise((resolve) =>
          setTimeout(resolve, Math.min(50 * 2 ** attempt, RECORD_RETRY_MAX_DELAY_MS)),
        );
      }
    }
  }

  private count(row: ClaimedRow, kind: HandlerOutcome["kind"], status: string | undefined): void {
    if (status === undefined) {
      // Fencing: the lease was taken over, so this outcome was not applied.
      this.stats.rejected++;
      this.deps.logger.warn("outcome rejected: this worker no longer holds the operation's lease", {
        operationId: row.id,
        workerId: this.id,
        outcome: kind,
      });
      return;
    }
    if (status === "cancelled") this.stats.cancelled++;
    else if (kind === "completed") this.stats.completed++;
    else if (kind === "failed") this.stats.failed++;
    else if (kind === "retry") this.stats.retried++;
    else this.stats.snoozed++;
  }

  private async beat(): Promise<void> {
    const ids = [...this.held.keys()];
    if (ids.length === 0) return;
    let alive: { id: string; cancelRequested: boolean }[];
    try {
      alive = await heartbeat(this.deps.db, ids, this.id, this.leaseMs);
    } catch (error) {
      this.deps.logger.warn("heartbeat failed; leases run on", { error: errorMessage(error) });
      return;
    }
    const aliveIds = new Set(alive.map((row) => row.id));
    for (const row of alive)
      if (row.cancelRequested) this.held.get(row.id)?.controller.abort(new OperationCancelled());
    for (const id of ids) {
      const held = this.held.get(id);
      // Not extended and still held: the lease is gone (expired and reaped, or taken over).
      if (held && !aliveIds.has(id)) held.controller.abort(new LeaseLost());
    }
  }
}
