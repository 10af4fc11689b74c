import { operations } from "../../../../../lib/operations";
import { route, type IdParams } from "../../../../../lib/route";

/** POST /api/operations/:id/retry — run a failed or cancelled operation again; 409 otherwise. */
export const POST = route(async (tenantId, _request, { params }: IdParams) =>
  operations.retryOperation(tenantId, (await params).id),
);
