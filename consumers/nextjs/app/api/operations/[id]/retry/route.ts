import { operations } from "@/lib/operations";
import { route, type IdContext } from "@/lib/route";

/** POST /api/operations/:id/retry — runs a failed or cancelled operation again; 409 otherwise. */
export const POST = route(async (tenantId, _request, { params }: IdContext) =>
  operations.retryOperation(tenantId, (await params).id),
);
