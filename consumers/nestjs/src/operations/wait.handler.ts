import { setTimeout as sleep } from "node:timers/promises";
import { Injectable } from "@nestjs/common";
import type { HandlerContext, Payload } from "prisma-operations";
import { OperationHandler, type OperationHandlerProvider } from "prisma-operations/nestjs";
import type { AppTypes } from "./operation-types";

type WaitPayload = Payload<AppTypes["timers.wait"]>;

@OperationHandler("timers.wait")
@Injectable()
export class WaitHandler implements OperationHandlerProvider<WaitPayload> {
  /** Rejects as soon as the signal aborts (a cancel, a shutdown): the operation is cancellable. */
  async handle(payload: WaitPayload, { signal }: HandlerContext) {
    await sleep(payload.ms, undefined, { signal });
    return { waitedMs: payload.ms };
  }
}
