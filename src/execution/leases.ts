// Keeps a worker's claims alive: extends their leases every interval, and tells the worker which of
// them were asked to cancel (a fallback for NOTIFY), which are gone (expired and reaped, or taken
// over) so their handlers' signals can fire, and which were extended, so that its fence
// (LeaseFence) moves their local deadlines on. Each beat also marks the worker seen in the registry.
import { localLeaseDeadline } from "../domain/lease";
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
    private readonly on: {
      cancelRequested(lockToken: string): void;
      lost(lockToken: string): void;
      /** The leases of `lockTokens` were extended by a heartbeat sent at `sentAt` (performance.now()). */
      extended(lockTokens: readonly string[], sentAt: number): void;
    },
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
    const sentAt = performance.now();
    try {
      alive = await this.store.heartbeat(claims, this.leaseMs);
    } catch (error) {
      this.logger.warn("heartbeat failed; leases run on", { error: errorMessage(error) });
      return;
    }
    const aliveTokens = new Set(alive.map((claim) => claim.lockToken));
    this.on.extended([...aliveTokens], sentAt);
    for (const claim of alive) if (claim.cancelRequested) this.on.cancelRequested(claim.lockToken);
    // Not extended: the lease is gone (expired and reaped, or taken over) — even if the same worker
    // has claimed the row again since, under a new token.
    for (const claim of claims) if (!aliveTokens.has(claim.lockToken)) this.on.lost(claim.lockToken);
  }
}

/**
 * A worker's fence: each claim's local deadline (domain/lease.ts), from when the statement that
 * granted or last extended its lease was sent. When a deadline passes, `expired` is called for that
 * claim, once — whether the heartbeats failed, hung, or never ran — so the worker stops its handler
 * before the lease can run out and the row be given to another worker.
 */
export class LeaseFence {
  private readonly deadlines = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;

  constructor(
    private readonly leaseMs: number,
    private readonly expired: (lockToken: string) => void,
  ) {}

  /**
   * New claims, granted by a statement sent at `sentAt` (performance.now()). When its answer came
   * back past their deadline (a claim held up in the network), they expire here and now, before
   * any of them can start.
   */
  granted(lockTokens: readonly string[], sentAt: number): void {
    const deadline = localLeaseDeadline(sentAt, this.leaseMs);
    if (deadline <= performance.now()) {
      for (const token of lockTokens) this.expired(token);
      return;
    }
    for (const token of lockTokens) this.deadlines.set(token, deadline);
    this.schedule();
  }

  /** Leases extended by a statement sent at `sentAt`; a claim whose deadline has passed stays expired. */
  extended(lockTokens: readonly string[], sentAt: number): void {
    const deadline = localLeaseDeadline(sentAt, this.leaseMs);
    for (const token of lockTokens) {
      const current = this.deadlines.get(token);
      if (current !== undefined && current < deadline) this.deadlines.set(token, deadline);
    }
  }

  /** The claim is over (its outcome recorded, or given up): nothing to fence any more. */
  released(lockToken: string): void {
    this.deadlines.delete(lockToken);
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
    this.deadlines.clear();
  }

  private schedule(): void {
    let next = Infinity;
    for (const deadline of this.deadlines.values()) next = Math.min(next, deadline);
    if (next >= this.timerAt) return;
    clearTimeout(this.timer);
    this.timerAt = next;
    if (next === Infinity) return;
    this.timer = setTimeout(() => this.check(), Math.max(0, next - performance.now()));
  }

  private check(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = performance.now();
    for (const [token, deadline] of this.deadlines) {
      if (deadline > now) continue;
      this.deadlines.delete(token);
      this.expired(token);
    }
    this.schedule();
  }
}
