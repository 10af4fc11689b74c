import { OperationsError } from "prisma-operations";
import { toHttpError } from "prisma-operations/http";

/**
 * Wraps a route handler: takes the tenant from the `x-tenant-id` header (a real app takes it from its
 * session), answers with JSON, and maps the module's errors to 400 (with zod issue paths), 404 (not
 * found, or another tenant's) and 409 (conflict).
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
      if (error instanceof InvalidJsonError) {
        return Response.json({ error: "invalid_json", message: error.message }, { status: 400 });
      }
      if (!(error instanceof OperationsError)) throw error; // a 500, as Next.js answers any other error
      const { status, body } = toHttpError(error);
      return Response.json(body, { status });
    }
  };
}

/** The context Next.js passes to a route under `[id]` (params are a promise since Next.js 15). */
export type IdContext = { params: Promise<{ id: string }> };

class InvalidJsonError extends Error {}

/**
 * The request's JSON body, typed as what the route expects. The module validates it (zod) when it is
 * submitted, so a wrong shape is still a 400 with the path of each issue; only non-JSON fails here.
 */
export async function jsonBody<T>(request: Request): Promise<T> {
  try {
    return await request.json();
  } catch {
    throw new InvalidJsonError("the body must be JSON");
  }
}
