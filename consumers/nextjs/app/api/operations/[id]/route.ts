import { operations } from "@/lib/operations";
import { route, type IdContext } from "@/lib/route";

/** GET /api/operations/:id */
export const GET = route(async (tenantId, _request, { params }: IdContext) =>
  operations.getOperation(tenantId, (await params).id),
);

/** DELETE /api/operations/:id — cancels a pending operation at once, a running one by its signal; 409 when finished. */
export const DELETE = route(async (tenantId, _request, { params }: IdContext) =>
  operations.cancelOperation(tenantId, (await params).id),
);
