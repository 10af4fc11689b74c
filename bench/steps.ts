// Running one step of one system in a child process (bench/scenario.ts), on a database of its own.
import { spawn } from "node:child_process";
import { benchScript, withClient } from "./common";

export const serverUrl = process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres";

export function databaseUrl(name: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

export const admin = <T>(fn: Parameters<typeof withClient<T>>[1]) => withClient(serverUrl, fn);

export async function createDatabase(name: string, template?: string): Promise<void> {
  await admin(async (client) => {
    await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await client.query(
      template
        ? `CREATE DATABASE ${name} TEMPLATE ${template} STRATEGY FILE_COPY`
        : `CREATE DATABASE ${name}`,
    );
  });
}

export async function dropDatabase(name: string): Promise<void> {
  await admin((client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
}

/** Runs one step in a child process; its stderr is passed through, prefixed. */
export function step(
  database: string,
  system: string,
  scenario: string,
  params: Record<string, number>,
  env: Record<string, string> = {},
  timeoutMs = 15 * 60_000,
): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const script = benchScript("scenario");
    const child = spawn(process.execPath, ["--expose-gc", ...script.execArgv, script.file], {
      env: {
        ...process.env,
        BENCH_URL: databaseUrl(database),
        BENCH_SYSTEM: system,
        BENCH_SCENARIO: scenario,
        BENCH_PARAMS: JSON.stringify(params),
        ...env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderrTail = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    let partial = "";
    child.stderr.on("data", (chunk: Buffer) => {
      const text = partial + chunk.toString();
      const lines = text.split("\n");
      partial = lines.pop()!;
      for (const line of lines) process.stderr.write(`  [${system}/${scenario}] ${line}\n`);
      stderrTail = (stderrTail + chunk.toString()).slice(-4000);
    });
    const timeout = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("close", (code) => {
      clearTimeout(timeout);
      if (partial) process.stderr.write(`  [${system}/${scenario}] ${partial}\n`);
      const line = stdout.split("\n").find((l) => l.startsWith("RESULT "));
      if (code !== 0 || !line) {
        reject(new Error(`${system}/${scenario} failed (exit ${code}):\n${stderrTail}\n${stdout}`));
      } else {
        resolve(JSON.parse(line.slice("RESULT ".length)) as Record<string, unknown>);
      }
    });
  });
}

/** A step on a fresh database of its own (optionally a copy of a template), dropped afterwards. */
export async function fresh(
  system: string,
  scenario: string,
  params: Record<string, number>,
  options: {
    seed?: Record<string, number>;
    /** The scenario that writes the seed, in its own process. Default "seed" (the system's submit). */
    seedScenario?: string;
    template?: string;
    env?: Record<string, string>;
    /** The step is killed (and fails) after this long. */
    timeoutMs?: number;
  } = {},
): Promise<Record<string, unknown>> {
  const database = `po_bench_${system.toLowerCase()}`;
  await createDatabase(database, options.template);
  try {
    if (options.seed) await step(database, system, options.seedScenario ?? "seed", options.seed, options.env);
    return await step(database, system, scenario, params, options.env, options.timeoutMs);
  } finally {
    await dropDatabase(database);
  }
}
