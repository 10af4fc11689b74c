// Retention, run by the reaper: deletes finished batches (with their children and events),
// finished standalone operations, delivered or long-dead events and stopped workers once the
// policy's time has passed — one bounded statement at a time, walking each history from the
// oldest row with a cursor, so no statement holds many locks and rows kept longer are stepped over.
import { shortestKeep, type RetentionPolicy } from "../domain/retention";
import type { Logger } from "../logger";
import type { EventCursor, FinishedCursor, PruneStep } from "../store/statements/retention";
import type { Store } from "../store/store";

/** Rows deleted, by what they were. */
export interface PrunedCounts {
  batches: number;
  operations: number;
  events: number;
  workers: number;
}

export const PRUNED_KINDS = ["batches", "operations", "events", "workers"] as const;

const none = (): PrunedCounts => ({ batches: 0, operations: 0, events: 0, workers: 0 });

/** Rows retention deleted since the service started (what `prisma_operations_pruned_total` reports). */
export class PrunedTotals {
  private readonly counts: PrunedCounts = none();

  add(counts: PrunedCounts): void {
    for (const kind of PRUNED_KINDS) this.counts[kind] += counts[kind];
  }

  snapshot(): PrunedCounts {
    return { ...this.counts };
  }
}

/** What one pruning pass did, and whether it stopped before the end of some history. */
export interface PrunePass {
  pruned: PrunedCounts;
  /** A walk stopped at the pass's statement budget: more may have expired already. */
  more: boolean;
}

export class Pruner {
  private batchCursor: FinishedCursor | undefined;
  private operationCursor: FinishedCursor | undefined;
  private eventCursor: EventCursor | undefined;
  private nextPassAt = 0;
  private more = false;

  constructor(
    private readonly store: Store,
    private readonly policy: RetentionPolicy,
    private readonly totals: PrunedTotals,
    private readonly logger: Logger,
  ) {}

  /** The last pass stopped at its statement budget: the next one should follow at once. */
  get hasMore(): boolean {
    return this.more;
  }

  /** Runs a pass when the interval has passed since the last one, or the last one left work. */
  async runIfDue(): Promise<PrunePass | undefined> {
    if (!this.more && Date.now() < this.nextPassAt) return undefined;
    return this.runOnce();
  }

  /** One pass: each history walked for at most `maxChunksPerPass` statements. */
  async runOnce(): Promise<PrunePass> {
    this.nextPassAt = Date.now() + this.policy.intervalMs;
    const pruned = none();
    let more = false;
    const shortest = shortestKeep(this.policy);
    if (shortest !== null) {
      const batches = await this.walk(this.batchCursor, (after) =>
        this.store.pruneBatches(this.policy, shortest, after),
      );
      this.batchCursor = batches.cursor;
      const operations = await this.walk(this.operationCursor, (after) =>
        this.store.pruneOperations(this.policy, shortest, after),
      );
      this.operationCursor = operations.cursor;
      for (const step of [batches, operations]) {
        pruned.batches += step.counts.batches;
        pruned.operations += step.counts.operations;
        pruned.events += step.counts.events;
        more ||= step.more;
      }
    }
    if (this.policy.deliveredEventSeconds !== null) {
      const events = await this.walk(this.eventCursor, (after) => this.store.pruneEvents(this.policy, after));
      this.eventCursor = events.cursor;
      pruned.events += events.counts.events;
      more ||= events.more;
    }
    if (this.policy.workerSeconds !== null) pruned.workers = await this.store.pruneWorkers(this.policy);
    this.more = more;
    this.totals.add(pruned);
    if (PRUNED_KINDS.some((kind) => pruned[kind] > 0))
      this.logger.info("retention deleted expired history", { ...pruned });
    return { pruned, more };
  }

  /** Steps a walk from `cursor` until it reaches the end or the statement budget. */
  private async walk<C>(
    cursor: C | undefined,
    step: (after: C | undefined) => Promise<PruneStep<C>>,
  ): Promise<{ cursor: C | undefined; counts: PrunedCounts; more: boolean }> {
    const counts = none();
    for (let chunk = 0; chunk < this.policy.maxChunksPerPass; chunk++) {
      const result = await step(cursor);
      counts.batches += result.batches;
      counts.operations += result.operations;
      counts.events += result.events;
      if (result.reachedEnd) return { cursor: undefined, counts, more: false };
      cursor = result.next;
    }
    return { cursor, counts, more: true };
  }
}
