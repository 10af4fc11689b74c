// A fresh app, as the README's first example shows it. Above the cut: what the README leaves out.
declare const uploadedDocuments: { id: string; tokens: number; text: string }[];
declare const uploadId: string;
// ---cut---
import { PrismaPg } from "@prisma/adapter-pg";
import { z } from "zod";
import { createOperations, defineOperationType, preparedStatementNames } from "prisma-operations";
import { PrismaClient } from "./generated/prisma/client.js"; // your client (`.js`: needed under nodenext)

const Document = z.object({ id: z.string(), tokens: z.number().int(), text: z.string() });

export const ops = createOperations({
  prisma: new PrismaClient({
    adapter: new PrismaPg(
      { connectionString: process.env.DATABASE_URL },
      { statementNameGenerator: preparedStatementNames() }, // the module's statements, prepared once per connection
    ),
  }),
  types: {
    "documents.ingest": defineOperationType({
      payload: z.object({ documents: z.array(Document) }), // what a handler receives
      batch: { item: Document, toPayload: (documents) => ({ documents }), weigh: (d) => d.tokens },
    }),
  },
  subscribers: [{ name: "audit", deliver: (event) => console.log(event.topic, event.aggregateId) }],
});

const { batch, operationIds } = await ops.submitBatch({
  tenantId: "bank-42",
  type: "documents.ingest",
  items: uploadedDocuments, // typed from the item schema
  split: { maxWeight: 8_000 }, // children of at most 8,000 tokens each
  idempotencyKey: `upload-${uploadId}`,
});
console.log(batch.status, batch.progress, operationIds.length);
