// The fairness scenario (ours only): while one tenant has a huge due backlog, how long do other
// tenants' small batches wait to start, with fair claiming on and off, and what does fairness cost
// the big tenant's throughput?
//
// Three modes, each in its own process on its own database (see run.ts):
//   idle  no backlog; the worker with its defaults (fair claiming on)
//   fair  tenant A's `bigTenant` due children written beforehand by a separate process, worker `fair: true`
//   fifo  the same backlog, worker `fair: false` (strictly oldest due first)
// In every mode tenants B–E each submit one `smallBatch`-child batch every `intervalMs` (staggered
// evenly) for `windowMs`, from the worker's process, so that the submit time (in the
// payload) and the handler's start are read from the same clock.
import { z } from "zod";
import { applyMigrations, createOperations, defineOperationType, type HandlerContext } from "../src";
import { CONCURRENCY } from "./settings";
import { analyzeAndCheckpoint, Counter, sleep, withClient } from "./common";
import { percentile } from "./stats";
import { CountingSubscriber, ourPrisma } from "./systems";

export const BIG_TENANT = "tenant-a";
/** B, C, D, E, … */
const smallTenantIds = (count: number) =>
  Array.from({ length: count }, (_, i) => `tenant-${String.fromCharCode(98 + i)}`);

/** `t`: the submitter's performance.now() just before its submit call (0 for A's rows). */
const fairnessTypes = {
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
  /** From the window's end until every small-tenant child submitted in it had started. */
  tailMs: number;
}

/** Tenant A's backlog, in its own process (as the drain's seed): `total` children in batches of `batch`. */
export async function seedBigTenant(url: string, total: number, batch: number): Promise<void> {
  const prisma = ourPrisma(url, false);
  const ops = createOperations({ prisma, types: fairnessTypes, subscribers: [new CountingSubscriber()] });
  await withClient(url, (client) => applyMigrations(client));
  for (let b = 0; b < total / batch; b++) {
    await ops.submitBatch({
      tenantId: BIG_TENANT,
      type: "bench",
      items: Array.from({ length: batch }, (_, n) => ({ n, t: 0 })),
    });
  }
  await prisma.$disconnect();
}

export async function fairnessRun(url: string, params: FairnessParams): Promise<FairnessResult> {
  const prisma = ourPrisma(url, false);
  // As the other `ours` scenarios: the quick start's client, the default logger, an in-process subscriber.
  const ops = createOperations({ prisma, types: fairnessTypes, subscribers: [new CountingSubscriber()] });
  await withClient(url, (client) => applyMigrations(client));
  await ops.ready();
  const workerOptions = {
    concurrency: CONCURRENCY,
    listen: { connectionString: url },
    // idle: the defaults; fair: the default made explicit; fifo: off.
    ...(params.bigTenant === 0 ? {} : { fair: params.fair === 1 }),
  };
  const small = smallTenantIds(params.smallTenants);
  const items = (t: number) => Array.from({ length: params.smallBatch }, (_, n) => ({ n, t }));

  // Untimed warm-up: small batches of another type from B–E through a worker with the same options.
  const warmed = new Counter();
  const warmDone = warmed.until(params.warmBatches * params.smallBatch);
  const warmWorker = ops.createWorker({ ...workerOptions, handlers: { warm: () => warmed.add() } });
  await warmWorker.start();
  for (let b = 0; b < params.warmBatches; b++) {
    await ops.submitBatch({
      tenantId: small[b % small.length]!,
      type: "warm",
      items: items(performance.now()),
    });
  }
  await warmDone;
  await warmWorker.stop();
  await analyzeAndCheckpoint(url);
  global.gc?.();

  // The timed part.
  const samples: number[] = [];
  /** How long each small-tenant submit call took: the part of a sample before the row is due. */
  const submitCalls: number[] = [];
  let bigDone = 0;
  let smallInWindow = 0;
  let open = true;
  let submitted = 0;
  /** Resolves when every small-tenant child submitted has started; set once the window closed. */
  let allStarted: (() => void) | undefined;
  const bigNearlyDone = new Counter();
  const bigGuard = params.bigTenant > 0 ? bigNearlyDone.until(Math.ceil(params.bigTenant * 0.9)) : undefined;
  const handler = (payload: { n: number; t: number }, context: HandlerContext) => {
    if (context.tenantId === BIG_TENANT) {
      if (open) bigDone++;
      bigNearlyDone.add();
    } else {
      samples.push(performance.now() - payload.t);
      if (open) smallInWindow++;
      if (samples.length >= submitted) allStarted?.();
    }
  };
  const worker = ops.createWorker({ ...workerOptions, handlers: { bench: handler } });
  const started = performance.now();
  await worker.start();
  const submitters = small.map(async (tenantId, i) => {
    for (let k = 0; ; k++) {
      const at = started + (i * params.intervalMs) / small.length + k * params.intervalMs;
      const wait = at - performance.now();
      if (wait > 0) await sleep(wait);
      if (!open) return;
      const t = performance.now();
      await ops.submitBatch({ tenantId, type: "bench", items: items(t) });
      submitCalls.push(performance.now() - t);
      submitted += params.smallBatch;
    }
  });
  // The window ends after windowMs, or earlier if A's backlog is nearly gone (a faster worker):
  // B–E are measured only while A still has due work.
  await Promise.race([sleep(params.windowMs), ...(bigGuard ? [bigGuard] : [])]);
  open = false;
  const windowMs = performance.now() - started;
  await Promise.all(submitters);
  // Every small-tenant child submitted must start (with fair: false, only after A's backlog).
  const tailStarted = performance.now();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    new Promise<void>((resolve) => {
      allStarted = resolve;
      if (samples.length >= submitted) resolve();
    }),
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`only ${samples.length} of ${submitted} small-tenant children started`)),
        300_000,
      );
    }),
  ]).finally(() => clearTimeout(timer));
  const tailMs = performance.now() - tailStarted;
  await worker.stop();
  await prisma.$disconnect();
  if (samples.length !== submitted) throw new Error(`${samples.length} samples of ${submitted} submitted`);
  return {
    p50Ms: percentile(samples, 50),
    p99Ms: percentile(samples, 99),
    maxMs: Math.max(...samples),
    samples: samples.length,
    submitP50Ms: percentile(submitCalls, 50),
    submitP99Ms: percentile(submitCalls, 99),
    windowMs,
    bigTenantOpsPerSec: bigDone / (windowMs / 1000),
    totalOpsPerSec: (bigDone + smallInWindow) / (windowMs / 1000),
    tailMs,
  };
}
