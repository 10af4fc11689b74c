import { operations } from "@/lib/operations";
import { route, type IdContext } from "@/lib/route";

/** POST /api/batches/:id/retry — runs the failed and cancelled children again; 409 when there are none. */
export const POST = route(async (tenantId, _request, { params }: IdContext) =>
  operations.retryBatch(tenantId, (await params).id),
);
