// Delivers outbox events to this process's subscribers and records the outcomes: right after a
// commit (inline: the events the commit held for them, each hold settled in one go) and for the
// relay (the delivery rows it claimed, each outcome on its own row).
import { backoffDelayMs, type BackoffPolicy } from "../domain/backoff";
import { storableText } from "../domain/json";
import { errorMessage, OperationsError } from "../errors";
import type { Logger } from "../logger";
import type {
  ClaimedDelivery,
  DeliveryRef,
  HoldSettlement,
  Inline,
  OutboxEvent,
  WrittenEvent,
} from "../store/statements/outbox";
import type { Store } from "../store/store";
import type { HeldDeliveries } from "./delivery-lease";
import { toDeliveredEvent, type EventSubscriber } from "./events";
import { GroupCommit } from "./group-commit";

export interface OutboxPolicy {
  /** Delivery attempts per subscriber before its delivery is marked dead. Default 12. */
  maxAttempts: number;
  /** Delay between delivery attempts. Default 1 s doubling to 10 min, half of it jitter. */
  backoff: BackoffPolicy;
  /**
   * How long the process that committed an event has to deliver it to its own subscribers before
   * a relay may take those deliveries over (the relay would otherwise race the inline delivery).
   * Default 60 s.
   */
  inlineLeaseMs: number;
  /**
   * A subscriber's `deliver` that has not settled by then counts as a failed attempt, so that a
   * hung endpoint cannot hold its deliveries (which a live relay keeps claimed) for ever. It may
   * still complete: delivery is at least once. Default 60 s.
   */
  deliveryTimeoutMs: number;
}

export const DEFAULT_OUTBOX_POLICY: OutboxPolicy = {
  maxAttempts: 12,
  backoff: { baseMs: 1_000, maxMs: 10 * 60_000, jitter: 0.5 },
  inlineLeaseMs: 60_000,
  deliveryTimeoutMs: 60_000,
};

/** Runs `deliver`, or rejects once `timeoutMs` has passed without it settling. */
async function withDeadline(deliver: () => Promise<void> | void, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`delivery timed out after ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([Promise.resolve().then(deliver), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** What happened to the deliveries a commit (or a relay pass) handed over. */
export interface DispatchReport {
  delivered: { eventId: string; subscriber: string }[];
  failed: { eventId: string; topic: string; subscriber: string; error: string; dead: boolean }[];
}

/** A subscriber threw; the message names it with its error. */
export class DeliveryError extends Error {
  constructor(
    readonly subscriber: string,
    cause: unknown,
  ) {
    super(`${subscriber}: ${errorMessage(cause)}`, { cause });
    this.name = "DeliveryError";
  }
}

/** Subscriber names identify delivery rows across processes and restarts: no spaces or control characters. */
// eslint-disable-next-line no-control-regex
const SUBSCRIBER_NAME = /^[^\s\x00-\x1f\x7f]{1,200}$/;

function checkSubscribers(subscribers: readonly EventSubscriber[]): void {
  const seen = new Set<string>();
  for (const subscriber of subscribers) {
    if (typeof subscriber.name !== "string" || !SUBSCRIBER_NAME.test(subscriber.name)) {
      throw new OperationsError(
        "invalid_options",
        `subscriber name ${JSON.stringify(subscriber.name)} must be 1–200 characters without spaces or control characters`,
      );
    }
    if (seen.has(subscriber.name)) {
      throw new OperationsError("invalid_options", `two subscribers are named "${subscriber.name}"`);
    }
    seen.add(subscriber.name);
  }
}

export class OutboxDispatcher {
  private readonly byName: Map<string, EventSubscriber>;
  private registration: Promise<void> | undefined;
  /** Every relayed success of this process goes through one group commit… */
  private readonly marks = new GroupCommit<DeliveryRef>((refs) =>
    // Delivered but not recorded (the database went away) only means one more delivery later.
    this.recordOrLog(
      () => this.store.markDelivered(refs),
      "could not record delivered events; they will be delivered again",
      {
        deliveries: refs.map((ref) => `${ref.eventId}:${ref.subscriber}`),
      },
    ),
  );
  /** …and every settled hold through another: inline deliveries after any commit of this process. */
  private readonly settles = new GroupCommit<HoldSettlement>((settlements) =>
    // Not settled (the database went away): the holds run out, and the relays deliver them again.
    this.recordOrLog(
      () => this.store.settleHolds(settlements),
      "could not settle held deliveries; they will be delivered again",
      {
        holds: settlements.map((settlement) => settlement.hold),
      },
    ),
  );

  constructor(
    private readonly store: Store,
    readonly subscribers: readonly EventSubscriber[],
    readonly policy: OutboxPolicy,
    private readonly logger: Logger,
  ) {
    checkSubscribers(subscribers);
    this.byName = new Map(subscribers.map((subscriber) => [subscriber.name, subscriber]));
  }

  /** This process's subscribers deliver inline after commit: how writes should hold their deliveries. */
  get inline(): Inline {
    return { subscribers: [...this.byName.keys()], leaseMs: this.policy.inlineLeaseMs };
  }

  /**
   * Registers this process's subscribers (once; again after a failure), so that every event
   * written from then on — by any process — is owed to each of them that wants its topic.
   */
  ready(): Promise<void> {
    this.registration ??= this.store
      .registerSubscribers(this.subscribers.map(({ name, topics }) => ({ name, topics })))
      .catch((error: unknown) => {
        this.registration = undefined;
        throw error;
      });
    return this.registration;
  }

  /**
   * Delivers events this process has just committed to its own subscribers they were held for,
   * then settles the holds (a failure gets a delivery row there, for the relays). Resolves once the
   * holds are settled. Never throws.
   */
  async dispatchCommitted(events: readonly WrittenEvent[]): Promise<DispatchReport> {
    const report: DispatchReport = { delivered: [], failed: [] };
    const failuresByHold = new Map<string, HoldSettlement["failures"][number][]>();
    for (const event of events) {
      for (const { subscriber, hold } of event.heldFor) {
        const failures = failuresByHold.get(hold) ?? [];
        failuresByHold.set(hold, failures);
        const failure = await this.attempt(event, subscriber, 1, report);
        if (failure) failures.push({ eventId: event.id, ...failure });
      }
    }
    await this.settles.add([...failuresByHold].map(([hold, failures]) => ({ hold, failures })));
    return report;
  }

  /**
   * Delivers deliveries a relay claimed for one subscriber, in order, each only once `held`
   * confirms the claim still holds (the rest stay claimed until their lease runs out, and a later
   * pass takes them). A failure is recorded before the next delivery; successes go to the group
   * commit while the next ones are delivered. Resolves once every outcome is recorded. Never throws.
   */
  async deliverClaimed(claimed: readonly ClaimedDelivery[], held: HeldDeliveries): Promise<DispatchReport> {
    const report: DispatchReport = { delivered: [], failed: [] };
    const recording: Promise<void>[] = [];
    for (const delivery of claimed) {
      if (!(await held.confirm())) break;
      const ref = {
        eventId: delivery.event.id,
        subscriber: delivery.subscriber,
        claimedAttempts: delivery.attempts,
      };
      const failure = await this.attempt(delivery.event, delivery.subscriber, delivery.attempt, report);
      if (!failure) {
        recording.push(held.settling(ref).then(() => this.marks.add([ref])));
        continue;
      }
      await held.settling(ref);
      await this.store.markFailed(ref, failure.error, failure.retryDelayMs).catch((markError: unknown) =>
        this.logger.error("could not record a failed delivery; the relay will retry it", {
          eventId: ref.eventId,
          subscriber: ref.subscriber,
          error: errorMessage(markError),
        }),
      );
    }
    await Promise.all(recording);
    return report;
  }

  /**
   * One delivery attempt. Undefined when the subscriber took the event; otherwise the failure to
   * record: its error and when to try again (null: never, the attempts are used up).
   */
  private async attempt(
    event: OutboxEvent,
    name: string,
    attempt: number,
    report: DispatchReport,
  ): Promise<{ error: string; retryDelayMs: number | null } | undefined> {
    const subscriber = this.byName.get(name);
    try {
      if (!subscriber) throw new Error(`no subscriber named "${name}" in this process`);
      await withDeadline(
        () => subscriber.deliver(toDeliveredEvent(event, attempt)),
        this.policy.deliveryTimeoutMs,
      );
      report.delivered.push({ eventId: event.id, subscriber: name });
      return undefined;
    } catch (error) {
      const failure = new DeliveryError(name, error);
      const dead = attempt >= this.policy.maxAttempts;
      report.failed.push({
        eventId: event.id,
        topic: event.topic,
        subscriber: name,
        error: failure.message,
        dead,
      });
      this.logger.warn(dead ? "delivery is dead after its last attempt" : "delivery failed; will retry", {
        eventId: event.id,
        topic: event.topic,
        subscriber: name,
        attempt,
        error: errorMessage(error),
      });
      return {
        error: storableText(errorMessage(error)),
        retryDelayMs: dead ? null : backoffDelayMs(attempt, this.policy.backoff),
      };
    }
  }

  /** Runs `record`; a failure is only logged, with `what` and `details` (what was not recorded is delivered again). */
  private async recordOrLog(
    record: () => Promise<unknown>,
    what: string,
    details: Record<string, unknown>,
  ): Promise<void> {
    await record().catch((error: unknown) =>
      this.logger.error(what, { ...details, error: errorMessage(error) }),
    );
  }
}
