import type { BatchItemInput } from "prisma-operations";
import { operations } from "@/lib/operations";
import type { AppTypes } from "@/lib/operation-types";
import { jsonBody, route } from "@/lib/route";

interface UploadBody {
  name: string;
  documents: BatchItemInput<AppTypes["documents.ingest"]>[];
}

/**
 * POST /api/uploads — records the upload and submits the batch that ingests its documents in ONE
 * transaction: both commit, or neither does. `?fail=1` throws after both writes, to show the rollback.
 */
export const POST = route(async (tenantId, request) => {
  const body = await jsonBody<UploadBody>(request);
  const fail = new URL(request.url).searchParams.get("fail") === "1";
  const result = await operations.transaction(async (tx) => {
    const upload = await tx.upload.create({ data: { tenantId, name: body.name } });
    const { batch } = await operations.submitBatch(
      { tenantId, type: "documents.ingest", items: body.documents, idempotencyKey: `upload-${upload.id}` },
      { tx },
    );
    const queued = await tx.upload.update({
      where: { id: upload.id },
      data: { state: "queued", batchId: batch.id },
    });
    if (fail) throw new Error("failing on purpose after both writes (?fail=1): nothing commits");
    return { upload: queued, batch };
  }); // the batch's events are dispatched here, after the commit
  return Response.json(result, { status: 201 });
});
