import { PrismaPg } from "@prisma/adapter-pg";
import { Pool } from "pg";
import { PrismaClient } from "./generated/prisma/client";

// One pool and one PrismaClient on it per process. In development Next.js re-evaluates modules on
// every change; kept on globalThis, they survive those reloads instead of piling up connections.
const globalForPrisma = globalThis as unknown as { pool?: Pool; prisma?: PrismaClient };

/** The pool the client is built on: prisma-operations sends its own statements to it too. */
export const pool = globalForPrisma.pool ?? new Pool({ connectionString: process.env.DATABASE_URL });
export const prisma = globalForPrisma.prisma ?? new PrismaClient({ adapter: new PrismaPg(pool) });

if (process.env.NODE_ENV !== "production") Object.assign(globalForPrisma, { pool, prisma });
