import { z } from "zod";
import { defineOperationType } from "../../src";

/** The operation type the worker processes of the crash tests run. */
export const processTypes = {
  work: defineOperationType({ payload: z.object({ n: z.number().int() }), maxAttempts: 5 }),
};
