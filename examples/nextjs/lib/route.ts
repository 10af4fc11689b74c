import { OperationsError } from "../../../src";
import { toHttpError } from "../../../src/integrations/http";

/**
 * Wraps a route handler: takes the tenant from the `x-tenant-id` header (a real app takes it from
 * its session), answers with JSON, and maps the module's errors to 400 / 404 / 409.
 */
export function route<C>(handler: (tenantId: string, request: Request, context: C) => Promise<unknown>) {
  return async (request: Request, context: C): Promise<Response> => {
    const tenantId = request.headers.get("x-tenant-id");
    if (!tenantId) {
      return Response.json(
        { error: "missing_tenant", message: "the x-tenant-id header is required" },
        { status: 400 },
      );
    }
    try {
      const result = await handler(tenantId, request, context);
      return result instanceof Response ? result : Response.json(result);
    } catch (error) {
      if (!(error instanceof OperationsError)) throw error;
      const { status, body } = toHttpError(error);
      return Response.json(body, { status });
    }
  };
}

/** The request's JSON body, or a 400 response when it is not JSON. */
export async function jsonBody(request: Request): Promise<Record<string, unknown> | Response> {
  try {
    const body: unknown = await request.json();
    if (typeof body === "object" && body !== null && !Array.isArray(body))
      return body as Record<string, unknown>;
  } catch {
    // fall through
  }
  return Response.json({ error: "invalid_json", message: "the body must be a JSON object" }, { status: 400 });
}

/** Next.js 15 passes dynamic route params as a promise. */
export type IdParams = { params: Promise<{ id: string }> };
