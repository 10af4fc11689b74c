// A worker: the producer claims due operations, the executor runs their handlers, the completer
// records outcomes in group commits, the lease keeper extends leases, and a listener turns NOTIFYs
// into wake-ups and cancels. This file puts them together and owns start and graceful stop.
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { ClientConfig } from "pg";
import { leaseMarginMs } from "../domain/lease";
import type { HandlerOutcome } from "../domain/retry";
import { OperationsError } from "../errors";
import type { Logger } from "../logger";
import type { ClaimedRow } from "../store/statements/claims";
import type { Inline, WrittenEvent } from "../store/statements/outbox";
import { CANCEL_CHANNEL, OUTBOX_CHANNEL, parseWakePayload, WAKE_CHANNEL } from "../store/statements/shared";
import type { Store } from "../store/store";
import { Completer, type Recorded } from "./completer";
import { executeHandler, HANDED_BACK, type ExecutionConfig } from "./executor";
import { LeaseLost, OperationCancelled, WorkerShutdown } from "./handlers";
import { LazyAbortController } from "./lazy-abort";
import { LeaseFence, LeaseKeeper } from "./leases";
import { Listener } from "./listener";
import { WorkerPresence } from "./presence";
import { Producer } from "./producer";

export interface WorkerOptions {
  /** Identifies this worker in `locked_by`. Default `hostname:pid:random`. */
  id?: string;
  /** Handlers running at once. Default 10. */
  concurrency?: number;
  /** Most rows claimed per query (a claim takes at most the free slots plus `prefetch`). Default 100. */
  batchSize?: number;
  /**
   * Rows claimed ahead of free slots, to start the next handler without a round trip and to claim
   * many rows per query. They are handed back (attempt refunded) at shutdown, and when cancelled
   * before their turn. Default "auto" when the worker listens: what this worker starts in about
   * 200 ms at its current pace, at most 500 — hundreds for fast handlers, none for slow ones (no
   * rows wait here while other workers are idle). A number: always that many. With fair claiming,
   * a notification of new work may add up to `concurrency` more, no more than are already waiting
   * here (so that another tenant's new rows run in turn with them). Default 0 with `listen: false`:
   * rows claimed ahead would learn of a cancel only at the next heartbeat, and start meanwhile.
   */
  prefetch?: number | "auto";
  /**
   * How long a claim is ours without a heartbeat. The worker fences itself by its own clock: a
   * handler whose lease no heartbeat could extend for `leaseMs` minus a margin (a tenth of it,
   * 10 ms to 5 s) since the last one sent has its signal aborted with `LeaseLost`, before the
   * reaper can hand the row to another worker — the database unreachable or its heartbeats hung
   * included. A row claimed ahead that has not started is handed back instead. Default 30 s.
   */
  leaseMs?: number;
  /**
   * How often leases are extended (and cancel requests picked up without NOTIFY): at most half of
   * `leaseMs`, so that one late beat does not stop the handlers. Default leaseMs / 3.
   */
  heartbeatIntervalMs?: number;
  /** Poll interval when idle and no notification arrives. Default 1,000 ms. */
  pollIntervalMs?: number;
  /**
   * A connection for LISTEN: wake-ups on submit, and cancel requests, which reach a running
   * handler's signal and the rows claimed ahead within one notification's round trip. Default:
   * the settings of the service's `pool` (or of the PrismaPg adapter's), one extra connection per
   * worker. `false` where LISTEN cannot work (PgBouncer in transaction mode): the worker then only
   * polls — wake-up latency up to `pollIntervalMs`, a cancel reaching a running handler at its
   * next heartbeat — and claims nothing ahead unless `prefetch` says otherwise.
   */
  listen?: ClientConfig | false;
  /** At stop, how long in-flight handlers may take before their signals abort. Default 30 s. */
  shutdownTimeoutMs?: number;
  /**
   * Share claims between the tenants (per type) that have due work, round-robin, so that one
   * tenant's huge batch does not make every other tenant wait behind it; each tenant's rows still
   * run oldest first, and none waits forever. `false`: strictly oldest due first. Default true.
   */
  fair?: boolean;
  /** A tenant's share of a fair claim, relative to the others' (default 1 each). */
  tenantWeights?: Readonly<Record<string, number>>;
}

export interface WorkerDeps {
  store: Store;
  execution: ExecutionConfig;
  logger: Logger;
  /** How this process delivers the events its outcomes write (its own subscribers, after commit). */
  inline: () => Inline;
  /** Awaited before the first claim: the process's subscribers are registered. */
  ready: () => Promise<void>;
  /** Delivers the events a group of outcomes wrote, right after their commit. */
  dispatch(events: WrittenEvent[]): Promise<unknown>;
  /** Started and stopped with the worker (its relay and reaper). */
  companions?: { start(): unknown; stop(): Promise<void> }[];
  /**
   * Another process wrote deliveries due now for `subscriber` (undefined: notifications may have
   * been missed): the worker's relay should look now rather than at its next poll.
   */
  deliveriesDue?(subscriber: string | undefined): void;
}

/** A claim this worker holds, from claim until its outcome is recorded. */
interface Held {
  row: ClaimedRow;
  controller: LazyAbortController;
}

export interface WorkerStats {
  claimed: number;
  completed: number;
  failed: number;
  retried: number;
  snoozed: number;
  cancelled: number;
  /** Outcomes refused because the claim was no longer this run's (fencing). */
  rejected: number;
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
  private readonly leaseMs: number;
  private readonly shutdownTimeoutMs: number;
  /** By lock token: the same operation can be held twice (a stale run and a new claim of it). */
  private readonly held = new Map<string, Held>();
  private recording = 0;
  private idleWaiters: (() => void)[] = [];
  private readonly dispatching = new Set<Promise<unknown>>();
  private readonly producer: Producer;
  private readonly completer: Completer;
  private readonly leases: LeaseKeeper;
  private readonly fence: LeaseFence;
  private readonly presence: WorkerPresence;
  private readonly listener: Listener | undefined;

  constructor(
    private readonly deps: WorkerDeps,
    options: WorkerOptions = {},
  ) {
    this.id = options.id ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    const concurrency = options.concurrency ?? 10;
    this.leaseMs = options.leaseMs ?? 30_000;
    this.shutdownTimeoutMs = options.shutdownTimeoutMs ?? 30_000;
    const types = Object.keys(deps.execution.handlers);
    if (types.length === 0)
      throw new OperationsError("invalid_options", "createWorker: give at least one handler");
    validateNumbers(options);
    for (const [tenant, weight] of Object.entries(options.tenantWeights ?? {})) {
      if (!(Number.isFinite(weight) && weight > 0)) {
        throw new OperationsError(
          "invalid_options",
          `tenantWeights["${tenant}"] must be a number > 0, got ${weight}`,
        );
      }
    }
    this.producer = new Producer(
      deps.store,
      {
        workerId: this.id,
        types,
        concurrency,
        prefetch: options.prefetch ?? (options.listen ? "auto" : 0),
        batchSize: options.batchSize ?? 100,
        leaseMs: this.leaseMs,
        pollIntervalMs: options.pollIntervalMs ?? 1_000,
        policy: {
          fair: options.fair ?? true,
          weights: options.tenantWeights,
          limits: types.flatMap((type) => {
            const limits = deps.execution.types[type]?.concurrency;
            return limits ? [{ type, ...limits }] : [];
          }),
        },
      },
      deps.logger,
      (rows, sentAt) => this.claimed(rows, sentAt),
      (row) => this.run(row),
      () => this.recording,
    );
    this.completer = new Completer(
      deps.store,
      deps.inline,
      this.leaseMs,
      deps.logger,
      (recorded, transition) => {
        for (const entry of recorded) this.count(entry);
        if (transition.events.length) this.track(deps.dispatch(transition.events));
      },
    );
    const heartbeatMs = options.heartbeatIntervalMs ?? Math.max(10, Math.floor(this.leaseMs / 3));
    this.fence = new LeaseFence(this.leaseMs, (token) =>
      this.held
        .get(token)
        ?.controller.abort(
          new LeaseLost(
            `no heartbeat could extend this operation's lease in time (the worker's deadline is ${this.leaseMs - leaseMarginMs(this.leaseMs)} ms after the last one sent); stopped before the lease runs out and another worker may run it`,
          ),
        ),
    );
    this.presence = new WorkerPresence(
      deps.store,
      { id: this.id, hostname: hostname(), pid: process.pid, types, concurrency, heartbeatMs },
      deps.logger,
    );
    this.leases = new LeaseKeeper(
      deps.store,
      () => [...this.held.values()].map(({ row }) => row),
      this.leaseMs,
      heartbeatMs,
      deps.logger,
      {
        cancelRequested: (token) => this.held.get(token)?.controller.abort(new OperationCancelled()),
        lost: (token) => this.held.get(token)?.controller.abort(new LeaseLost()),
        extended: (tokens, sentAt) => this.fence.extended(tokens, sentAt),
      },
      this.presence,
    );
    if (options.listen) {
      this.listener = new Listener({
        config: options.listen,
        channels: deps.deliveriesDue
          ? [WAKE_CHANNEL, CANCEL_CHANNEL, OUTBOX_CHANNEL]
          : [WAKE_CHANNEL, CANCEL_CHANNEL],
        onNotification: (channel, payload) => {
          if (channel === WAKE_CHANNEL) this.producer.wake(parseWakePayload(payload));
          else if (channel === OUTBOX_CHANNEL) deps.deliveriesDue?.(payload);
          else
            for (const held of this.held.values())
              if (held.row.id === payload) held.controller.abort(new OperationCancelled());
        },
        onConnected: () => {
          this.producer.wake();
          deps.deliveriesDue?.(undefined);
        },
        logger: deps.logger,
      });
    }
  }

  /** Operations held now (running, claimed ahead, or recording). */
  get inFlight(): number {
    return this.held.size;
  }

  /** Connections the LISTEN side has made (0 without `listen`). */
  get listenerConnections(): number {
    return this.listener?.connections ?? 0;
  }

  async start(): Promise<this> {
    await this.deps.ready();
    await this.presence.announce();
    await this.listener?.start();
    this.leases.start();
    this.producer.start();
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
    const unstarted = await this.producer.stop();
    await Promise.all(unstarted.map((row) => this.finish(row, HANDED_BACK)));
    if (!(await this.idle(this.shutdownTimeoutMs))) {
      for (const held of this.held.values()) held.controller.abort(new WorkerShutdown());
      await this.idle(this.leaseMs);
    }
    await Promise.all(this.dispatching);
    await this.leases.stop();
    this.fence.stop();
    await this.listener?.stop();
    await Promise.all((this.deps.companions ?? []).map((companion) => companion.stop()));
    await this.presence.stopped();
  }

  private claimed(rows: readonly ClaimedRow[], sentAt: number): void {
    this.stats.claimed += rows.length;
    for (const row of rows) this.held.set(row.lockToken, { row, controller: new LazyAbortController() });
    this.fence.granted(
      rows.map((row) => row.lockToken),
      sentAt,
    );
  }

  /** Runs a row's handler; resolves when its slot is free, while its outcome is being recorded. */
  private async run(row: ClaimedRow): Promise<void> {
    const held = this.held.get(row.lockToken)!;
    const outcome = await executeHandler(this.deps.execution, row, held.controller);
    void this.finish(row, outcome);
  }

  private async finish(row: ClaimedRow, outcome: HandlerOutcome): Promise<void> {
    this.recording++;
    try {
      await this.completer.record(row, outcome);
    } finally {
      this.held.delete(row.lockToken);
      this.fence.released(row.lockToken);
      this.recording--;
      // A row back to pending may be due at once (a hand-back); otherwise only the room matters.
      if (outcome.kind === "retry" || outcome.kind === "snoozed") this.producer.wake();
      else this.producer.roomFreed();
      if (this.producer.running + this.recording === 0)
        for (const waiter of this.idleWaiters.splice(0)) waiter();
    }
  }

  /** Resolves true once nothing runs or waits to be recorded, or false after `timeoutMs`. */
  private idle(timeoutMs: number): Promise<boolean> {
    if (this.producer.running + this.recording === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.idleWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  private track(dispatch: Promise<unknown>): void {
    this.dispatching.add(dispatch);
    void dispatch.finally(() => this.dispatching.delete(dispatch));
  }

  private count({ row, outcome, status }: Recorded): void {
    if (status === undefined) {
      this.stats.rejected++;
      this.deps.logger.warn("outcome rejected: this run's claim is no longer the operation's", {
        operationId: row.id,
        workerId: this.id,
        outcome: outcome.kind,
      });
      return;
    }
    if (status === "cancelled") this.stats.cancelled++;
    else if (outcome.kind === "completed") this.stats.completed++;
    else if (outcome.kind === "failed") this.stats.failed++;
    else if (outcome.kind === "retry") this.stats.retried++;
    else this.stats.snoozed++;
  }
}

/** Counts and durations must be whole numbers in range: a typo must not make a worker that never claims. */
function validateNumbers(options: WorkerOptions): void {
  const checks: [name: keyof WorkerOptions, min: number][] = [
    ["concurrency", 1],
    ["batchSize", 1],
    ["leaseMs", 1],
    ["heartbeatIntervalMs", 1],
    ["pollIntervalMs", 1],
    ["shutdownTimeoutMs", 0],
  ];
  if (options.prefetch !== "auto") checks.push(["prefetch", 0]);
  for (const [name, min] of checks) {
    const value = options[name];
    if (value !== undefined && !(Number.isInteger(value) && (value as number) >= min)) {
      throw new OperationsError(
        "invalid_options",
        `createWorker: \`${name}\` must be an integer >= ${min}${name === "prefetch" ? ' or "auto"' : ""}, got ${JSON.stringify(value)}`,
      );
    }
  }
  const leaseMs = options.leaseMs ?? 30_000;
  if (options.heartbeatIntervalMs !== undefined && options.heartbeatIntervalMs > leaseMs / 2) {
    throw new OperationsError(
      "invalid_options",
      `createWorker: \`heartbeatIntervalMs\` (${options.heartbeatIntervalMs}) must be at most half of \`leaseMs\` (${leaseMs}): the worker stops a handler whose lease no heartbeat extended within the lease`,
    );
  }
}
