import { operations } from "@/lib/operations";
import { route, type IdContext } from "@/lib/route";

/** GET /api/batches/:id — the batch, its progress and a page of its children (`?cursor=`). */
export const GET = route(async (tenantId, request, { params }: IdContext) => {
  const { id } = await params;
  const batch = await operations.getBatch(tenantId, id);
  const cursor = new URL(request.url).searchParams.get("cursor") ?? undefined;
  return { ...batch, children: await operations.listOperations({ tenantId, batchId: id, cursor }) };
});

/** DELETE /api/batches/:id — cancels every child not finished yet; 409 when the batch has finished. */
export const DELETE = route(async (tenantId, _request, { params }: IdContext) =>
  operations.cancelBatch(tenantId, (await params).id),
);
