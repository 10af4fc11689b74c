import { defineConfig } from "prisma/config";

// A multi-file schema: this app's schema.prisma plus prisma-operations' operations.prisma, which
// `npx prisma-operations init` copies in next to it (with the module's migrations).
// DATABASE_URL is read with a fallback, so that `prisma generate` runs without a database.
export default defineConfig({
  schema: "prisma/schema",
  migrations: { path: "prisma/migrations" },
  datasource: { url: process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres" },
});
