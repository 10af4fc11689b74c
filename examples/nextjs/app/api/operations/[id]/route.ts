import { operations } from "../../../../lib/operations";
import { route, type IdParams } from "../../../../lib/route";

/** GET /api/operations/:id */
export const GET = route(async (tenantId, _request, { params }: IdParams) =>
  operations.getOperation(tenantId, (await params).id),
);

/** DELETE /api/operations/:id — cancel; 409 when it has finished. */
export const DELETE = route(async (tenantId, _request, { params }: IdParams) =>
  operations.cancelOperation(tenantId, (await params).id),
);
