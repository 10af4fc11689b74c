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

/**
 * A sample stands for the time since the one before it, but only up to this many sampling
 * intervals is that time on the CPU: a longer gap means the main thread was off the CPU (on a
 * loaded host, a write to the database's socket wakes its backend, which takes the core), and V8
 * charges the whole gap to the function it was in. (A drain profile on 2 cores put 1.2 s of 4.7 s
 * in `writev`; its samples' median gap was 2.2 ms against 0.28 ms for all others.)
 */
const ON_CPU_INTERVALS = 2;

export function summarizeProfile(profile: CpuProfile, what: string, intervalUs: number): void {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const byOrigin = new Map<string, number>();
  const byFunction = new Map<string, { onCpu: number; offCpu: number }>();
  let offCpuMs = 0;
  profile.samples.forEach((id, i) => {
    const node = byId.get(id)!;
    const gap = (profile.timeDeltas[i] ?? 0) / 1000;
    // (an idle thread sleeps between samples: all of an idle gap is idle)
    const idle = node.callFrame.functionName === "(idle)";
    const onCpu = idle ? gap : Math.min(gap, (ON_CPU_INTERVALS * intervalUs) / 1000);
    const offCpu = gap - onCpu;
    offCpuMs += offCpu;
    const where = origin(node.callFrame.url, node.callFrame.functionName);
    byOrigin.set(where, (byOrigin.get(where) ?? 0) + onCpu);
    const fn = `${node.callFrame.functionName || "(anonymous)"} ${node.callFrame.url.replace(/^.*\/(node_modules|work\/main)\//, "")}`;
    const time = byFunction.get(fn) ?? { onCpu: 0, offCpu: 0 };
    time.onCpu += onCpu;
    time.offCpu += offCpu;
    byFunction.set(fn, time);
  });
  const totalMs = [...byOrigin.values()].reduce((a, b) => a + b, 0);
  const ms = (value: number) => String(round(value, 0)).padStart(7);
  console.log(
    `\nCPU profile of ${what}: ${round(totalMs, 0)} ms sampled on the CPU (or idle), ` +
      `${round(offCpuMs, 0)} ms more off it (gaps over ${ON_CPU_INTERVALS} sampling intervals after a busy ` +
      `sample: the thread was waiting for a core). Self time by origin:`,
  );
  for (const [where, time] of [...byOrigin].sort((a, b) => b[1] - a[1])) {
    console.log(`  ${ms(time)} ms  ${String(round((100 * time) / totalMs, 1)).padStart(5)} %  ${where}`);
  }
  console.log("top functions by self time on the CPU (and off it, waiting for a core, after them):");
  for (const [fn, time] of [...byFunction].sort((a, b) => b[1].onCpu - a[1].onCpu).slice(0, 20)) {
    console.log(`  ${ms(time.onCpu)} ms  ${ms(time.offCpu)} ms off  ${fn.slice(0, 110)}`);
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
  summarizeProfile(profile as unknown as CpuProfile, what, intervalUs);
  session.disconnect();
  return result;
}
