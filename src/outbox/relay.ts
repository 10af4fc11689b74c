// Delivers what inline dispatch left behind (a crash after commit, a failed subscriber): polls
// due events with FOR UPDATE SKIP LOCKED, so any number of relays can run on any number of nodes.
import { errorMessage } from "../errors";
import type { Logger } from "../logger";
import { claimDueEvents, type Db } from "../store/repository";
import type { OutboxDispatcher } from "./dispatcher";
import { Loop } from "../loop";

export interface RelayOptions {
  /** Events claimed per pass. Default 100. */
  batchSize: number;
  /** Pause between passes that found less than a full batch. Default 1,000 ms. */
  pollIntervalMs: number;
  /** How long a claimed event stays with this relay before another may take it. Default 60 s. */
  leaseMs: number;
}

export const DEFAULT_RELAY_OPTIONS: RelayOptions = { batchSize: 100, pollIntervalMs: 1_000, leaseMs: 60_000 };

export interface RelayPass {
  claimed: number;
  delivered: number;
  failed: number;
}

export class OutboxRelay {
  private readonly loop: Loop;

  constructor(
    private readonly db: Db,
    private readonly dispatcher: OutboxDispatcher,
    private readonly options: RelayOptions,
    private readonly logger: Logger,
  ) {
    this.loop = new Loop(async () => {
      try {
        const pass = await this.runOnce();
        return pass.claimed === this.options.batchSize ? 0 : this.options.pollIntervalMs;
      } catch (error) {
        this.logger.error("outbox relay pass failed", { error: errorMessage(error) });
        return this.options.pollIntervalMs;
      }
    });
  }

  /** One pass: claims due events and delivers them. */
  async runOnce(): Promise<RelayPass> {
    const rows = await claimDueEvents(this.db, this.options.batchSize, this.options.leaseMs);
    if (rows.length === 0) return { claimed: 0, delivered: 0, failed: 0 };
    const report = await this.dispatcher.dispatchClaimed(rows);
    return { claimed: rows.length, delivered: report.delivered.length, failed: report.failed.length };
  }

  /** Runs passes in the background until {@link stop}. */
  start(): this {
    this.loop.start();
    return this;
  }

  /** Runs the next pass now rather than after the poll interval. */
  wake(): void {
    this.loop.wake();
  }

  /** Stops after the pass in progress, if any. */
  stop(): Promise<void> {
    return this.loop.stop();
  }
}
