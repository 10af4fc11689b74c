// Task backends, as in the seed system: what happens right after a submit (or a retry) commits.
//   sync   — runs the handlers inline, in the submitting process (tests, development)
//   worker — leaves the work to workers; the submit's own NOTIFY (WAKE_CHANNEL) has woken them
//            at commit, so there is nothing to do here.
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { TOPICS, type EventSubscriber } from "../outbox/events";
import { claimOperationsById, pendingChildIds, type Db } from "../store/repository";
import type { OutboxRow } from "../store/sql";
import { executeHandler, recordOutcomes, type ExecutionConfig } from "./runner";

/**
 * Events after which there is work to run. A batch retry is covered by the `operation.retried`
 * event each re-queued child gets; its `batch.retried` would only claim the same rows again.
 */
export const WORK_TOPICS: readonly string[] = [
  TOPICS.batchSubmitted,
  TOPICS.operationSubmitted,
  TOPICS.operationRetried,
];

function operationIdsOf(db: Db, topic: string, aggregateId: string): Promise<string[]> {
  return topic === TOPICS.batchSubmitted ? pendingChildIds(db, aggregateId) : Promise.resolve([aggregateId]);
}

/**
 * Runs every submitted operation inline after commit. Retries run at once (ignoring backoff) until
 * each operation is terminal; a snoozed one is left pending for a worker. Events the runs write
 * go to `dispatch`, which delivers them inline.
 */
export function syncBackend(
  db: Db,
  config: ExecutionConfig,
  leaseMs: number,
  eventDelayMs: number,
  dispatch: (rows: OutboxRow[]) => Promise<unknown>,
): EventSubscriber {
  const workerId = `sync:${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  return {
    name: "sync-backend",
    topics: WORK_TOPICS,
    async deliver(event) {
      let ids = await operationIdsOf(db, event.topic, event.aggregateId);
      while (ids.length) {
        const claimed = await claimOperationsById(db, ids, workerId, leaseMs);
        if (claimed.length === 0) return;
        for (const row of claimed) {
          const outcome = await executeHandler(config, row, new AbortController().signal);
          if (outcome.kind === "snoozed") ids = ids.filter((id) => id !== row.id);
          const transition = await recordOutcomes(db, [{ row, outcome }], workerId, eventDelayMs);
          if (transition.events.length) await dispatch(transition.events);
        }
      }
    },
  };
}
