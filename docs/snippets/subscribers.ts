import { createOperations, webhookSubscriber } from "prisma-operations";
import { bullmqSubscriber } from "prisma-operations/bullmq";
import { ops as app } from "./quickstart.js";

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
await app.replayEvents("audit", { since: new Date(Date.now() - 86_400_000) }); // history it never had
await app.removeSubscriber("legacy-crm"); // no process has it any more: forget what it was owed
