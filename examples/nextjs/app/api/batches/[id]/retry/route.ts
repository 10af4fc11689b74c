import { operations } from "../../../../../lib/operations";
import { route, type IdParams } from "../../../../../lib/route";

/** POST /api/batches/:id/retry — re-run the failed and cancelled children; 409 when there are none. */
export const POST = route(async (tenantId, _request, { params }: IdParams) =>
  operations.retryBatch(tenantId, (await params).id),
);
