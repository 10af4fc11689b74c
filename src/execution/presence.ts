// A worker's entry in the worker registry (operation_workers): written when it starts, refreshed on
// every heartbeat, marked stopped when it stops. Only operators read it (the dashboard's "workers
// seen", and "no worker handles this type"): a failed refresh is logged, never fatal to the work.
import { errorMessage } from "../errors";
import type { Logger } from "../logger";
import type { WorkerIdentity } from "../store/statements/workers";
import type { Store } from "../store/store";

export class WorkerPresence {
  constructor(
    private readonly store: Store,
    private readonly identity: WorkerIdentity,
    private readonly logger: Logger,
  ) {}

  /** At start: the row written afresh (started now, not stopped). */
  announce(): Promise<void> {
    return this.quietly("announce", () => this.store.announceWorker(this.identity));
  }

  /** On each heartbeat: seen now. */
  seen(): Promise<void> {
    return this.quietly("heartbeat", () => this.store.workerSeen(this.identity));
  }

  /** At a graceful stop. */
  stopped(): Promise<void> {
    return this.quietly("stop", () => this.store.workerStopped(this.identity.id));
  }

  private async quietly(what: string, write: () => Promise<void>): Promise<void> {
    try {
      await write();
    } catch (error) {
      this.logger.warn(`worker registry: ${what} not recorded`, {
        workerId: this.identity.id,
        error: errorMessage(error),
      });
    }
  }
}
