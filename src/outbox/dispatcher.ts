// Delivers outbox events to their subscribers and records the outcome on the outbox row. Used
// right after a commit (inline) and by the relay for whatever was left undelivered.
import { backoffDelayMs, type BackoffPolicy } from "../domain/backoff";
import { errorMessage } from "../errors";
import type { Logger } from "../logger";
import { markEventFailed, markEventsDispatched, type Db } from "../store/repository";
import type { OutboxRow } from "../store/sql";
import { toDeliveredEvent, type DeliveredEvent, type EventSubscriber } from "./events";

export interface OutboxPolicy {
  /** Delivery attempts before an event is marked dead. Default 12. */
  maxAttempts: number;
  /** Delay between delivery attempts. Default 1 s doubling to 10 min, half of it jitter. */
  backoff: BackoffPolicy;
  /**
   * How long the process that committed an event has to deliver it itself before the relay may
   * take it (the relay would otherwise race the inline delivery). Default 60 s.
   */
  inlineLeaseMs: number;
}

export const DEFAULT_OUTBOX_POLICY: OutboxPolicy = {
  maxAttempts: 12,
  backoff: { baseMs: 1_000, maxMs: 10 * 60_000, jitter: 0.5 },
  inlineLeaseMs: 60_000,
};

/** What happened to the events a commit (or a relay pass) handed over. */
export interface DispatchReport {
  delivered: string[];
  failed: { eventId: string; topic: string; error: string; dead: boolean }[];
}

/** Some subscribers of an event failed; the message names each with its error. */
export class DeliveryError extends Error {
  constructor(readonly failures: readonly string[]) {
    super(failures.join("; "));
    this.name = "DeliveryError";
  }
}

export class OutboxDispatcher {
  constructor(
    private readonly db: Db,
    private readonly subscribers: readonly EventSubscriber[],
    readonly policy: OutboxPolicy,
    private readonly logger: Logger,
  ) {}

  /** Hands one event to every subscriber of its topic; throws if any of them failed. */
  async deliver(event: DeliveredEvent): Promise<void> {
    const failures: string[] = [];
    for (const subscriber of this.subscribers) {
      if (subscriber.topics && !subscriber.topics.includes(event.topic)) continue;
      try {
        await subscriber.deliver(event);
      } catch (error) {
        failures.push(`${subscriber.name}: ${errorMessage(error)}`);
      }
    }
    if (failures.length) throw new DeliveryError(failures);
  }

  /** Delivers events this process has just committed. Never throws: failures stay for the relay. */
  dispatchCommitted(rows: readonly OutboxRow[]): Promise<DispatchReport> {
    return this.deliverAll(rows, true);
  }

  /** Delivers events the relay has claimed (their attempt already counted). Never throws. */
  dispatchClaimed(rows: readonly OutboxRow[]): Promise<DispatchReport> {
    return this.deliverAll(rows, false);
  }

  private async deliverAll(rows: readonly OutboxRow[], countAttempt: boolean): Promise<DispatchReport> {
    const report: DispatchReport = { delivered: [], failed: [] };
    for (const row of rows) {
      const attempt = countAttempt ? row.attempts + 1 : row.attempts;
      try {
        await this.deliver(toDeliveredEvent(row, attempt));
        report.delivered.push(row.id);
      } catch (error) {
        const dead = attempt >= this.policy.maxAttempts;
        const message = errorMessage(error);
        report.failed.push({ eventId: row.id, topic: row.topic, error: message, dead });
        this.logger.warn(
          dead ? "outbox event is dead after its last attempt" : "outbox delivery failed; will retry",
          {
            eventId: row.id,
            topic: row.topic,
            attempt,
            error: message,
          },
        );
        const retryDelayMs = dead ? null : backoffDelayMs(attempt, this.policy.backoff);
        await markEventFailed(this.db, row.id, message, retryDelayMs, countAttempt).catch((markError) =>
          this.logger.error("could not record a failed delivery; the relay will retry it", {
            eventId: row.id,
            error: errorMessage(markError),
          }),
        );
      }
    }
    // Delivered but not marked (the database went away) only means one more delivery later.
    await markEventsDispatched(this.db, report.delivered, countAttempt).catch((error) =>
      this.logger.error("could not record delivered events; they will be delivered again", {
        eventIds: report.delivered,
        error: errorMessage(error),
      }),
    );
    return report;
  }
}
