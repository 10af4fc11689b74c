import { createOperations, webhookSubscriber } from "prisma-operations";
import { bullmqSubscriber } from "prisma-operations/bullmq";

declare const prisma: Parameters<typeof createOperations>[0]["prisma"];
declare const types: Parameters<typeof createOperations>[0]["types"];
// ---cut---
const ops = createOperations({
  prisma,
  types,
  subscribers: [
    webhookSubscriber({
      name: "crm",
      url: "https://crm.example.com/hooks/ops",
      secret: process.env.HOOK_SECRET!,
    }),
    bullmqSubscriber({
      name: "reports",
      connection: { host: "127.0.0.1", port: 6379 },
      queueName: "reports",
      topics: ["batch.completed"],
    }),
  ],
});

await ops.redeliverDead({ subscriber: "crm" }); // dead deliveries due again, with fresh attempts
// History it never had: returns how many deliveries it added; a relay (a worker's, or
// ops.createRelay().start()) delivers them at its next poll.
const replayed = await ops.replayEvents("crm", { since: new Date(Date.now() - 86_400_000) });
await ops.removeSubscriber("legacy-crm"); // no process has it any more: forget what it was owed
console.log(`${replayed} events replayed to crm`);
