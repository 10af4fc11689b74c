// The fairness scenario's submitting side (see fairness.ts), in a process of its own as an
// application's API would be: tenants B–E submit their small batches from here while the worker's
// process only works. Driven over IPC by fairnessRun:
//   → ping            ← pong { now }            (clock offset, NTP-style)
//   → warm            ← warmed                  (untimed submits of the "warm" type)
//   → start { at }    ← submitted { children, t, returnedAt }  (per submit; times on this process's clock)
//   → close           ← done { submitCalls }    (after the submits in flight)
import { createOperations } from "../src";
import { sleep } from "./common";
import { CountingSubscriber, ourConnection } from "./systems";
import { epochNow, fairnessTypes, smallTenantIds, type FairnessParams } from "./fairness";

type Command = { kind: "ping" } | { kind: "warm" } | { kind: "start"; at: number } | { kind: "close" };

const url = process.env.FAIRNESS_URL!;
const params = JSON.parse(process.env.FAIRNESS_PARAMS!) as FairnessParams;
const send = (message: object) => process.send!(message);

async function main(): Promise<void> {
  const connection = ourConnection(url);
  const ops = createOperations({
    ...connection.client,
    types: fairnessTypes,
    subscribers: [new CountingSubscriber()],
  });
  await ops.ready();
  const small = smallTenantIds(params.smallTenants);
  const items = (t: number) => Array.from({ length: params.smallBatch }, (_, n) => ({ n, t }));
  let open = true;
  const submitCalls: number[] = [];
  let loops: Promise<void>[] = [];

  process.on("message", (command: Command) => {
    if (command.kind === "ping") send({ kind: "pong", now: epochNow() });
    if (command.kind === "warm") {
      void (async () => {
        for (let b = 0; b < params.warmBatches; b++) {
          await ops.submitBatch({
            tenantId: small[b % small.length]!,
            type: "warm",
            items: items(epochNow()),
          });
        }
        send({ kind: "warmed" });
      })();
    }
    if (command.kind === "start") {
      loops = small.map(async (tenantId, i) => {
        for (let k = 0; ; k++) {
          const wait =
            command.at + (i * params.intervalMs) / small.length + k * params.intervalMs - epochNow();
          if (wait > 0) await sleep(wait);
          if (!open) return;
          const t = epochNow();
          await ops.submitBatch({ tenantId, type: "bench", items: items(t) });
          const returnedAt = epochNow();
          submitCalls.push(returnedAt - t);
          send({ kind: "submitted", children: params.smallBatch, t, returnedAt });
        }
      });
    }
    if (command.kind === "close") {
      open = false;
      void Promise.all(loops).then(async () => {
        await connection.close();
        send({ kind: "done", submitCalls });
        process.disconnect();
      });
    }
  });
  send({ kind: "ready" });
}

void main();
