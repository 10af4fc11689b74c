import type { SubmitBatchInput } from "prisma-operations";
import { operations } from "@/lib/operations";
import type { AppTypes } from "@/lib/operation-types";
import { jsonBody, route } from "@/lib/route";

type SubmitBatchBody = Omit<SubmitBatchInput<AppTypes, keyof AppTypes & string>, "tenantId">;

/** POST /api/batches — 201 with the new batch, or 200 when the idempotency key returned an earlier one. */
export const POST = route(async (tenantId, request) => {
  const body = await jsonBody<SubmitBatchBody>(request);
  const result = await operations.submitBatch({ ...body, tenantId });
  return Response.json(result, { status: result.created ? 201 : 200 });
});
