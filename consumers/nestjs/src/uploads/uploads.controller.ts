import { Body, Controller, Inject, Post, Query } from "@nestjs/common";
import type { BatchItemInput } from "prisma-operations";
import { OperationsService } from "prisma-operations/nestjs";
import type { AppOperations, AppTypes } from "../operations/operation-types";
import { Tenant } from "../operations/tenant.decorator";

interface UploadBody {
  name: string;
  documents: BatchItemInput<AppTypes["documents.ingest"]>[];
}

@Controller("uploads")
export class UploadsController {
  constructor(@Inject(OperationsService) private readonly operations: AppOperations) {}

  /**
   * Records the upload and submits the batch that ingests its documents in ONE transaction: both
   * commit, or neither does. `?fail=1` throws after both writes, to show the rollback.
   */
  @Post()
  create(@Tenant() tenantId: string, @Body() body: UploadBody, @Query("fail") fail?: string) {
    return this.operations.transaction(async (tx) => {
      const upload = await tx.upload.create({ data: { tenantId, name: body.name } });
      const { batch } = await this.operations.submitBatch(
        { tenantId, type: "documents.ingest", items: body.documents, idempotencyKey: `upload-${upload.id}` },
        { tx },
      );
      const queued = await tx.upload.update({
        where: { id: upload.id },
        data: { state: "queued", batchId: batch.id },
      });
      if (fail === "1") throw new Error("failing on purpose after both writes (?fail=1): nothing commits");
      return { upload: queued, batch };
    }); // the batch's events are dispatched here, after the commit
  }
}
