import { operations } from "@/lib/operations";

export const dynamic = "force-dynamic"; // read on every request, never prerendered at build time

/** GET /api/metrics — queue depth as Prometheus text (protect it like any operational endpoint). */
export async function GET(): Promise<Response> {
  return new Response(await operations.metrics(), {
    headers: { "content-type": "text/plain; version=0.0.4" },
  });
}
