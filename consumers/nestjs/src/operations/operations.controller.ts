import {
  Body,
  Controller,
  Delete,
  Get,
  Header,
  HttpCode,
  Inject,
  Param,
  Post,
  Query,
  Res,
} from "@nestjs/common";
import type { Response } from "express";
import { OperationsService } from "prisma-operations/nestjs";
import type { AppOperations, SubmitBatchBody } from "./operation-types";
import { Tenant } from "./tenant.decorator";

/** Submit, read, cancel and retry batches and operations; errors map through OperationsExceptionFilter. */
@Controller()
export class OperationsController {
  constructor(@Inject(OperationsService) private readonly operations: AppOperations) {}

  /** 201 with the new batch, or 200 when the idempotency key returned an earlier one. */
  @Post("batches")
  async submitBatch(
    @Tenant() tenantId: string,
    @Body() body: SubmitBatchBody, // validated by the module (zod), not here: a bad item is a 400 with its path
    @Res({ passthrough: true }) response: Response,
  ) {
    const result = await this.operations.submitBatch({ ...body, tenantId });
    response.status(result.created ? 201 : 200);
    return result;
  }

  /** The batch, its progress and a page of its children. */
  @Get("batches/:id")
  async getBatch(@Tenant() tenantId: string, @Param("id") id: string, @Query("cursor") cursor?: string) {
    const batch = await this.operations.getBatch(tenantId, id);
    return { ...batch, children: await this.operations.listOperations({ tenantId, batchId: id, cursor }) };
  }

  /** Cancels every child not finished yet; 409 when the batch has finished. */
  @Delete("batches/:id")
  cancelBatch(@Tenant() tenantId: string, @Param("id") id: string) {
    return this.operations.cancelBatch(tenantId, id);
  }

  /** Runs the failed and cancelled children again; 409 when there are none. */
  @Post("batches/:id/retry")
  @HttpCode(200)
  retryBatch(@Tenant() tenantId: string, @Param("id") id: string) {
    return this.operations.retryBatch(tenantId, id);
  }

  @Get("operations/:id")
  getOperation(@Tenant() tenantId: string, @Param("id") id: string) {
    return this.operations.getOperation(tenantId, id);
  }

  /** Cancels a pending operation at once, a running one through its AbortSignal; 409 when finished. */
  @Delete("operations/:id")
  cancelOperation(@Tenant() tenantId: string, @Param("id") id: string) {
    return this.operations.cancelOperation(tenantId, id);
  }

  /** Runs a failed or cancelled operation again; 409 otherwise. */
  @Post("operations/:id/retry")
  @HttpCode(200)
  retryOperation(@Tenant() tenantId: string, @Param("id") id: string) {
    return this.operations.retryOperation(tenantId, id);
  }

  /** Queue depth as Prometheus text (protect it like any operational endpoint). */
  @Get("metrics")
  @Header("Content-Type", "text/plain; version=0.0.4")
  metrics(): Promise<string> {
    return this.operations.metrics();
  }
}
