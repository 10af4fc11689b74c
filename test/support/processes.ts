// Worker processes for the crash tests: forked with tsx, talking back over IPC.
import { fork, type ChildProcess } from "node:child_process";
import { join } from "node:path";

export interface WorkerProcess {
  child: ChildProcess;
  /** Resolves once the worker has started. */
  ready: Promise<void>;
  /** Resolves with the operation id when the WORKER_HANG_ON handler is hanging. */
  hanging: Promise<string>;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
}

export function spawnWorker(env: Record<string, string>): WorkerProcess {
  const child = fork(join(__dirname, "worker-process.ts"), [], {
    execArgv: ["--import", "tsx"],
    env: { ...process.env, ...env },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const message = <T>(key: string) =>
    new Promise<T>((resolve, reject) => {
      child.on("message", (msg: Record<string, T>) => {
        if (key in msg) resolve(msg[key]!);
      });
      child.once("exit", (code, signal) =>
        reject(new Error(`worker exited (${code ?? signal}) before '${key}'`)),
      );
    });
  const ready = message<string>("ready").then(() => undefined);
  const hanging = message<string>("hanging");
  hanging.catch(() => undefined);
  const exited = new Promise<number | string>((resolve) =>
    child.once("exit", (code, signal) => resolve(code ?? signal ?? -1)),
  );
  return { child, ready, hanging, exited };
}

/** Stops workers gracefully (SIGTERM), killing any that take longer than `ms`. */
export async function stopWorkers(workers: WorkerProcess[], ms = 10_000): Promise<void> {
  await Promise.all(
    workers.map(async (worker) => {
      if (worker.child.exitCode !== null || worker.child.signalCode !== null) return;
      worker.child.kill("SIGTERM");
      const timer = setTimeout(() => worker.child.kill("SIGKILL"), ms);
      await worker.exited;
      clearTimeout(timer);
    }),
  );
}
