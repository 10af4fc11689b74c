import { z } from "zod";
import { defineOperationType } from "../../src"; // in an app: from "prisma-operations"

export const Document = z.object({ id: z.string(), tokens: z.number().int().positive(), text: z.string() });

export const types = {
  "documents.ingest": defineOperationType({
    payload: z.object({ documents: z.array(Document).min(1) }),
    batch: {
      item: Document,
      toPayload: (documents) => ({ documents }),
      weigh: (d) => d.tokens,
      split: { maxWeight: 4000 },
    },
    maxAttempts: 3,
  }),
};

export type AppTypes = typeof types;
