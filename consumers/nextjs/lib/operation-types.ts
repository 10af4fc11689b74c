import { z } from "zod";
import { defineOperationType } from "prisma-operations";

export const Document = z.object({
  id: z.string().min(1),
  tokens: z.number().int().positive(),
  text: z.string(),
});

/** The operation types this app runs; payload types are inferred from the schemas. */
export const types = {
  /** Batches of documents, split into children of at most 4,000 tokens. */
  "documents.ingest": defineOperationType({
    payload: z.object({ documents: z.array(Document).min(1) }),
    batch: {
      item: Document,
      toPayload: (documents) => ({ documents }),
      weigh: (document) => document.tokens,
      split: { maxWeight: 4000 },
    },
  }),
  /** Waits `ms` or until cancelled: long-running work that honours its AbortSignal. */
  "timers.wait": defineOperationType({
    payload: z.object({ ms: z.number().int().min(0).max(600_000) }),
  }),
};

export type AppTypes = typeof types;
