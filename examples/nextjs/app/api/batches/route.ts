import { operations } from "../../../lib/operations";
import { jsonBody, route } from "../../../lib/route";

/** POST /api/batches — submit a batch: 201, or 200 when the idempotency key returned an earlier one. */
export const POST = route(async (tenantId, request) => {
  const body = await jsonBody(request);
  if (body instanceof Response) return body;
  const result = await operations.submitBatch({ ...body, tenantId } as never);
  return Response.json(result, { status: result.created ? 201 : 200 });
});
