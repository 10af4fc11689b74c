// `npm start -- --dashboard`: after the demo, the operations dashboard stays open on 127.0.0.1
// until SIGINT or SIGTERM. Only loopback requests are let in (the demo has no users to sign in).
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import type { OperationsService } from "../../src";
import { createDashboard } from "../../src/dashboard";

const LOOPBACK = new Set(["127.0.0.1", "::1", "::ffff:127.0.0.1"]);
const BASE_PATH = "/dashboard/";

function fromLoopback(request: IncomingMessage | Request): boolean {
  return "socket" in request && LOOPBACK.has(request.socket.remoteAddress ?? "");
}

/**
 * Serves the dashboard for `operations`, prints `DASHBOARD <url>`, and resolves once a signal
 * has stopped the server and `shutdown` has run.
 */
export async function keepDashboardOpen(
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  operations: OperationsService<any, any>,
  shutdown: () => Promise<void>,
  port = Number(process.env.DASHBOARD_PORT ?? 0),
): Promise<void> {
  const dashboard = createDashboard({
    operations,
    basePath: BASE_PATH,
    authorize: (request) => (fromLoopback(request) ? { tenants: "*" } : false),
  });
  const server = createServer((request, response) => void dashboard.handle(request, response));
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  const address = server.address() as AddressInfo;
  console.log(`DASHBOARD http://127.0.0.1:${address.port}${BASE_PATH}`);
  console.log("  (open it in a browser; Ctrl-C stops the demo)");
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGINT", () => resolve("SIGINT"));
    process.once("SIGTERM", () => resolve("SIGTERM"));
  });
  console.log(`\n${signal}: closing the dashboard`);
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await shutdown();
}
