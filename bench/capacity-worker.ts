// One worker process of bench/capacity.ts: ours with its defaults (the quick start's client,
// concurrency 16 as in the drain, an in-process subscriber, LISTEN). Prints READY once built,
// starts its worker on "go" (stdin), stops it gracefully on SIGTERM.
import { createInterface } from "node:readline";
import { createOperations } from "../src";
import { CONCURRENCY } from "./settings";
import { benchTypes, CountingSubscriber, ourConnection } from "./systems";

async function main(): Promise<void> {
  const url = process.env.BENCH_URL!;
  const connection = ourConnection(url);
  const ops = createOperations({
    ...connection.client,
    types: benchTypes,
    subscribers: [new CountingSubscriber()],
  });
  await ops.ready();
  const worker = ops.createWorker({
    handlers: { bench: () => undefined, warm: () => undefined },
    concurrency: CONCURRENCY,
    listen: { connectionString: url },
  });
  process.on("SIGTERM", () => {
    void worker.stop().then(async () => {
      await connection.close();
      process.exit(0);
    });
  });
  createInterface({ input: process.stdin }).once("line", () => void worker.start());
  console.log("READY");
}

void main();
