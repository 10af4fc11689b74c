// Delivers what inline dispatch left behind (a crash after commit, a failed subscriber, an event
// written by a process without this subscriber). One loop per subscriber of this process, so a
// slow subscriber never holds up the others; each claims its due deliveries with FOR UPDATE SKIP
// LOCKED, so any number of relays can run on any number of nodes, and extends its claims while it
// works through them, so a live relay's deliveries are never taken by another — and it starts none
// past its lease by its own clock, so a relay cut off from the database never delivers beside the
// one that took its deliveries over (delivery-lease.ts). It polls, and wakes
// at once on the NOTIFY of a statement that wrote deliveries for one of its subscribers (its own
// `listen`, or its worker's).
import type { ClientConfig } from "pg";
import { errorMessage } from "../errors";
import { Listener } from "../execution/listener";
import type { Logger } from "../logger";
import { Loop } from "../loop";
import { OUTBOX_CHANNEL } from "../store/statements/shared";
import type { Store } from "../store/store";
import { DeliveryLease } from "./delivery-lease";
import type { OutboxDispatcher } from "./dispatcher";

export interface RelayOptions {
  /** Deliveries claimed per pass, per subscriber. Default 100. */
  batchSize: number;
  /** Pause between passes that found less than a full batch. Default 1,000 ms. */
  pollIntervalMs: number;
  /**
   * How long a claim stays with this relay without being extended; it is extended every third of
   * that while the relay works, so this is how soon another relay takes over from one that died.
   * A delivery starts only with at least half of it left by the relay's own clock (extending first
   * if need be), so a delivery that takes longer than half the lease may be made twice if the
   * extensions cannot land meanwhile. Default 60 s.
   */
  leaseMs: number;
  /**
   * A `pg` connection config for LISTEN: a pass runs as soon as another process commits deliveries
   * for one of this relay's subscribers, rather than at the next poll. Off by default (it polls);
   * a worker's own relay needs none, since the worker's `listen` wakes it.
   */
  listen?: ClientConfig;
}

export const DEFAULT_RELAY_OPTIONS: RelayOptions = { batchSize: 100, pollIntervalMs: 1_000, leaseMs: 60_000 };

export interface RelayPass {
  claimed: number;
  delivered: number;
  failed: number;
}

export class OutboxRelay {
  private readonly loops: Map<string, Loop>;
  private readonly listener: Listener | undefined;

  constructor(
    private readonly store: Store,
    private readonly dispatcher: OutboxDispatcher,
    private readonly options: RelayOptions,
    private readonly logger: Logger,
  ) {
    this.loops = new Map(
      dispatcher.subscribers.map(({ name }) => [
        name,
        new Loop(async () => {
          try {
            const pass = await this.passFor(name);
            // A full batch, or more (holds taken over come on top): there may be more due.
            return pass.claimed >= this.options.batchSize ? 0 : this.options.pollIntervalMs;
          } catch (error) {
            this.logger.error("outbox relay pass failed", { subscriber: name, error: errorMessage(error) });
            return this.options.pollIntervalMs;
          }
        }),
      ]),
    );
    this.listener =
      options.listen &&
      new Listener({
        config: options.listen,
        channels: [OUTBOX_CHANNEL],
        onNotification: (_channel, subscriber) => this.wake(subscriber),
        onConnected: () => this.wake(), // notifications may have been missed meanwhile
        logger,
      });
  }

  /** One pass for every subscriber of this process, side by side. */
  async runOnce(): Promise<RelayPass> {
    const passes = await Promise.all(this.dispatcher.subscribers.map(({ name }) => this.passFor(name)));
    return passes.reduce(
      (total, pass) => ({
        claimed: total.claimed + pass.claimed,
        delivered: total.delivered + pass.delivered,
        failed: total.failed + pass.failed,
      }),
      { claimed: 0, delivered: 0, failed: 0 },
    );
  }

  private async passFor(subscriber: string): Promise<RelayPass> {
    await this.dispatcher.ready();
    const sentAt = performance.now();
    const claimed = await this.store.claimDeliveries(
      subscriber,
      this.options.batchSize,
      this.options.leaseMs,
    );
    if (claimed.length === 0) return { claimed: 0, delivered: 0, failed: 0 };
    const lease = new DeliveryLease(
      this.store,
      claimed.map((d) => ({ eventId: d.event.id, subscriber, claimedAttempts: d.attempts })),
      this.options.leaseMs,
      sentAt,
      this.logger,
    );
    // Kept alive while a delivery takes long; a delivery only starts with half a lease left (confirm).
    const extender = setInterval(
      () => void lease.extend(),
      Math.max(20, Math.floor(this.options.leaseMs / 3)),
    );
    try {
      const report = await this.dispatcher.deliverClaimed(claimed, lease);
      return { claimed: claimed.length, delivered: report.delivered.length, failed: report.failed.length };
    } finally {
      clearInterval(extender);
    }
  }

  /** Runs passes in the background until {@link stop}. */
  start(): this {
    for (const loop of this.loops.values()) loop.start();
    void this.listener?.start(); // it keeps reconnecting on its own
    return this;
  }

  /** Runs the next pass now rather than after the poll interval: `subscriber`'s, or every one's. */
  wake(subscriber?: string): void {
    if (subscriber === undefined) for (const loop of this.loops.values()) loop.wake();
    else this.loops.get(subscriber)?.wake();
  }

  /** Stops after the passes in progress, if any. */
  async stop(): Promise<void> {
    await this.listener?.stop();
    await Promise.all([...this.loops.values()].map((loop) => loop.stop()));
  }

  /** Connections its own LISTEN side has made (0 without `listen`; tests wait on it). */
  get listenerConnections(): number {
    return this.listener?.connections ?? 0;
  }

  /** Whether every subscriber's loop waits between passes, for its poll or a wake-up (tests wait on it). */
  get betweenPasses(): boolean {
    return [...this.loops.values()].every((loop) => loop.waiting);
  }
}
