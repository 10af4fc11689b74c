import express from "express";
import { ops } from "./quickstart.js";

declare function currentUser(
  request: unknown,
): Promise<{ isAdmin: boolean; tenants: string[]; canOperate: boolean } | null>;
const app = express();
// ---cut---
import { createServer } from "node:http";
import { createDashboard } from "prisma-operations/dashboard";

const dashboard = createDashboard({
  operations: ops,
  // Required: who may see what. null → 401, false → 403; a grant lists the tenants ("*": all).
  authorize: async (request) => {
    const user = await currentUser(request);
    if (!user) return null;
    return user.isAdmin ? { tenants: "*" } : { tenants: user.tenants, readOnly: !user.canOperate };
  },
});

app.use("/ops", dashboard.handle); // Express, or NestJS's app.use in main.ts
// Next.js: app/ops/[[...path]]/route.ts with createDashboard({ …, basePath: "/ops" }):
//   export const GET = dashboard.fetch; export const POST = dashboard.fetch;
// node:http, no framework: the page at the server's root (give createDashboard basePath "/ops" to
// serve it under /ops; other paths then get 404).
createServer((request, response) => void dashboard.handle(request, response)).listen(8080);
