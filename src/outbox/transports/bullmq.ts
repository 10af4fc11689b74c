// Outbox events as BullMQ jobs on Redis — the queue many NestJS apps already run. `bullmq` is an
// optional dependency, loaded on the first delivery.
import type { ConnectionOptions, JobsOptions, Queue } from "bullmq";
import type { EventSubscriber } from "../events";

export interface BullMQOptions {
  /** The Redis connection (ioredis options, or an ioredis instance). */
  connection: ConnectionOptions;
  queueName: string;
  /** The subscriber's name: its delivery state is kept under it, so keep it stable. Default `bullmq:<queueName>`. */
  name?: string;
  /** Topics to send; all when absent. */
  topics?: readonly string[];
  /** Options for every job (attempts, removeOnComplete, …); the job id is always the event's. */
  jobOptions?: JobsOptions;
}

export interface BullMQSubscriber extends EventSubscriber {
  /** Closes the queue's Redis connection. */
  close(): Promise<void>;
}

/**
 * Adds each event as a job named after its topic, with the event as its data. The job id is
 * derived from the event id, so a redelivered event does not become a second job while the first
 * one is kept (see BullMQ's removeOnComplete).
 */
export function bullmqSubscriber(options: BullMQOptions): BullMQSubscriber {
  let queue: Promise<Queue> | undefined;
  const open = () =>
    (queue ??= import("bullmq").then(
      ({ Queue }) => new Queue(options.queueName, { connection: options.connection }),
    ));
  return {
    name: options.name ?? `bullmq:${options.queueName}`,
    topics: options.topics,
    async deliver(event) {
      const target = await open();
      await target.add(event.topic, event, { ...options.jobOptions, jobId: `event-${event.id}` });
    },
    async close() {
      if (queue) await (await queue).close();
    },
  };
}
