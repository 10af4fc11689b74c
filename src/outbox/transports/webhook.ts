// Outbox events as signed HTTP POSTs. A non-2xx answer, a timeout or a network error fails the
// delivery: the outbox retries it with backoff and marks it dead after its last attempt.
import { createHmac, timingSafeEqual } from "node:crypto";
import type { DeliveredEvent, EventSubscriber } from "../events";

export interface WebhookOptions {
  url: string;
  /** Shared secret for the HMAC-SHA256 signature. */
  secret: string;
  /** The subscriber's name: its delivery state is kept under it, so keep it stable. Default `webhook:<origin><path>`. */
  name?: string;
  /** Topics to send; all when absent. */
  topics?: readonly string[];
  /** Abort a request after this long. Default 10,000 ms. */
  timeoutMs?: number;
  /** Extra headers (e.g. an API key the receiver wants). */
  headers?: Record<string, string>;
}

/** The header carrying `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`. */
export const SIGNATURE_HEADER = "x-operations-signature";
export const EVENT_ID_HEADER = "x-operations-event-id";

function sign(secret: string, timestamp: number, body: string): string {
  return createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex");
}

/** The JSON body a webhook receives for an event. */
export function webhookBody(event: DeliveredEvent): string {
  return JSON.stringify({
    id: event.id,
    topic: event.topic,
    tenantId: event.tenantId,
    aggregateId: event.aggregateId,
    payload: event.payload,
    attempt: event.attempt,
    createdAt: event.createdAt,
  });
}

/** Delivers events by HTTP POST, signed; the receiver de-duplicates on the event id header. */
export function webhookSubscriber(options: WebhookOptions): EventSubscriber {
  const timeoutMs = options.timeoutMs ?? 10_000;
  return {
    name: options.name ?? `webhook:${new URL(options.url).origin}${new URL(options.url).pathname}`,
    topics: options.topics,
    async deliver(event) {
      const body = webhookBody(event);
      const timestamp = Math.floor(Date.now() / 1000);
      const response = await fetch(options.url, {
        method: "POST",
        body,
        redirect: "error",
        signal: AbortSignal.timeout(timeoutMs),
        headers: {
          ...options.headers,
          "content-type": "application/json",
          "user-agent": "prisma-operations-webhook",
          [EVENT_ID_HEADER]: event.id,
          [SIGNATURE_HEADER]: `t=${timestamp},v1=${sign(options.secret, timestamp, body)}`,
        },
      });
      await response.arrayBuffer().catch(() => undefined); // free the connection
      if (!response.ok) throw new Error(`answered HTTP ${response.status}`);
    },
  };
}

/**
 * For the receiving side: true when `signatureHeader` signs `body` with `secret` and its
 * timestamp is within `toleranceSeconds` of now (which stops replays of old requests).
 */
export function verifyWebhookSignature(
  body: string,
  signatureHeader: string | null | undefined,
  secret: string,
  toleranceSeconds = 300,
  nowSeconds = Math.floor(Date.now() / 1000),
): boolean {
  const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(signatureHeader ?? "");
  if (!match) return false;
  const timestamp = Number(match[1]);
  if (Math.abs(nowSeconds - timestamp) > toleranceSeconds) return false;
  const expected = Buffer.from(sign(secret, timestamp, body), "hex");
  return timingSafeEqual(expected, Buffer.from(match[2]!, "hex"));
}
