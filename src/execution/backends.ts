// Task backends, as in the seed system: what happens right after a submit (or a retry) commits.
//   sync   — runs the handlers inline, in the submitting process (tests, development)
//   worker — leaves the work to workers; the submit's own NOTIFY (WAKE_CHANNEL) has woken them
//            at commit, so there is nothing to do here.
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { Logger } from "../logger";
import { TOPICS } from "../outbox/events";
import { typedDatabaseError } from "../store/database-errors";
import type { WrittenEvent } from "../store/statements/outbox";
import type { Inline } from "../store/statements/outbox";
import type { Store } from "../store/store";
import { recordIsolating } from "./completer";
import { executeHandler, type ExecutionConfig } from "./executor";
import { LazyAbortController } from "./lazy-abort";

/**
 * Events after which there is work to run. A batch retry is covered by the `operation.retried`
 * event each re-queued child gets; its `batch.retried` would only claim the same rows again.
 */
const WORK_TOPICS: ReadonlySet<string> = new Set([
  TOPICS.batchSubmitted,
  TOPICS.operationSubmitted,
  TOPICS.operationRetried,
]);

/**
 * Runs what a commit made runnable, inline, right after it: every operation of a submitted batch,
 * a submitted operation, a retried one. Retries run at once (ignoring backoff) until each
 * operation is terminal; a snoozed one is left pending for a worker. What the runs write goes to
 * `afterCommit`, as for any other write of this process.
 */
export function syncRunner(
  store: Store,
  config: ExecutionConfig,
  leaseMs: number,
  inline: () => Inline,
  afterCommit: (events: WrittenEvent[]) => Promise<unknown>,
  logger: Logger,
): (events: readonly WrittenEvent[]) => Promise<void> {
  const workerId = `sync:${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  return async (events) => {
    for (const event of events) {
      if (!WORK_TOPICS.has(event.topic)) continue;
      let ids =
        event.topic === TOPICS.batchSubmitted
          ? await store.childIds(event.aggregateId, "pending")
          : [event.aggregateId];
      while (ids.length) {
        const claimed = await store.claimById(ids, workerId, leaseMs);
        if (claimed.length === 0) break;
        for (const row of claimed) {
          const outcome = await executeHandler(config, row, new LazyAbortController());
          if (outcome.kind === "snoozed") ids = ids.filter((id) => id !== row.id);
          const written: WrittenEvent[] = [];
          try {
            // An outcome the database refuses is recorded failed with why, as a worker's is.
            await recordIsolating(
              [{ row, outcome }],
              (outcomes) => store.finishOperations(outcomes, inline()),
              (_, transition) => written.push(...transition.events),
              logger,
            );
          } catch (error) {
            throw typedDatabaseError(error, "recording an outcome of the sync backend");
          }
          if (written.length) await afterCommit(written);
        }
      }
    }
  };
}
