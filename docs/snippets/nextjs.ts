import { ops } from "./quickstart.js";
// ---cut---
// app/api/batches/route.ts — `ops` from your lib/operations.ts (one PrismaClient on globalThis)
import { OperationsError } from "prisma-operations";
import { toHttpError } from "prisma-operations/http";

export async function POST(request: Request): Promise<Response> {
  const tenantId = request.headers.get("x-tenant-id"); // in a real app: from the session
  if (!tenantId) return Response.json({ error: "missing_tenant" }, { status: 401 });
  try {
    const body = (await request.json()) as Record<string, unknown>;
    const result = await ops.submitBatch({ ...body, tenantId } as Parameters<typeof ops.submitBatch>[0]);
    return Response.json(result, { status: result.created ? 201 : 200 });
  } catch (error) {
    if (!(error instanceof OperationsError)) throw error;
    const { status, body } = toHttpError(error); // 400 with issue paths, 404, 409, 503
    return Response.json(body, { status });
  }
}
