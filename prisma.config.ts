import { defineConfig } from "prisma/config";

// DATABASE_URL is read with a fallback rather than env(): `prisma generate` runs on `npm install`,
// where no database needs to exist.
export default defineConfig({
  schema: "prisma/schema",
  migrations: { path: "prisma/migrations" },
  datasource: {
    url: process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres",
  },
});
