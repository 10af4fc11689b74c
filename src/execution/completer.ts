// Records handler outcomes: a group commit. While one statement is in flight, the outcomes that
// finish meanwhile wait and go together in the next — one statement for many under load, no added
// delay when idle. Each outcome is applied only for the claim it belongs to (its lock token), and
// a value the database refuses costs only its own outcome (`recordIsolating`).
import { storedError, type HandlerOutcome } from "../domain/retry";
import { errorMessage, lastLine } from "../errors";
import type { Logger } from "../logger";
import { isDataError } from "../store/database-errors";
import type { ClaimedRow } from "../store/statements/claims";
import type { Inline } from "../store/statements/outbox";
import type { Outcome, TransitionRow } from "../store/statements/transitions";
import type { Store } from "../store/store";
import { toFinish } from "./executor";

const RETRY_MAX_DELAY_MS = 2_000;

/** A handler's outcome, for the claim it belongs to. */
export interface Finished {
  row: ClaimedRow;
  outcome: HandlerOutcome;
}

interface Unrecorded extends Finished {
  resolve(): void;
}

/** What became of one recorded outcome: its row's new status, or undefined when it was fenced off. */
export type Recorded = Finished & { status: string | undefined };

/** Stored in place of an outcome the database refused to store. */
class OutcomeNotStored extends Error {
  constructor(kind: string, refusal: unknown) {
    super(`the database refused to store this ${kind} outcome: ${lastLine(refusal)}`);
    this.name = "OutcomeNotStored";
  }
}

/**
 * Records `finished` with `write` (one statement for all of them). When the database refuses a
 * value in that statement (a data error: it would refuse it again), they are recorded in halves
 * instead, down to the one refused on its own, which is then recorded failed with why — so one
 * value PostgreSQL cannot take costs no other outcome, and nothing is retried as it was.
 * `write` resolves undefined when it gave up (it logged why); its other errors are the caller's.
 * `recorded` gets each statement's outcomes with their rows' new status.
 */
export async function recordIsolating(
  finished: readonly Finished[],
  write: (outcomes: Outcome[]) => Promise<TransitionRow | undefined>,
  recorded: (recorded: Recorded[], transition: TransitionRow) => void,
  logger: Logger,
  /** `finished` is one outcome's replacement, already: if it is refused too, give up. */
  replacement = false,
): Promise<void> {
  let transition: TransitionRow | undefined;
  try {
    transition = await write(
      finished.map(({ row, outcome }) => ({
        id: row.id,
        lockToken: row.lockToken,
        finish: toFinish(outcome),
      })),
    );
  } catch (error) {
    if (!isDataError(error)) throw error;
    if (finished.length > 1) {
      const half = Math.ceil(finished.length / 2);
      await recordIsolating(finished.slice(0, half), write, recorded, logger);
      await recordIsolating(finished.slice(half), write, recorded, logger);
      return;
    }
    const [{ row, outcome }] = finished as [Finished];
    if (replacement) {
      // Nothing simpler to store: the lease runs out and the reaper takes the row back.
      logger.error("could not record an outcome; the reaper takes the row back", {
        operationId: row.id,
        error: errorMessage(error),
      });
      return;
    }
    logger.warn("the database refused to store an outcome; the operation fails with why", {
      operationId: row.id,
      outcome: outcome.kind,
      error: errorMessage(error),
    });
    const failed: HandlerOutcome = {
      kind: "failed",
      error: storedError(new OutcomeNotStored(outcome.kind, error), false, row.attempts),
    };
    return recordIsolating([{ row, outcome: failed }], write, recorded, logger, true);
  }
  if (!transition) return;
  const status = new Map(transition.rows.map((changed) => [changed.id, changed.status as string]));
  recorded(
    finished.map(({ row, outcome }) => ({ row, outcome, status: status.get(row.id) })),
    transition,
  );
}

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
      const deadline = Date.now() + this.leaseMs;
      await recordIsolating(
        group,
        (outcomes) => this.writeWithRetries(outcomes, deadline),
        this.onRecorded,
        this.logger,
      );
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
   * Writes outcomes, retrying while the database is unreachable (or anything else goes wrong that
   * is not a refused value: `recordIsolating` deals with those) — until `deadline`, as long as the
   * leases could still be ours. After that the reaper owns the rows, and so do their outcomes.
   */
  private async writeWithRetries(outcomes: Outcome[], deadline: number): Promise<TransitionRow | undefined> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.store.finishOperations(outcomes, this.inline());
      } catch (error) {
        if (isDataError(error)) throw error;
        if (Date.now() >= deadline) {
          this.logger.error(
            "could not record outcomes before the lease ran out; the reaper takes the rows back",
            {
              operationIds: outcomes.map(({ id }) => id),
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
