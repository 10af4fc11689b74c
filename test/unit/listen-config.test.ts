// The LISTEN connection a worker opens by default: the settings of the service's pool (or of its
// PrismaPg adapter), without the pool's own.
import { Pool } from "pg";
import type { PrismaClientLike } from "../../src/store/client";
import { Connection } from "../../src/store/connection";

/** A client that is never queried here: only its adapter's internals are read. */
const prismaWith = (adapter: object) => ({ _engineConfig: { adapter } }) as unknown as PrismaClientLike;

describe("a worker's default LISTEN settings", () => {
  it("are the pool's connection settings, its password included (pg-pool hides it from enumeration)", async () => {
    const ssl = { rejectUnauthorized: false };
    const pool = new Pool({
      host: "db",
      port: 6543,
      user: "app",
      password: "s3cret",
      ssl,
      max: 3,
      idleTimeoutMillis: 5,
    });
    try {
      const config = new Connection({ prisma: prismaWith({}), pool }).listenConfig();
      expect(config).toEqual({ host: "db", port: 6543, user: "app", password: "s3cret", ssl });
      expect(config?.ssl).toBe(ssl);
    } finally {
      await pool.end();
    }
  });

  it("are the PrismaPg adapter's config when no pool is given, and undefined when there is none to read", () => {
    const fromAdapter = new Connection({
      prisma: prismaWith({ config: { connectionString: "postgresql://x/y" } }),
    });
    expect(fromAdapter.listenConfig()).toEqual({ connectionString: "postgresql://x/y" });
    expect(new Connection({ prisma: prismaWith({}) }).listenConfig()).toBeUndefined();
  });
});
