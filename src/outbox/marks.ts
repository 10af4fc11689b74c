// Records successful deliveries: a group commit. While one mark statement is in flight, the
// deliveries that succeed meanwhile wait and go together in the next — two or three statements for
// a relay's pass, one for many concurrent submits, and no added delay when idle.
import type { DeliveryRef } from "../store/statements/outbox";

/** Deliveries recorded per statement at most: a larger backlog goes in several. */
const MAX_PER_STATEMENT = 1_000;

interface Waiting {
  refs: readonly DeliveryRef[];
  recorded(): void;
}

export class DeliveryMarks {
  private readonly waiting: Waiting[] = [];
  private flushing = false;

  /** `record` reports its own failure (a delivery left unmarked is only delivered again). */
  constructor(private readonly record: (refs: readonly DeliveryRef[]) => Promise<void>) {}

  /** Queues deliveries for the next mark statement; resolves once that statement has run. */
  add(refs: readonly DeliveryRef[]): Promise<void> {
    if (refs.length === 0) return Promise.resolve();
    return new Promise((recorded) => {
      this.waiting.push({ refs, recorded });
      if (!this.flushing) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    while (this.waiting.length > 0) {
      const group = this.nextGroup();
      try {
        await this.record(group.flatMap((waiting) => waiting.refs));
      } catch {
        // (a throwing logger, say) nothing more to do: what was not marked is delivered again
      } finally {
        for (const waiting of group) waiting.recorded();
      }
    }
    this.flushing = false;
  }

  /** Whole callers' deliveries, oldest first, up to MAX_PER_STATEMENT (at least one caller's). */
  private nextGroup(): Waiting[] {
    let count = 0;
    let taken = 0;
    while (taken < this.waiting.length) {
      const size = this.waiting[taken]!.refs.length;
      if (taken > 0 && count + size > MAX_PER_STATEMENT) break;
      count += size;
      taken++;
    }
    return this.waiting.splice(0, taken);
  }
}
