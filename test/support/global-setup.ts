// Runs once before the database tests: finds a PostgreSQL server, builds one migrated template
// database, and tells the test files (via the environment) where both are.
import { Client } from "pg";
import { applyMigrations } from "../../src/store/migrations";
import { databaseUrl, ENV_SERVER_URL, ENV_TEMPLATE } from "./urls";

declare global {
  var __testContainer: { stop(): Promise<unknown> } | undefined;
}

async function startContainer(): Promise<string> {
  try {
    const { PostgreSqlContainer } = await import("@testcontainers/postgresql");
    const container = await new PostgreSqlContainer("postgres:15-alpine").start();
    globalThis.__testContainer = container;
    return container.getConnectionUri();
  } catch (error) {
    throw new Error(
      "The database tests need PostgreSQL, and found none:\n" +
        "  - DATABASE_URL is not set, and\n" +
        `  - testcontainers could not start a PostgreSQL container (${(error as Error).message.split("\n")[0]}).\n` +
        "Either set DATABASE_URL=postgresql://user@host:5432/db (any database; tests create their own),\n" +
        "or start a Docker engine so that testcontainers can run postgres:15-alpine.",
      { cause: error },
    );
  }
}

export default async function globalSetup(): Promise<void> {
  const serverUrl = process.env.DATABASE_URL || (await startContainer());
  const template = `po_template_${process.pid}_${Date.now().toString(36)}`;
  const admin = new Client({ connectionString: serverUrl });
  try {
    await admin.connect();
  } catch (error) {
    throw new Error(`Cannot connect to DATABASE_URL (${(error as Error).message}). Is PostgreSQL running?`, {
      cause: error,
    });
  }
  try {
    await admin.query(`CREATE DATABASE "${template}"`);
  } finally {
    await admin.end();
  }
  const client = new Client({ connectionString: databaseUrl(serverUrl, template) });
  await client.connect();
  try {
    await applyMigrations(client);
  } finally {
    await client.end();
  }
  process.env[ENV_SERVER_URL] = serverUrl;
  process.env[ENV_TEMPLATE] = template;
}
