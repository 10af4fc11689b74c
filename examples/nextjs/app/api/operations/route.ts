import { listQueryFromSearchParams } from "../../../../../src/integrations/http";
import { operations } from "../../../lib/operations";
import { route } from "../../../lib/route";

/** GET /api/operations?status=&type=&batchId=&includeBatches=&limit=&cursor= */
export const GET = route(async (tenantId, request) =>
  operations.listOperations(listQueryFromSearchParams(tenantId, new URL(request.url).searchParams)),
);
