import { BadRequestException, createParamDecorator, type ExecutionContext } from "@nestjs/common";

/** The tenant, from the `x-tenant-id` header (a real app takes it from its authentication). */
export const Tenant = createParamDecorator((_data: unknown, context: ExecutionContext): string => {
  const request = context
    .switchToHttp()
    .getRequest<{ headers: Record<string, string | string[] | undefined> }>();
  const tenantId = request.headers["x-tenant-id"];
  if (typeof tenantId !== "string" || tenantId === "") {
    throw new BadRequestException({ error: "missing_tenant", message: "the x-tenant-id header is required" });
  }
  return tenantId;
});
