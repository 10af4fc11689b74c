// The soak's network: a process of its own holding a TCP proxy (soak/proxy.ts) between each worker
// node and PostgreSQL, so that the orchestrator can partition any node, and so that the
// orchestrator's own work never holds up the nodes' traffic. Told over IPC which nodes to proxy,
// it answers with their ports; then it cuts and restores on request, answering with when it did
// (the soak's clock), and reports its own event-loop stalls, which hold up every node's traffic.
import { clock, watchStalls, type NetworkReply, type NetworkRequest } from "./shared";
import { TcpProxy } from "./proxy";

const target = {
  host: process.env.SOAK_PG_HOST ?? "127.0.0.1",
  port: Number(process.env.SOAK_PG_PORT ?? 5432),
};
const proxies = new Map<string, TcpProxy>();
const reply = (message: NetworkReply) => process.send!(message);

process.on("message", (request: NetworkRequest) => {
  void (async () => {
    switch (request.kind) {
      case "proxy": {
        const ports: Record<string, number> = {};
        for (const node of request.nodes) {
          const proxy = new TcpProxy(target);
          ports[node] = await proxy.listen();
          proxies.set(node, proxy);
        }
        reply({ kind: "ports", ports });
        break;
      }
      case "cut":
        proxies.get(request.node)!.partition(request.how);
        reply({ kind: "cut", node: request.node, at: clock() });
        break;
      case "restore":
        proxies.get(request.node)!.restore();
        reply({ kind: "restored", node: request.node, at: clock() });
        break;
    }
  })();
});
watchStalls((began, ended) => reply({ kind: "stall", began, ended }));
process.on("disconnect", () => process.exit(0));
