// Task backends, as in the seed system: what happens right after a submit commits.
//   sync   — runs the handlers inline, in the submitting process (tests, development)
//   worker — leaves the work to workers and wakes them with NOTIFY
import { hostname } from "node:os";
import { randomUUID } from "node:crypto";
import type { Logger } from "../logger";
import type { EventSubscriber } from "../outbox/events";
import { TOPICS } from "../outbox/events";
import { claimOperationsById, notify, pendingChildIds, type Db } from "../store/repository";
import type { OutboxRow } from "../store/sql";
import { runClaimed, type RunnerDeps } from "./runner";

/** The channel the `worker` backend notifies and workers listen on. */
export const WAKE_CHANNEL = "prisma_operations_wake";

const SUBMITTED_TOPICS = [TOPICS.batchSubmitted, TOPICS.operationSubmitted];

function submittedIds(db: Db, topic: string, aggregateId: string): Promise<string[]> {
  return topic === TOPICS.batchSubmitted ? pendingChildIds(db, aggregateId) : Promise.resolve([aggregateId]);
}

/**
 * Runs every submitted operation inline after commit, retrying failures at once (ignoring backoff)
 * until each is terminal. Events the runs write go to `dispatch`, which delivers them inline.
 */
export function syncBackend(
  deps: Omit<RunnerDeps, "workerId">,
  leaseMs: number,
  dispatch: (rows: OutboxRow[]) => Promise<unknown>,
): EventSubscriber {
  const workerId = `sync:${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const runner: RunnerDeps = { ...deps, workerId };
  return {
    name: "sync-backend",
    topics: SUBMITTED_TOPICS,
    async deliver(event) {
      const ids = await submittedIds(deps.db, event.topic, event.aggregateId);
      for (;;) {
        const claimed = await claimOperationsById(deps.db, ids, workerId, leaseMs);
        if (claimed.length === 0) return;
        for (const row of claimed) {
          const outcome = await runClaimed(runner, row, new AbortController().signal);
          if (outcome.events.length) await dispatch(outcome.events);
        }
      }
    },
  };
}

/** Wakes listening workers: one NOTIFY per submit, carrying the operation type. */
export function workerBackend(db: Db, logger: Logger): EventSubscriber {
  return {
    name: "worker-backend",
    topics: SUBMITTED_TOPICS,
    async deliver(event) {
      const type = (event.payload as { type?: unknown } | null)?.type;
      await notify(db, WAKE_CHANNEL, typeof type === "string" ? type : "");
      logger.debug("woke workers", { topic: event.topic, aggregateId: event.aggregateId });
    },
  };
}
