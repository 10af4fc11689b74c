// An embedded PostgreSQL (PGlite, in this process) with the module's migrations applied: for
// `npm start` and trying the module without a server. Not for production: one connection, in
// memory unless given a data directory, and no LISTEN across processes.
import { applyMigrations, type SqlConnection } from "./store/migrations";
import type { PrismaClient } from "./generated/prisma/client";

export interface EmbeddedDatabase {
  /** A Prisma client of the module's own schema (its models only) on the embedded database. */
  prisma: PrismaClient;
  close(): Promise<void>;
}

/**
 * Starts PGlite (in memory, or in `dataDir`), applies the migrations and returns a Prisma client
 * on it. Needs the optional packages `@electric-sql/pglite` and `pglite-prisma-adapter`.
 */
export async function openEmbeddedDatabase(options: { dataDir?: string } = {}): Promise<EmbeddedDatabase> {
  const [{ PGlite }, { PrismaPGlite }, { PrismaClient }] = await Promise.all([
    import("@electric-sql/pglite"),
    import("pglite-prisma-adapter"),
    import("./generated/prisma/client"),
  ]);
  const pglite = await PGlite.create(options.dataDir);
  await applyMigrations(pglite as unknown as SqlConnection);
  const prisma = new PrismaClient({ adapter: new PrismaPGlite(pglite) });
  return {
    prisma,
    async close() {
      await prisma.$disconnect();
      await pglite.close();
    },
  };
}
