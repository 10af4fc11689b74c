// Records inline deliveries as delivered without making anyone wait for it: one statement at a
// time, and the deliveries that arrive while it is in flight go together in the next (a group
// commit of marks). A mark is bookkeeping: an event is owed until its row is marked, so a mark
// that is lost (the process ends first, the database goes away) only means the relay delivers the
// event again once its inline lease runs out, which at-least-once delivery allows.
import { errorMessage } from "../errors";
import type { Logger } from "../logger";
import type { DeliveryRef } from "../store/statements/outbox";
import type { Store } from "../store/store";

/** Most deliveries one mark statement records. */
const MAX_PER_STATEMENT = 1_000;

export class DeliveryMarks {
  private readonly queue: DeliveryRef[] = [];
  private flushing: Promise<void> | undefined;

  constructor(
    private readonly store: Store,
    private readonly logger: Logger,
  ) {}

  /** Queues deliveries to be recorded; the statement is sent at once unless one is in flight. */
  add(refs: readonly DeliveryRef[]): void {
    if (refs.length === 0) return;
    this.queue.push(...refs);
    this.flushing ??= this.flush();
  }

  /** Resolves once every delivery queued so far has been recorded (or failed to be, and was logged). */
  async settled(): Promise<void> {
    await this.flushing;
  }

  private async flush(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const refs = this.queue.splice(0, MAX_PER_STATEMENT);
        await this.store.markDelivered(refs).catch((error: unknown) =>
          this.logger.error("could not record delivered events; they will be delivered again", {
            deliveries: refs.map((ref) => `${ref.eventId}:${ref.subscriber}`),
            error: errorMessage(error),
          }),
        );
      }
    } finally {
      this.flushing = undefined;
    }
  }
}
