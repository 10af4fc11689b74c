// Records delivery outcomes as a group commit: while one statement is in flight, the outcomes that
// arrive meanwhile wait and go together in the next — two or three statements for a relay's pass,
// one for many concurrent submits, and no added delay when idle.

/** Items recorded per statement at most: more wait for the next. */
const MAX_PER_STATEMENT = 1_000;

interface Waiting<T> {
  items: readonly T[];
  recorded(): void;
}

export class GroupCommit<T> {
  private readonly waiting: Waiting<T>[] = [];
  private flushing = false;

  /** `record` reports its own failure (an outcome left unrecorded is only delivered again). */
  constructor(private readonly record: (items: readonly T[]) => Promise<void>) {}

  /** Queues items for the next statement; resolves once that statement has run. */
  add(items: readonly T[]): Promise<void> {
    if (items.length === 0) return Promise.resolve();
    return new Promise((recorded) => {
      this.waiting.push({ items, recorded });
      if (!this.flushing) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    while (this.waiting.length > 0) {
      const group = this.nextGroup();
      try {
        await this.record(group.flatMap((waiting) => waiting.items));
      } catch {
        // (a throwing logger, say) nothing more to do: what was not recorded is delivered again
      } finally {
        for (const waiting of group) waiting.recorded();
      }
    }
    this.flushing = false;
  }

  /** Whole callers' items, oldest first, up to MAX_PER_STATEMENT (at least one caller's). */
  private nextGroup(): Waiting<T>[] {
    let count = 0;
    let taken = 0;
    while (taken < this.waiting.length) {
      const size = this.waiting[taken]!.items.length;
      if (taken > 0 && count + size > MAX_PER_STATEMENT) break;
      count += size;
      taken++;
    }
    return this.waiting.splice(0, taken);
  }
}
