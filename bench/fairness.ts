// The fairness scenario (ours only): while one tenant has a huge due backlog, how long do other
// tenants' small batches wait to start, with fair claiming on and off, and what does fairness cost
// the big tenant's throughput?
//
// Three modes, each in its own process on its own database (see run.ts):
//   idle  no backlog; the worker with its defaults (fair claiming on)
//   fair  tenant A's `bigTenant` due children written beforehand by a separate process, worker `fair: true`
//   fifo  the same backlog, worker `fair: false` (strictly oldest due first)
// In every mode tenants B–E each submit one `smallBatch`-child batch every `intervalMs` (staggered
// evenly) for `windowMs`, from a submitter process of their own (fairness-submitter.ts), as an
// application's API would: the submit time goes in the payload, on the submitter's clock, and the
// handler's start is read on the worker's, corrected by their measured offset.
import { fork, type ChildProcess } from "node:child_process";
import { z } from "zod";
import { applyMigrations, createOperations, defineOperationType, type HandlerContext } from "../src";
import { CONCURRENCY } from "./settings";
import { analyzeAndCheckpoint, benchScript, Counter, sleep, withClient } from "./common";
import { percentile } from "./stats";
import { CountingSubscriber, ourConnection } from "./systems";

export const BIG_TENANT = "tenant-a";
/** B, C, D, E, … */
export const smallTenantIds = (count: number) =>
  Array.from({ length: count }, (_, i) => `tenant-${String.fromCharCode(98 + i)}`);

/** `t`: the submitter's performance.now() just before its submit call (0 for A's rows). */
export const fairnessTypes = {
  bench: defineOperationType({ payload: z.object({ n: z.number().int(), t: z.number() }), maxAttempts: 3 }),
  warm: defineOperationType({ payload: z.object({ n: z.number().int(), t: z.number() }), maxAttempts: 3 }),
};

export interface FairnessParams {
  /** Tenant A's due children already written (0: the idle mode). */
  bigTenant: number;
  /** 1: fair claiming (the default), 0: `fair: false`. */
  fair: number;
  windowMs: number;
  intervalMs: number;
  /** How many small tenants (4: B–E). */
  smallTenants: number;
  smallBatch: number;
  /** Untimed warm-up: batches of `smallBatch` of another type, spread over B–E, through the same worker code. */
  warmBatches: number;
}

export interface FairnessResult {
  /** Submit → handler start of every small-tenant child submitted in the window, ms. */
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  samples: number;
  /** The window as it ran: `windowMs`, or less if A's backlog fell to 10 % first. */
  windowMs: number;
  /** A's handlers run in the window ÷ the window. */
  bigTenantOpsPerSec: number;
  /** Every handler run in the window (A's and B–E's) ÷ the window. */
  totalOpsPerSec: number;
  /** The submit calls of B–E alone (the first part of every sample), ms. */
  submitP50Ms: number;
  submitP99Ms: number;
  /**
   * How long after its submit call returned each child started (0 if before): the sample without
   * the submit call, whose commit this host can hold up for tens of milliseconds on its own.
   */
  afterSubmitP99Ms: number;
  /** From the window's end until every small-tenant child submitted in it had started. */
  tailMs: number;
}

/** Tenant A's backlog, in its own process (as the drain's seed): `total` children in batches of `batch`. */
export async function seedBigTenant(url: string, total: number, batch: number): Promise<void> {
  const connection = ourConnection(url);
  const ops = createOperations({
    ...connection.client,
    types: fairnessTypes,
    subscribers: [new CountingSubscriber()],
  });
  await withClient(url, (client) => applyMigrations(client));
  for (let b = 0; b < total / batch; b++) {
    await ops.submitBatch({
      tenantId: BIG_TENANT,
      type: "bench",
      items: Array.from({ length: batch }, (_, n) => ({ n, t: 0 })),
    });
  }
  await connection.close();
}

/** Milliseconds since the epoch at sub-millisecond resolution, comparable across processes up to `offset`. */
export const epochNow = () => performance.timeOrigin + performance.now();

/** The submitter process, and what it says. */
class Submitter {
  private readonly child: ChildProcess;
  private readonly waiting = new Map<
    string,
    { resolve: (message: SubmitterMessage) => void; reject: (error: Error) => void }
  >();
  /** Children submitted so far (counted as the submitter reports each submit). */
  submitted = 0;
  /** When each submit call returned, by the time put in its children's payload (submitter's clock). */
  readonly returnedAt = new Map<number, number>();

  constructor(url: string, params: FairnessParams) {
    const submitter = benchScript("fairness-submitter");
    this.child = fork(submitter.file, [], {
      execArgv: submitter.execArgv,
      env: { ...process.env, FAIRNESS_URL: url, FAIRNESS_PARAMS: JSON.stringify(params) },
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    this.child.on("message", (message: SubmitterMessage) => {
      if (message.kind === "submitted") {
        this.submitted += message.children;
        this.returnedAt.set(message.t, message.returnedAt);
      }
      const waiter = this.waiting.get(message.kind);
      this.waiting.delete(message.kind);
      waiter?.resolve(message);
    });
    this.child.on("exit", (code) => {
      for (const [kind, waiter] of this.waiting) {
        waiter.reject(new Error(`the submitter exited (${code}) before "${kind}"`));
      }
      this.waiting.clear();
    });
  }

  next<K extends SubmitterMessage["kind"]>(kind: K): Promise<Extract<SubmitterMessage, { kind: K }>> {
    return new Promise((resolve, reject) => {
      this.waiting.set(kind, { resolve: resolve as (message: SubmitterMessage) => void, reject });
    });
  }

  send(command: object): void {
    this.child.send(command);
  }

  /**
   * The submitter's clock minus ours: from the ping with the shortest round trip, assuming the
   * reply was taken halfway through it (error at most half that round trip, printed).
   */
  async clockOffset(): Promise<{ offsetMs: number; errorMs: number }> {
    let best = { offsetMs: 0, errorMs: Infinity };
    for (let i = 0; i < 20; i++) {
      const sent = epochNow();
      const pong = this.next("pong");
      this.send({ kind: "ping" });
      const { now } = await pong;
      const received = epochNow();
      const errorMs = (received - sent) / 2;
      if (errorMs < best.errorMs) best = { offsetMs: now - (sent + received) / 2, errorMs };
    }
    return best;
  }
}

type SubmitterMessage =
  | { kind: "ready" }
  | { kind: "pong"; now: number }
  | { kind: "warmed" }
  | { kind: "submitted"; children: number; t: number; returnedAt: number }
  | { kind: "done"; submitCalls: number[] };

export async function fairnessRun(url: string, params: FairnessParams): Promise<FairnessResult> {
  const connection = ourConnection(url);
  // As the other `ours` scenarios: the quick start's client, the default logger, an in-process subscriber.
  const ops = createOperations({
    ...connection.client,
    types: fairnessTypes,
    subscribers: [new CountingSubscriber()],
  });
  await withClient(url, (client) => applyMigrations(client));
  await ops.ready();
  const workerOptions = {
    concurrency: CONCURRENCY,
    listen: { connectionString: url },
    // idle: the defaults; fair: the default made explicit; fifo: off.
    ...(params.bigTenant === 0 ? {} : { fair: params.fair === 1 }),
  };
  const submitter = new Submitter(url, params);
  await submitter.next("ready");
  const clock = await submitter.clockOffset();
  process.stderr.write(
    `submitter clock offset ${clock.offsetMs.toFixed(3)} ms (± ${clock.errorMs.toFixed(3)} ms)\n`,
  );

  // Untimed warm-up: small batches of another type from B–E (the submitter's connections, this
  // process's worker with the same options).
  const warmed = new Counter();
  const warmDone = warmed.until(params.warmBatches * params.smallBatch);
  const warmWorker = ops.createWorker({ ...workerOptions, handlers: { warm: () => warmed.add() } });
  await warmWorker.start();
  const submitterWarmed = submitter.next("warmed");
  submitter.send({ kind: "warm" });
  await submitterWarmed;
  await warmDone;
  await warmWorker.stop();
  await analyzeAndCheckpoint(url);
  global.gc?.();

  // The timed part.
  const samples: number[] = [];
  /** Per child: when it started and the time in its payload (to find when its submit returned). */
  const startedAt: { t: number; at: number }[] = [];
  let bigDone = 0;
  let smallInWindow = 0;
  let open = true;
  /** Every small-tenant child submitted, once the submitter is done; then resolved when all started. */
  let expected = Infinity;
  let allStarted: (() => void) | undefined;
  const bigNearlyDone = new Counter();
  const bigGuard = params.bigTenant > 0 ? bigNearlyDone.until(Math.ceil(params.bigTenant * 0.9)) : undefined;
  const handler = (payload: { n: number; t: number }, context: HandlerContext) => {
    if (context.tenantId === BIG_TENANT) {
      if (open) bigDone++;
      bigNearlyDone.add();
    } else {
      const at = epochNow();
      samples.push(at - (payload.t - clock.offsetMs));
      startedAt.push({ t: payload.t, at });
      if (open) smallInWindow++;
      if (samples.length >= expected) allStarted?.();
    }
  };
  const worker = ops.createWorker({ ...workerOptions, handlers: { bench: handler } });
  const started = performance.now();
  await worker.start();
  submitter.send({ kind: "start", at: epochNow() + clock.offsetMs });
  // The window ends after windowMs, or earlier if A's backlog is nearly gone (a faster worker):
  // B–E are measured only while A still has due work.
  await Promise.race([sleep(params.windowMs), ...(bigGuard ? [bigGuard] : [])]);
  open = false;
  const windowMs = performance.now() - started;
  const done = submitter.next("done");
  submitter.send({ kind: "close" });
  const { submitCalls } = await done;
  expected = submitter.submitted;
  // Every small-tenant child submitted must start (with fair: false, only after A's backlog).
  const tailStarted = performance.now();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    new Promise<void>((resolve) => {
      allStarted = resolve;
      if (samples.length >= expected) resolve();
    }),
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`only ${samples.length} of ${expected} small-tenant children started`)),
        300_000,
      );
    }),
  ]).finally(() => clearTimeout(timer));
  const tailMs = performance.now() - tailStarted;
  await worker.stop();
  await connection.close();
  if (samples.length !== expected) throw new Error(`${samples.length} samples of ${expected} submitted`);
  const afterSubmit = startedAt.map(({ t, at }) =>
    Math.max(0, at - (submitter.returnedAt.get(t)! - clock.offsetMs)),
  );
  return {
    p50Ms: percentile(samples, 50),
    p99Ms: percentile(samples, 99),
    maxMs: Math.max(...samples),
    samples: samples.length,
    submitP50Ms: percentile(submitCalls, 50),
    submitP99Ms: percentile(submitCalls, 99),
    afterSubmitP99Ms: percentile(afterSubmit, 99),
    windowMs,
    bigTenantOpsPerSec: bigDone / (windowMs / 1000),
    totalOpsPerSec: (bigDone + smallInWindow) / (windowMs / 1000),
    tailMs,
  };
}
