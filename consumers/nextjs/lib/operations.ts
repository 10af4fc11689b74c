import { createOperations } from "prisma-operations";
import { types } from "./operation-types";
import { prisma } from "./prisma";

/**
 * The app's operations service, on the app's own Prisma client. Route handlers submit, read, cancel
 * and retry; the work runs in the separate worker process (../worker.ts).
 */
export const operations = createOperations({ prisma, types });
