// The rows a worker claimed ahead of its free slots, in the order they start. Claims are fair
// across (type, tenant) queues in the database; with a large prefetch the wait in this queue
// matters as much, so a fair worker keeps the rows per queue here too and starts them round-robin
// (deficit round-robin, weighted like the claim): a small tenant's row claimed behind 400 of a big
// tenant's starts at the next free slot, not after them. Each queue keeps its claim order.
import type { ClaimedRow, QueueKey } from "../store/statements/claims";

export const keyOf = (queue: QueueKey) => `${queue.type}\u0000${queue.tenantId}`;

export interface LocalQueue {
  readonly length: number;
  push(rows: readonly ClaimedRow[]): void;
  /** Whether rows of this (type, tenant) queue wait here. */
  holds(queue: QueueKey): boolean;
  /** The next row to start, or undefined when empty. */
  shift(): ClaimedRow | undefined;
  /** Takes every row out (at stop: they are handed back). */
  takeAll(): ClaimedRow[];
}

export function localQueue(options: {
  fair: boolean;
  weights?: Readonly<Record<string, number>>;
}): LocalQueue {
  return options.fair ? new RoundRobinQueue(options.weights ?? {}) : new FifoQueue();
}

class FifoQueue implements LocalQueue {
  private rows: ClaimedRow[] = [];

  get length(): number {
    return this.rows.length;
  }

  push(rows: readonly ClaimedRow[]): void {
    this.rows.push(...rows);
  }

  holds(queue: QueueKey): boolean {
    return this.rows.some((row) => row.type === queue.type && row.tenantId === queue.tenantId);
  }

  shift(): ClaimedRow | undefined {
    return this.rows.shift();
  }

  takeAll(): ClaimedRow[] {
    return this.rows.splice(0);
  }
}

class RoundRobinQueue implements LocalQueue {
  /** Per (type, tenant), in claim order; `order` lists the non-empty ones in turn order. */
  private readonly queues = new Map<string, ClaimedRow[]>();
  private readonly order: string[] = [];
  /** Rows a queue may still start in its current turn (its weight added at each turn). */
  private readonly credit = new Map<string, number>();
  private at = 0;
  private count = 0;

  constructor(private readonly weights: Readonly<Record<string, number>>) {}

  get length(): number {
    return this.count;
  }

  push(rows: readonly ClaimedRow[]): void {
    for (const row of rows) {
      const key = keyOf(row);
      let queue = this.queues.get(key);
      if (!queue) {
        queue = [];
        this.queues.set(key, queue);
        this.credit.set(key, 0);
        this.order.push(key);
      }
      queue.push(row);
      this.count++;
    }
  }

  holds(queue: QueueKey): boolean {
    return this.queues.has(keyOf(queue));
  }

  shift(): ClaimedRow | undefined {
    while (this.order.length > 0) {
      if (this.at >= this.order.length) this.at = 0;
      const key = this.order[this.at]!;
      const queue = this.queues.get(key)!;
      let credit = this.credit.get(key)!;
      if (credit < 1) {
        credit += weightOf(this.weights, queue[0]!.tenantId);
        if (credit < 1) {
          this.credit.set(key, credit); // a weight below 1: this queue starts a row every few turns
          this.at++;
          continue;
        }
      }
      const row = queue.shift()!;
      this.count--;
      credit -= 1;
      if (queue.length === 0) {
        this.queues.delete(key);
        this.credit.delete(key);
        this.order.splice(this.at, 1);
      } else {
        this.credit.set(key, credit);
        if (credit < 1) this.at++;
      }
      return row;
    }
    return undefined;
  }

  takeAll(): ClaimedRow[] {
    const rows: ClaimedRow[] = [];
    for (let row = this.shift(); row; row = this.shift()) rows.push(row);
    return rows;
  }
}

/** A tenant's weight: its own entry only (a tenant named "constructor" is not Object's). */
function weightOf(weights: Readonly<Record<string, number>>, tenantId: string): number {
  return Object.hasOwn(weights, tenantId) ? weights[tenantId]! : 1;
}
