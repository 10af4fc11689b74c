import { z } from "zod";
import { createOperations, defineOperationType } from "prisma-operations";

declare const prisma: Parameters<typeof createOperations>[0]["prisma"];
declare function render(invoiceId: string, signal: AbortSignal): Promise<string>;
// ---cut---
const types = {
  "invoices.render": defineOperationType({
    payload: z.object({ invoiceId: z.string() }),
    // At most 8 running at once across every worker process, at most 2 for any one tenant.
    concurrency: { total: 8, perTenant: 2 },
  }),
};
const ops = createOperations({ prisma, types });

export const worker = ops.createWorker({
  handlers: { "invoices.render": (payload, { signal }) => render(payload.invoiceId, signal) },
  fair: true, // the default: share claims between tenants round-robin; false = oldest first
  tenantWeights: { "bank-42": 3 }, // this tenant gets three shares of a fair claim
});
