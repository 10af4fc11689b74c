import { createOperations } from "../../../src"; // in an app: from "prisma-operations"
import { types } from "../../shared/operation-types";
import { prisma } from "./prisma";

/**
 * The app's operations service. Route handlers only submit, read, cancel and retry; the work runs
 * in a separate worker process (see ../worker.ts) — a serverless function is no place for one.
 */
export const operations = createOperations({ prisma, types });
