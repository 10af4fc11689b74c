// Repairs what crashes leave behind, continuously and safely on every node at once: operations
// whose lease expired (their worker died) and batches that are not terminal although none of
// their children can move any more. Deliveries need no reaping: a relay that dies leaves its
// claims to expire, and any relay takes them back (see OutboxRelay). What the reaper writes is
// delivered by the relays (it holds no delivery for itself). With a retention policy, it also
// deletes expired history (see Pruner), at the policy's own pace.
import { errorMessage } from "../errors";
import type { Logger } from "../logger";
import { Loop } from "../loop";
import { NO_INLINE, type WrittenEvent } from "../store/statements/outbox";
import type { Store } from "../store/store";
import type { PrunedCounts, Pruner } from "./pruner";

export interface ReaperOptions {
  /** Pause between passes. Default 5,000 ms. */
  intervalMs: number;
  /** Rows handled per statement. Default 100. */
  batchSize: number;
  /** A batch must have been still this long before it is reconciled. Default 60 s. */
  reconcileAfterMs: number;
}

export const DEFAULT_REAPER_OPTIONS: ReaperOptions = {
  intervalMs: 5_000,
  batchSize: 100,
  reconcileAfterMs: 60_000,
};

export interface ReaperPass {
  /** Expired leases taken back: due again, failed (attempts exhausted) or cancelled. */
  reaped: number;
  /** Batches given the terminal status their children imply. */
  reconciled: number;
  /** Rows retention deleted in this pass, when it deleted any. */
  pruned?: PrunedCounts;
}

export class Reaper {
  private readonly loop: Loop;

  constructor(
    private readonly store: Store,
    private readonly options: ReaperOptions,
    private readonly logger: Logger,
    private readonly onEvents: (events: WrittenEvent[]) => void,
    private readonly pruner?: Pruner,
  ) {
    this.loop = new Loop(async () => {
      try {
        const pass = await this.runOnce();
        return pass.reaped + pass.reconciled > 0 || this.pruner?.hasMore ? 0 : this.options.intervalMs;
      } catch (error) {
        this.logger.error("reaper pass failed", { error: errorMessage(error) });
        return this.options.intervalMs;
      }
    });
  }

  async runOnce(): Promise<ReaperPass> {
    const reaped = await this.store.reapExpiredLeases(this.options.batchSize, NO_INLINE);
    if (reaped.changed > 0) {
      this.logger.warn("took back operations whose lease expired", { count: reaped.changed });
    }
    const reconciled = await this.store.reconcileBatches(
      this.options.batchSize,
      this.options.reconcileAfterMs,
      NO_INLINE,
    );
    if (reconciled.fixed > 0)
      this.logger.warn("reconciled batches whose children were all terminal", { count: reconciled.fixed });
    const events = [...reaped.events, ...reconciled.events];
    if (events.length) this.onEvents(events);
    const pruned = (await this.pruner?.runIfDue())?.pruned;
    return {
      reaped: reaped.changed,
      reconciled: reconciled.fixed,
      ...(pruned && Object.values(pruned).some((n) => n > 0) ? { pruned } : {}),
    };
  }

  start(): this {
    this.loop.start();
    return this;
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }
}
