// A relay pass's hold on the deliveries it claimed. The claim is kept alive by extensions, and the
// relay acts on it only while its own clock says the lease still holds (domain/lease.ts): it
// starts no delivery past that, whether the extensions failed, hung, or were held up, so that
// another relay taking the deliveries over never delivers them beside it.
import { localLeaseDeadline } from "../domain/lease";
import { errorMessage } from "../errors";
import type { Logger } from "../logger";
import type { DeliveryRef } from "../store/statements/outbox";
import type { Store } from "../store/store";

/** What a delivery loop asks of the claims it works through (see OutboxDispatcher.deliverClaimed). */
export interface HeldDeliveries {
  /**
   * Resolves true when the next delivery may start: at least half a lease is left by this
   * process's clock, extending the claims first if not. False: stop, the claims may be lost.
   */
  confirm(): Promise<boolean>;
  /**
   * `ref`'s outcome is about to be recorded: it is extended no more, and an extension in flight
   * that names it has landed when this resolves — so that no extension lands after the record
   * (it would move a failed delivery's retry from its backoff to the end of a lease).
   */
  settling(ref: DeliveryRef): Promise<void>;
}

export class DeliveryLease implements HeldDeliveries {
  private readonly unsettled: Map<string, DeliveryRef>;
  private deadline: number;
  private extending: Promise<void> | undefined;
  private lost = false;

  constructor(
    private readonly store: Store,
    refs: readonly DeliveryRef[],
    private readonly leaseMs: number,
    /** When the claim was sent (performance.now()): its lease runs from no earlier. */
    claimSentAt: number,
    private readonly logger: Logger,
  ) {
    this.unsettled = new Map(refs.map((ref) => [ref.eventId, ref]));
    this.deadline = localLeaseDeadline(claimSentAt, leaseMs);
  }

  /**
   * Extends the claims not settled yet, one extension at a time (a call during one joins it). An
   * extension that changes fewer rows than it names means some were taken over: nothing more is
   * started on this claim.
   */
  extend(): Promise<void> {
    if (this.extending || this.lost || this.unsettled.size === 0) return this.extending ?? Promise.resolve();
    const refs = [...this.unsettled.values()];
    const sentAt = performance.now();
    this.extending = this.store
      .extendDeliveries(refs, this.leaseMs)
      .then(
        (changed) => {
          if (changed === refs.length)
            this.deadline = Math.max(this.deadline, localLeaseDeadline(sentAt, this.leaseMs));
          else this.lost = true;
        },
        (error: unknown) =>
          this.logger.warn("could not extend delivery claims", {
            subscriber: refs[0]!.subscriber,
            error: errorMessage(error),
          }),
      )
      .finally(() => {
        this.extending = undefined;
      });
    return this.extending;
  }

  async confirm(): Promise<boolean> {
    if (this.lost) return false;
    const left = this.deadline - performance.now();
    if (left >= this.leaseMs / 2) return true;
    if (left <= 0) return false;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.extend(),
      new Promise((resolve) => (timer = setTimeout(resolve, left))),
    ]).finally(() => clearTimeout(timer));
    return !this.lost && this.deadline > performance.now();
  }

  async settling(ref: DeliveryRef): Promise<void> {
    this.unsettled.delete(ref.eventId);
    await this.extending;
  }
}
