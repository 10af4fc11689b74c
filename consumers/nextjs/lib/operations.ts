import { createOperations } from "prisma-operations";
import { types } from "./operation-types";
import { pool, prisma } from "./prisma";

/**
 * The app's operations service, on the app's own Prisma client and the pool it is built on. Route
 * handlers submit, read, cancel and retry; the work runs in the separate worker process (../worker.ts).
 */
export const operations = createOperations({ prisma, pool, types });
