import { operations } from "../../../lib/operations";

/** GET /api/metrics — Prometheus text (protect it as you would any operational endpoint). */
export async function GET(): Promise<Response> {
  return new Response(await operations.metrics(), {
    headers: { "content-type": "text/plain; version=0.0.4" },
  });
}
