import { PrismaPg } from "@prisma/adapter-pg";
import { preparedStatementNames } from "prisma-operations";
import { PrismaClient } from "./generated/prisma/client";

// One PrismaClient per process. In development Next.js re-evaluates modules on every change; kept on
// globalThis, the client (and its connection pool) survives those reloads instead of piling up.
const globalForPrisma = globalThis as unknown as { prisma?: PrismaClient };

export const prisma =
  globalForPrisma.prisma ??
  new PrismaClient({
    adapter: new PrismaPg(
      { connectionString: process.env.DATABASE_URL },
      { statementNameGenerator: preparedStatementNames() },
    ),
  });

if (process.env.NODE_ENV !== "production") globalForPrisma.prisma = prisma;
