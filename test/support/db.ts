// Each test file gets its own database, cloned from the migrated template in milliseconds
// (CREATE DATABASE … TEMPLATE), and dropped when the file is done.
import { randomBytes } from "node:crypto";
import { PrismaPg } from "@prisma/adapter-pg";
import { Client, Pool } from "pg";
import { PrismaClient } from "../../src/generated/prisma/client";
import { databaseUrl, ENV_SERVER_URL, ENV_TEMPLATE } from "./urls";

/** A Prisma client built on a pg pool, and that pool: what the README's quick start hands the module. */
export interface Connection {
  prisma: PrismaClient;
  pool: Pool;
}

export interface TestDatabase {
  name: string;
  url: string;
  /** The module's Prisma client on this database (built on `connection.pool`). */
  prisma: PrismaClient;
  /** `prisma` and the pool it is built on: spread into createOperations as the quick start does. */
  connection: Connection;
  /** A plain pg pool for checks that must not go through the code under test. */
  pool: Pool;
  /** A new Prisma client on this database (e.g. with its own pool, or another application_name). */
  newPrisma(options?: { applicationName?: string; max?: number }): PrismaClient;
  /** A new client and the pool it is built on, as `connection` (e.g. with another application_name). */
  newConnection(options?: { applicationName?: string; max?: number }): Connection;
  close(): Promise<void>;
}

function serverUrl(): string {
  const url = process.env[ENV_SERVER_URL];
  if (!url) throw new Error("test/support/global-setup.ts did not run (use `npm test`)");
  return url;
}

async function admin<T>(fn: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: serverUrl() });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const template = process.env[ENV_TEMPLATE]!;
  const name = `po_test_${randomBytes(6).toString("hex")}`;
  await admin(async (client) => {
    // Concurrent clones of one template can briefly collide; retrying is what graphile-worker does too.
    for (let attempt = 1; ; attempt++) {
      try {
        await client.query(`CREATE DATABASE "${name}" TEMPLATE "${template}"`);
        return;
      } catch (error) {
        if (attempt >= 10 || !/being accessed by other users/.test((error as Error).message)) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
      }
    }
  });
  const url = databaseUrl(serverUrl(), name);
  const clients: PrismaClient[] = [];
  const newPrisma = (options: { applicationName?: string; max?: number } = {}) => {
    const client = new PrismaClient({
      adapter: new PrismaPg({
        connectionString: url,
        application_name: options.applicationName ?? "prisma-operations-test",
        max: options.max ?? 10,
      }),
    });
    clients.push(client);
    return client;
  };
  const pools: Pool[] = [];
  const newConnection = (options: { applicationName?: string; max?: number } = {}): Connection => {
    const pool = new Pool({
      connectionString: url,
      application_name: options.applicationName ?? "prisma-operations-test",
      max: options.max ?? 10,
    });
    pools.push(pool);
    // A test that kills this pool's backends expects the loss; the client that used one reports it.
    pool.on("error", () => undefined);
    const client = new PrismaClient({ adapter: new PrismaPg(pool) });
    clients.push(client);
    return { prisma: client, pool };
  };
  const connection = newConnection();
  const prisma = connection.prisma;
  const pool = new Pool({ connectionString: url, max: 4, application_name: "prisma-operations-test-checks" });
  // pool.end() resolves before its connections have closed, so DROP DATABASE … WITH (FORCE) can
  // still end one; that must not crash the test process. Any other loss is worth a warning.
  let closing = false;
  pool.on("error", (error) => {
    if (!closing) console.warn(`checks pool of ${name}: idle connection lost (${error.message})`);
  });
  return {
    name,
    url,
    prisma,
    connection,
    pool,
    newPrisma,
    newConnection,
    async close() {
      closing = true;
      await Promise.all(clients.map((client) => client.$disconnect()));
      await Promise.all([pool, ...pools].filter((p) => !p.ended).map((p) => p.end()));
      await admin((client) => client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
    },
  };
}
