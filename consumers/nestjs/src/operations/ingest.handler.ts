import { Injectable } from "@nestjs/common";
import { NonRetryableError, type HandlerContext, type Payload } from "prisma-operations";
import { OperationHandler, type OperationHandlerProvider } from "prisma-operations/nestjs";
import type { AppTypes } from "./operation-types";

type IngestPayload = Payload<AppTypes["documents.ingest"]>;

@OperationHandler("documents.ingest")
@Injectable()
export class IngestHandler implements OperationHandlerProvider<IngestPayload> {
  // Documents whose text is "fail-once" fail the first time this process sees them, and succeed when
  // retried: the e2e tests use them to exercise POST /operations/:id/retry and /batches/:id/retry.
  private readonly failedOnce = new Set<string>();

  async handle(payload: IngestPayload, { signal }: HandlerContext) {
    signal.throwIfAborted();
    for (const document of payload.documents) {
      if (document.text === "fail-once" && !this.failedOnce.has(document.id)) {
        this.failedOnce.add(document.id);
        throw new NonRetryableError(`document ${document.id} failed (once, on purpose)`);
      }
    }
    return { indexed: payload.documents.length };
  }
}
