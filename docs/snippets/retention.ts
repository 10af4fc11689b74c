import { createOperations } from "prisma-operations";

declare const prisma: Parameters<typeof createOperations>[0]["prisma"];
declare const types: Parameters<typeof createOperations>[0]["types"];
// ---cut---
export const ops = createOperations({
  prisma,
  types,
  retention: {
    completedDays: 7, // completed batches (with their children and events) and standalone operations
    failedDays: 30, // failed or cancelled ones
    deliveredEventHours: 24, // events every subscriber has had
    deadEventDays: 30, // events with a dead delivery, kept for redelivery
    types: { "email.send": { completedDays: 1 } }, // per operation type
  },
}); // the defaults above apply unless `retention: false`
