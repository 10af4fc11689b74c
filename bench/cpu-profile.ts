// CPU profiles of the bench's own process, for the profile-* tools: where the time went, by the
// package the code comes from.
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { round } from "./stats";

export interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string }; hitCount?: number }[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Where the code running in the profile came from: the module, Prisma, pg, wasm, Node, idle. */
function origin(url: string, name: string): string {
  if (name === "(idle)") return "idle (waiting for the database)";
  if (name === "(garbage collector)") return "garbage collector";
  if (name === "(program)") return "V8/native (program)";
  if (url.startsWith("wasm://") || name.startsWith("wasm-function") || name.startsWith("$"))
    return "Prisma query compiler (wasm)";
  if (url.includes("/src/")) return "this module (src/)";
  if (url.includes("@prisma/adapter-pg")) return "@prisma/adapter-pg";
  if (url.includes("@prisma/client") || url.includes("/generated/prisma/")) return "@prisma/client runtime";
  if (url.includes("node_modules/pg") || url.includes("pg-protocol") || url.includes("pg-pool"))
    return "pg (node-postgres)";
  if (url.includes("/bench/")) return "bench harness";
  if (url.startsWith("node:") || url === "") return "Node.js internals / native";
  return url.replace(/^.*node_modules\//, "").split("/")[0] ?? url;
}

export function summarizeProfile(profile: CpuProfile, what: string): void {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const byOrigin = new Map<string, number>();
  const byFunction = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const node = byId.get(id)!;
    const dt = (profile.timeDeltas[i] ?? 0) / 1000;
    const where = origin(node.callFrame.url, node.callFrame.functionName);
    byOrigin.set(where, (byOrigin.get(where) ?? 0) + dt);
    const fn = `${node.callFrame.functionName || "(anonymous)"} ${node.callFrame.url.replace(/^.*\/(node_modules|work\/main)\//, "")}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + dt);
  });
  const totalMs = [...byOrigin.values()].reduce((a, b) => a + b, 0);
  console.log(`\nCPU profile of ${what} (${round(totalMs, 0)} ms sampled), self time by origin:`);
  for (const [where, ms] of [...byOrigin].sort((a, b) => b[1] - a[1])) {
    console.log(
      `  ${String(round(ms, 0)).padStart(7)} ms  ${String(round((100 * ms) / totalMs, 1)).padStart(5)} %  ${where}`,
    );
  }
  console.log("top functions by self time:");
  for (const [fn, ms] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, 20)) {
    console.log(`  ${String(round(ms, 0)).padStart(7)} ms  ${fn.slice(0, 120)}`);
  }
}

/**
 * Runs `fn`; with a `file`, under V8's sampling profiler (every `intervalUs`), writes the profile
 * there (open it in Chrome DevTools) and prints its self time by origin as "CPU profile of `what`".
 */
export async function withCpuProfile<T>(
  file: string | undefined,
  what: string,
  intervalUs: number,
  fn: () => Promise<T>,
): Promise<T> {
  if (!file) return fn();
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.setSamplingInterval", { interval: intervalUs });
  await session.post("Profiler.start");
  const result = await fn();
  const { profile } = await session.post("Profiler.stop");
  writeFileSync(file, JSON.stringify(profile));
  summarizeProfile(profile as unknown as CpuProfile, what);
  session.disconnect();
  return result;
}
