import { Injectable } from "@nestjs/common";
import { OperationHandler, type OperationHandlerProvider } from "../../src/integrations/nestjs";
import type { HandlerContext, Payload } from "../../src";
import type { AppTypes } from "../shared/operation-types";

/** Some dependency a handler needs, injected as usual. */
@Injectable()
export class SearchIndex {
  readonly indexed: string[] = [];

  async add(ids: string[], signal: AbortSignal): Promise<number> {
    signal.throwIfAborted();
    this.indexed.push(...ids);
    return ids.length;
  }
}

@OperationHandler("documents.ingest")
@Injectable()
export class IngestHandler implements OperationHandlerProvider<Payload<AppTypes["documents.ingest"]>> {
  constructor(private readonly index: SearchIndex) {}

  async handle(payload: Payload<AppTypes["documents.ingest"]>, context: HandlerContext) {
    return {
      indexed: await this.index.add(
        payload.documents.map((document) => document.id),
        context.signal,
      ),
    };
  }
}
