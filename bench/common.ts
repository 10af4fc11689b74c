// Helpers every system and scenario shares: the database admin calls, counting to a target, RSS.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Client } from "pg";

/** Whether the bench runs compiled (`npm run bench` runs dist-bench/, as an application runs in production). */
export const COMPILED = __filename.endsWith(".js");

/**
 * How to start another bench script as a child process: compiled JavaScript under plain `node` when
 * the bench runs compiled, its TypeScript under tsx otherwise (the profile tools run with `npx tsx`).
 */
export function benchScript(name: string): { file: string; execArgv: string[] } {
  return COMPILED
    ? { file: join(__dirname, `${name}.js`), execArgv: [] }
    : { file: join(__dirname, `${name}.ts`), execArgv: ["--import", "tsx"] };
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function withClient<T>(url: string, fn: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * What every system gets after its setup and before anything is timed: fresh statistics for the
 * planner, and a checkpoint so that no system's timed part pays for another's dirty pages.
 */
export async function analyzeAndCheckpoint(url: string): Promise<void> {
  await withClient(url, async (client) => {
    await client.query("ANALYZE");
    await client.query("CHECKPOINT");
  });
}

/** Counts things (handler starts, deliveries) and resolves a promise when the count reaches a target. */
export class Counter {
  count = 0;
  private target = Infinity;
  private reached: (() => void) | undefined;

  add(n = 1): void {
    this.count += n;
    if (this.count >= this.target) this.reached?.();
  }

  /** Resets to 0 and resolves once `target` is counted. */
  until(target: number): Promise<void> {
    this.count = 0;
    this.target = target;
    return new Promise((resolve) => {
      this.reached = () => {
        this.reached = undefined;
        this.target = Infinity;
        resolve();
      };
    });
  }
}

/** Samples this process's RSS every 20 ms between start() and stop(); stop() returns the peak in MB. */
export class RssSampler {
  private peak = 0;
  private timer: NodeJS.Timeout | undefined;

  start(): this {
    this.peak = process.memoryUsage.rss();
    this.timer = setInterval(() => {
      this.peak = Math.max(this.peak, process.memoryUsage.rss());
    }, 20);
    return this;
  }

  stop(): number {
    clearInterval(this.timer);
    this.peak = Math.max(this.peak, process.memoryUsage.rss());
    return this.peak / (1024 * 1024);
  }
}

/** Peak RSS of the whole process so far, in MB. */
export function processPeakRssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}

/**
 * Wraps the methods of `target` (a prototype) to count calls and time them, by method name. Used to
 * count the module's statements per operation without touching its code.
 */
export function instrument(
  target: object,
  names: readonly string[],
): { calls: Record<string, number>; ms: Record<string, number[]>; reset(): void; restore(): void } {
  const calls: Record<string, number> = {};
  const ms: Record<string, number[]> = {};
  const originals = new Map<string, unknown>();
  const record = target as Record<string, unknown>;
  for (const name of names) {
    const original = record[name] as (...args: unknown[]) => unknown;
    originals.set(name, original);
    record[name] = function (this: unknown, ...args: unknown[]) {
      calls[name] = (calls[name] ?? 0) + 1;
      const started = performance.now();
      const result = original.apply(this, args);
      if (result instanceof Promise) {
        return result.finally(() => (ms[name] ??= []).push(performance.now() - started));
      }
      (ms[name] ??= []).push(performance.now() - started);
      return result;
    };
  }
  return {
    calls,
    ms,
    reset() {
      for (const key of Object.keys(calls)) delete calls[key];
      for (const key of Object.keys(ms)) delete ms[key];
    },
    restore() {
      for (const [name, original] of originals) record[name] = original;
    },
  };
}

/** CPU seconds (user + system) of the processes whose pids `which` accepts. */
export function cpuSeconds(which: (pid: number, command: string) => boolean): number {
  let ticks = 0;
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    } catch {
      continue; // gone meanwhile
    }
    const command = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    if (!which(pid, command)) continue;
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    ticks += Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15 of stat)
  }
  return ticks / 100; // USER_HZ
}

/**
 * CPU seconds used so far by this host's PostgreSQL processes: every backend and background
 * process, of every database (0 when the server runs elsewhere). A backend that exits takes its
 * time with it.
 */
export const postgresCpuSeconds = () => cpuSeconds((_, command) => command === "postgres");
