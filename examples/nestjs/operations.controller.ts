import {
  BadRequestException,
  Body,
  Controller,
  Delete,
  Get,
  Headers,
  HttpCode,
  Inject,
  Param,
  Post,
  Query,
  Res,
  UseFilters,
} from "@nestjs/common";
import type { Response } from "express";
import {
  OperationsExceptionFilter,
  OperationsService,
  listQueryFromSearchParams,
} from "../../src/integrations/nestjs";
import type { AppTypes } from "../shared/operation-types";

/** The tenant comes from a header here; a real app takes it from its authentication. */
function tenantOf(tenantId: string | undefined): string {
  if (!tenantId)
    throw new BadRequestException({ error: "missing_tenant", message: "the x-tenant-id header is required" });
  return tenantId;
}

@Controller()
@UseFilters(OperationsExceptionFilter)
export class OperationsController {
  constructor(@Inject(OperationsService) private readonly operations: OperationsService<AppTypes>) {}

  @Post("batches")
  async submitBatch(
    @Headers("x-tenant-id") tenant: string | undefined,
    @Body() body: Record<string, unknown>,
    @Res() res: Response,
  ) {
    const result = await this.operations.submitBatch({ ...body, tenantId: tenantOf(tenant) } as never);
    res.status(result.created ? 201 : 200).json(result);
  }

  @Get("batches/:id")
  async getBatch(
    @Headers("x-tenant-id") tenant: string | undefined,
    @Param("id") id: string,
    @Query("cursor") cursor?: string,
  ) {
    const tenantId = tenantOf(tenant);
    const batch = await this.operations.getBatch(tenantId, id);
    const children = await this.operations.listOperations({ tenantId, batchId: id, cursor });
    return { ...batch, children };
  }

  @Delete("batches/:id")
  cancelBatch(@Headers("x-tenant-id") tenant: string | undefined, @Param("id") id: string) {
    return this.operations.cancelBatch(tenantOf(tenant), id);
  }

  @Post("batches/:id/retry")
  @HttpCode(200)
  retryBatch(@Headers("x-tenant-id") tenant: string | undefined, @Param("id") id: string) {
    return this.operations.retryBatch(tenantOf(tenant), id);
  }

  @Get("operations")
  listOperations(
    @Headers("x-tenant-id") tenant: string | undefined,
    @Query() query: Record<string, string | undefined>,
  ) {
    return this.operations.listOperations(listQueryFromSearchParams(tenantOf(tenant), query));
  }

  @Get("operations/:id")
  getOperation(@Headers("x-tenant-id") tenant: string | undefined, @Param("id") id: string) {
    return this.operations.getOperation(tenantOf(tenant), id);
  }

  @Delete("operations/:id")
  cancelOperation(@Headers("x-tenant-id") tenant: string | undefined, @Param("id") id: string) {
    return this.operations.cancelOperation(tenantOf(tenant), id);
  }

  @Post("operations/:id/retry")
  @HttpCode(200)
  retryOperation(@Headers("x-tenant-id") tenant: string | undefined, @Param("id") id: string) {
    return this.operations.retryOperation(tenantOf(tenant), id);
  }

  @Get("metrics")
  async metrics(@Res() res: Response) {
    res.type("text/plain; version=0.0.4").send(await this.operations.metrics());
  }
}
