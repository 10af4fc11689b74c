// Cancel and retry: each is one move of the target's rows (store/statements/transitions.ts), so
// two operators acting on the same rows at once — or an operator and the workers — never change a
// row twice or miss one. What a move did not change says why: not found, finished, or nothing to do.
import { isTerminal } from "./domain/status";
import { ConflictError, NotFoundError } from "./errors";
import { TOPICS } from "./outbox/events";
import { withDatabase } from "./store/database-errors";
import type { Inline, WrittenEvent } from "./store/statements/outbox";
import type { Store } from "./store/store";
import type { BatchView, OperationView } from "./store/views";

export interface CancelResult {
  /** `cancelled`: it was pending and is cancelled now. `cancel_requested`: it is running; its signal fires. */
  state: "cancelled" | "cancel_requested";
  operation: OperationView;
}

export interface ControlContext {
  store: Store;
  /** Runs `fn` in an interactive transaction, with the store on it. */
  transaction<R>(fn: (store: Store) => Promise<R>): Promise<R>;
  inline: () => Inline;
  /** Delivers (and, with the sync backend, runs) what a committed change wrote. */
  afterCommit: (events: WrittenEvent[]) => Promise<unknown>;
}

// A move that changed nothing because a concurrent change got there first may find the row in a
// state it can act on when it looks again; this many looks settle any real race.
const LOOKS = 3;

export async function cancelOperation(
  ctx: ControlContext,
  tenantId: string,
  id: string,
): Promise<CancelResult> {
  const target = { operationId: id, tenantId };
  for (let look = 1; ; look++) {
    const moved = await withDatabase("cancelOperation", () => ctx.store.cancelTarget(target, ctx.inline()));
    if (moved.changed > 0) {
      await ctx.afterCommit(moved.events);
      const state = moved.rows[0]!.status === "cancelled" ? "cancelled" : "cancel_requested";
      return { state, operation: await readOperation(ctx, tenantId, id) };
    }
    const operation = await readOperation(ctx, tenantId, id);
    if (isTerminal(operation.status)) {
      throw new ConflictError(`operation ${id} is already ${operation.status}`, "operation_finished");
    }
    if (operation.status === "processing" && operation.cancelRequestedAt) {
      return { state: "cancel_requested", operation }; // asked already: the same answer again
    }
    if (look >= LOOKS)
      throw new ConflictError(`operation ${id} kept changing; try again`, "concurrent_update");
  }
}

export async function cancelBatch(
  ctx: ControlContext,
  tenantId: string,
  batchId: string,
): Promise<BatchView> {
  const moved = await withDatabase("cancelBatch", () =>
    ctx.store.cancelTarget({ batchId, tenantId }, ctx.inline()),
  );
  await ctx.afterCommit(moved.events);
  const batch = await readBatch(ctx, tenantId, batchId);
  // Nothing to cancel: either every child has finished, or every running one was asked already.
  if (moved.changed === 0 && isTerminal(batch.status)) {
    throw new ConflictError(`batch ${batchId} is already ${batch.status}`, "batch_finished");
  }
  return batch;
}

export async function retryOperation(
  ctx: ControlContext,
  tenantId: string,
  id: string,
): Promise<OperationView> {
  const moved = await withDatabase("retryOperation", () =>
    ctx.transaction((store) => store.requeueTarget({ operationId: id, tenantId }, ctx.inline())),
  );
  if (moved.changed === 0) {
    const operation = await readOperation(ctx, tenantId, id);
    throw new ConflictError(
      `operation ${id} is ${operation.status}; only failed or cancelled ones can be retried`,
      "not_retryable",
    );
  }
  await ctx.afterCommit(moved.events);
  return readOperation(ctx, tenantId, id);
}

export async function retryBatch(ctx: ControlContext, tenantId: string, batchId: string): Promise<BatchView> {
  const events = await withDatabase("retryBatch", () =>
    ctx.transaction(async (store) => {
      const moved = await store.requeueTarget({ batchId, tenantId }, ctx.inline());
      if (moved.changed === 0) return null;
      const batch = (await store.readBatch(tenantId, batchId))!;
      const retried = await store.insertEvents(
        [
          {
            tenantId,
            topic: TOPICS.batchRetried,
            aggregateId: batchId,
            payload: { batchId, type: batch.type, retried: moved.changed, episode: batch.episode },
          },
        ],
        ctx.inline(),
      );
      return [...moved.events, ...retried];
    }),
  );
  if (!events) {
    await readBatch(ctx, tenantId, batchId); // not found, or:
    throw new ConflictError(`batch ${batchId} has no failed or cancelled children to retry`, "not_retryable");
  }
  await ctx.afterCommit(events);
  return readBatch(ctx, tenantId, batchId);
}

async function readOperation(ctx: ControlContext, tenantId: string, id: string): Promise<OperationView> {
  const operation = await withDatabase("getOperation", () => ctx.store.readOperation(tenantId, id));
  if (!operation) throw new NotFoundError("operation", id);
  return operation;
}

async function readBatch(ctx: ControlContext, tenantId: string, id: string): Promise<BatchView> {
  const batch = await withDatabase("getBatch", () => ctx.store.readBatch(tenantId, id));
  if (!batch) throw new NotFoundError("batch", id);
  return batch;
}

export { readBatch, readOperation };
