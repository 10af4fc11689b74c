// Keeps a worker's claims alive: extends their leases every interval, and tells the worker which of
// them were asked to cancel (a fallback for NOTIFY) and which are gone (expired and reaped, or taken
// over) so their handlers' signals can fire. Each beat also marks the worker seen in the registry.
import { errorMessage } from "../errors";
import type { Logger } from "../logger";
import { Loop } from "../loop";
import type { Store } from "../store/store";

export interface HeldClaim {
  id: string;
  lockToken: string;
}

export class LeaseKeeper {
  private readonly loop: Loop;

  constructor(
    private readonly store: Store,
    private readonly held: () => HeldClaim[],
    private readonly leaseMs: number,
    intervalMs: number,
    private readonly logger: Logger,
    private readonly on: { cancelRequested(lockToken: string): void; lost(lockToken: string): void },
    private readonly presence?: { seen(): Promise<void> },
  ) {
    this.loop = new Loop(async () => {
      await this.presence?.seen();
      await this.beat();
      return intervalMs;
    });
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  private async beat(): Promise<void> {
    const claims = this.held();
    if (claims.length === 0) return;
    let alive: { lockToken: string; cancelRequested: boolean }[];
    try {
      alive = await this.store.heartbeat(claims, this.leaseMs);
    } catch (error) {
      this.logger.warn("heartbeat failed; leases run on", { error: errorMessage(error) });
      return;
    }
    const aliveTokens = new Set(alive.map((claim) => claim.lockToken));
    for (const claim of alive) if (claim.cancelRequested) this.on.cancelRequested(claim.lockToken);
    // Not extended: the lease is gone (expired and reaped, or taken over) — even if the same worker
    // has claimed the row again since, under a new token.
    for (const claim of claims) if (!aliveTokens.has(claim.lockToken)) this.on.lost(claim.lockToken);
  }
}
