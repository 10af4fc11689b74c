import { z } from "zod";
import { defineOperationType } from "../../src";

/** The operation types the worker processes of the crash and limit tests run. */
export const processTypes = {
  work: defineOperationType({ payload: z.object({ n: z.number().int() }), maxAttempts: 5 }),
  /** At most 3 running at once across every process, at most 2 of one tenant. */
  limited: defineOperationType({
    payload: z.object({ n: z.number().int() }),
    concurrency: { total: 3, perTenant: 2 },
  }),
};
