// A fresh app, as the README's first example shows it. Above the cut: what the README leaves out.
declare const uploadedDocuments: { id: string; tokens: number; text: string }[];
declare const uploadId: string;
// ---cut---
import { PrismaPg } from "@prisma/adapter-pg";
import { Pool } from "pg";
import { z } from "zod";
import { createOperations, defineOperationType } from "prisma-operations";
import { PrismaClient } from "./generated/prisma/client.js"; // your client (`.js`: needed under nodenext)

const Document = z.object({ id: z.string(), tokens: z.number().int(), text: z.string() });

const pool = new Pool({ connectionString: process.env.DATABASE_URL });

export const ops = createOperations({
  prisma: new PrismaClient({ adapter: new PrismaPg(pool) }), // your client, on the pool
  pool, // the module's own statements go to the same pool directly
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
