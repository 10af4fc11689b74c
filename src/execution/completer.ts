// Records handler outcomes: a group commit. While one statement is in flight, the outcomes that
// finish meanwhile wait and go together in the next — one statement for many under load, no added
// delay when idle. Each outcome is applied only for the claim it belongs to (its lock token).
import type { HandlerOutcome } from "../domain/retry";
import { errorMessage } from "../errors";
import type { Logger } from "../logger";
import type { ClaimedRow } from "../store/statements/claims";
import type { Inline } from "../store/statements/outbox";
import type { TransitionRow } from "../store/statements/transitions";
import type { Store } from "../store/store";
import { toFinish } from "./executor";

const RETRY_MAX_DELAY_MS = 2_000;

interface Unrecorded {
  row: ClaimedRow;
  outcome: HandlerOutcome;
  resolve(): void;
}

/** What became of one recorded outcome: its row's new status, or undefined when it was fenced off. */
export type Recorded = { row: ClaimedRow; outcome: HandlerOutcome; status: string | undefined };

export class Completer {
  private readonly unrecorded: Unrecorded[] = [];
  private flushing = false;

  constructor(
    private readonly store: Store,
    private readonly inline: () => Inline,
    /** How long an outcome may keep trying: past the lease, the reaper owns the row (and its outcome). */
    private readonly leaseMs: number,
    private readonly logger: Logger,
    private readonly onRecorded: (recorded: Recorded[], transition: TransitionRow) => void,
  ) {}

  /** Queues an outcome for the next group commit; resolves once it is recorded (or given up). */
  record(row: ClaimedRow, outcome: HandlerOutcome): Promise<void> {
    return new Promise((resolve) => {
      this.unrecorded.push({ row, outcome, resolve });
      if (!this.flushing) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    while (this.unrecorded.length > 0) {
      const group = this.nextGroup();
      const transition = await this.recordWithRetries(group);
      if (transition) {
        const status = new Map(transition.rows.map((row) => [row.id, row.status as string]));
        this.onRecorded(
          group.map(({ row, outcome }) => ({ row, outcome, status: status.get(row.id) })),
          transition,
        );
      }
      for (const { resolve } of group) resolve();
    }
    this.flushing = false;
  }

  /** Everything waiting, but at most one outcome per operation (a stale run's and the new claim's go apart). */
  private nextGroup(): Unrecorded[] {
    const ids = new Set<string>();
    const group: Unrecorded[] = [];
    const later: Unrecorded[] = [];
    for (const item of this.unrecorded.splice(0)) {
      if (ids.has(item.row.id)) later.push(item);
      else {
        ids.add(item.row.id);
        group.push(item);
      }
    }
    this.unrecorded.unshift(...later);
    return group;
  }

  /**
   * Records a group, retrying while the database is unreachable — for as long as the leases could
   * still be ours. After that the reaper owns the rows, and so do their outcomes.
   */
  private async recordWithRetries(group: Unrecorded[]): Promise<TransitionRow | undefined> {
    const deadline = Date.now() + this.leaseMs;
    const outcomes = group.map(({ row, outcome }) => ({
      id: row.id,
      lockToken: row.lockToken,
      finish: toFinish(outcome),
    }));
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.store.finishOperations(outcomes, this.inline());
      } catch (error) {
        if (Date.now() >= deadline) {
          this.logger.error(
            "could not record outcomes before the lease ran out; the reaper takes the rows back",
            {
              operationIds: group.map(({ row }) => row.id),
              error: errorMessage(error),
            },
          );
          return undefined;
        }
        await new Promise((resolve) => setTimeout(resolve, Math.min(50 * 2 ** attempt, RETRY_MAX_DELAY_MS)));
      }
    }
  }
}
