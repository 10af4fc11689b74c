// Claims due operations for a worker and hands them to its slots: the producer of the worker
// runtime. It claims up to the free slots plus `prefetch` per query (FOR UPDATE SKIP LOCKED), keeps
// what it claimed ahead in a queue, and starts the next row as soon as a slot frees.
import { errorMessage } from "../errors";
import type { Logger } from "../logger";
import { Loop } from "../loop";
import type { ClaimedRow, ClaimPolicy } from "../store/statements/claims";
import type { Store } from "../store/store";

export interface ProducerOptions {
  workerId: string;
  /** Types this worker has handlers for: it claims nothing else. */
  types: readonly string[];
  concurrency: number;
  prefetch: number;
  batchSize: number;
  leaseMs: number;
  pollIntervalMs: number;
  /** How claims choose among due rows; a fair claim goes on where this producer's last one stopped. */
  policy: ClaimPolicy;
}

export class Producer {
  private readonly queue: ClaimedRow[] = [];
  private runningCount = 0;
  private stopping = false;
  private after: ClaimPolicy["after"];
  private readonly loop: Loop;

  constructor(
    private readonly store: Store,
    private readonly options: ProducerOptions,
    private readonly logger: Logger,
    /** Called with each claim's rows before any of them runs. */
    private readonly onClaimed: (rows: readonly ClaimedRow[]) => void,
    /** Runs a row; resolves when its slot is free again (its outcome may still be recording). */
    private readonly run: (row: ClaimedRow) => Promise<void>,
  ) {
    this.loop = new Loop(() => this.claim());
  }

  /** Handlers running now. */
  get running(): number {
    return this.runningCount;
  }

  start(): void {
    this.stopping = false;
    this.loop.start();
  }

  /** Claims again now (new work was notified, or a slot freed). */
  wake(): void {
    this.loop.wake();
  }

  /** Stops claiming (after the claim in flight) and returns the claimed rows that never started. */
  async stop(): Promise<ClaimedRow[]> {
    this.stopping = true;
    await this.loop.stop();
    return this.queue.splice(0);
  }

  private async claim(): Promise<number> {
    const { concurrency, prefetch, batchSize, pollIntervalMs } = this.options;
    const free = concurrency + prefetch - this.runningCount - this.queue.length;
    if (this.stopping || free <= 0) return pollIntervalMs; // woken when a slot frees
    const want = Math.min(batchSize, free);
    let rows: ClaimedRow[];
    try {
      rows = await this.store.claimDue(
        want,
        this.options.workerId,
        this.options.leaseMs,
        this.options.types,
        {
          ...this.options.policy,
          after: this.after,
        },
      );
    } catch (error) {
      this.logger.error("claim failed; retrying after the poll interval", { error: errorMessage(error) });
      return pollIntervalMs;
    }
    const last = rows[rows.length - 1];
    if (last) this.after = { type: last.type, tenantId: last.tenantId };
    this.onClaimed(rows);
    this.queue.push(...rows);
    this.pump();
    return rows.length === want ? 0 : pollIntervalMs;
  }

  private pump(): void {
    while (this.runningCount < this.options.concurrency && this.queue.length > 0) {
      const row = this.queue.shift()!;
      this.runningCount++;
      void this.run(row).finally(() => {
        this.runningCount--;
        this.pump();
        this.loop.wake();
      });
    }
  }
}
