import { SetMetadata } from "@nestjs/common";
import type { HandlerContext } from "../../execution/handlers";

export const OPERATION_HANDLER_TYPE = "prisma-operations:handler-type";

/**
 * Marks a provider as the handler of an operation type: the module's worker calls its
 * `handle(payload, context)`. The provider lives in any module and gets its dependencies injected.
 *
 * @example
 * \@OperationHandler("documents.ingest")
 * \@Injectable()
 * export class IngestHandler implements OperationHandlerProvider<Payload<typeof ingest>> {
 *   constructor(private readonly index: SearchIndex) {}
 *   handle(payload, context) { return this.index.add(payload.documents, context.signal); }
 * }
 */
export const OperationHandler = (type: string): ClassDecorator => SetMetadata(OPERATION_HANDLER_TYPE, type);

/** What a provider decorated with `@OperationHandler` implements. */
export interface OperationHandlerProvider<P = unknown> {
  handle(payload: P, context: HandlerContext): unknown;
}
