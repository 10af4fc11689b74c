// How the module reaches the database: its own statements on the application's pool, or on its
// Prisma client when it gives no pool (a transaction's go through that transaction's client:
// `store.on(tx)`). The options that choose this are checked here, and so is that the pool and the
// client reach the same tables.
import type { ClientConfig } from "pg";
import { OperationsError } from "../errors";
import { adapterConfig, adapterPool, adapterSchema, type PrismaClientLike } from "./client";
import { poolDb, type PgPool } from "./pool";
import { Store } from "./store";
import { tablesIn } from "./tables";

export interface ConnectionOptions {
  prisma: PrismaClientLike;
  pool?: PgPool;
  preparedStatements?: boolean;
  schema?: string;
}

export class Connection {
  /** Runs the module's own statements: on the pool when there is one, else on the client. */
  readonly store: Store;
  /** The PostgreSQL schema of the module's tables (undefined: the search_path). */
  readonly schema: string | undefined;

  constructor(private readonly options: ConnectionOptions) {
    const fromAdapter = adapterSchema(options.prisma);
    if (options.schema !== undefined && fromAdapter !== undefined && options.schema !== fromAdapter) {
      throw new OperationsError(
        "invalid_options",
        `createOperations: \`schema\` is "${options.schema}" but the PrismaPg adapter puts Prisma's queries in "${fromAdapter}"`,
      );
    }
    if (options.preparedStatements !== undefined && !options.pool) {
      throw new OperationsError(
        "invalid_options",
        "createOperations: `preparedStatements` applies to `pool`; without a pool, give your PrismaPg adapter `statementNameGenerator: preparedStatementNames()`",
      );
    }
    this.schema = options.schema ?? fromAdapter;
    const db = options.pool
      ? poolDb(options.pool, { prepare: options.preparedStatements ?? true })
      : options.prisma;
    this.store = new Store(db, tablesIn(this.schema));
  }

  /**
   * Settings for a LISTEN connection to the database the module's statements reach: those of
   * `pool`, or of the client's PrismaPg adapter, without the pool's own. Undefined when neither can
   * be read (then workers poll, and learn of cancels at their heartbeats).
   */
  listenConfig(): ClientConfig | undefined {
    const source =
      (this.options.pool as { options?: object } | undefined)?.options ?? adapterConfig(this.options.prisma);
    return source && connectionSettings(source);
  }

  /**
   * Throws when the module's tables cannot be reached (as the database does), or when the pool
   * reaches other tables than the client: then a submit in `{ tx }` and one without, or a worker
   * and the app, would not meet. A pool that is the one the client's PrismaPg adapter is built on
   * needs no look; any other is compared with one query through the client (which loads Prisma's
   * query compiler in that process).
   */
  async probe(): Promise<void> {
    const { pool, prisma } = this.options;
    if (pool && adapterPool(prisma) !== pool) {
      const [viaPool, viaPrisma] = await Promise.all([
        this.store.identity(),
        this.store.on(prisma).identity(),
      ]);
      if (viaPool.database !== viaPrisma.database || viaPool.operationsTable !== viaPrisma.operationsTable) {
        const where = (side: typeof viaPool) =>
          `"${side.database}" (${side.operationsTable ? `operations table oid ${side.operationsTable}` : "no operations table"})`;
        throw new OperationsError(
          "invalid_options",
          `createOperations: \`pool\` reaches database ${where(viaPool)}, but \`prisma\` reaches ${where(viaPrisma)}: build your PrismaPg adapter on that pool (\`new PrismaPg(pool)\`)`,
        );
      }
    }
    await this.store.probe();
  }
}

/** What a pool's options hold for the pool itself, not for each connection. */
const POOL_ONLY = new Set([
  "max",
  "min",
  "poolSize",
  "maxUses",
  "allowExitOnIdle",
  "maxLifetimeSeconds",
  "idleTimeoutMillis",
  "log",
  "Client",
  "Promise",
  "onConnect",
]);

/**
 * A pool's options as one client's config. The password is copied by name: pg-pool keeps it out
 * of sight (not enumerable) so that a logged pool does not show it; `ssl` is passed as the same
 * object for the same reason (its `key`).
 */
function connectionSettings(options: object): ClientConfig {
  const settings: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) if (!POOL_ONLY.has(key)) settings[key] = value;
  if ("password" in options) settings.password = (options as { password?: unknown }).password;
  return settings as ClientConfig;
}
