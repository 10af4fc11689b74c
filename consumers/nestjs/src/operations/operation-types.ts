import { z } from "zod";
import { defineOperationType, type OperationsService, type SubmitBatchInput } from "prisma-operations";
import type { PrismaService } from "../prisma/prisma.service";

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

/** The service as this app injects it: its operation types, on its own Prisma client. */
export type AppOperations = OperationsService<AppTypes, PrismaService>;

/** The body of `POST /batches`: a submit without its tenant, which comes from the request. */
export type SubmitBatchBody = Omit<SubmitBatchInput<AppTypes, keyof AppTypes & string>, "tenantId">;
