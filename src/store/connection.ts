// How the module reaches the database: its own statements on the application's pool (or on its
// Prisma client when it gives no pool), a transaction's statements on that transaction's client.
// The options that choose this are checked here, and so is that the pool and the client reach the
// same tables.
import { OperationsError } from "../errors";
import { adapterSchema, type Db, type PrismaClientLike } from "./client";
import { poolDb, type PgPool } from "./pool";
import { Store } from "./store";
import { tablesIn } from "./tables";

export interface ConnectionOptions {
  prisma: PrismaClientLike;
  pool?: PgPool;
  preparedStatements?: boolean;
  schema?: string;
}

interface Identity {
  database: string;
  operationsTable: string;
}

export class Connection {
  /** Runs the module's own statements: on the pool when there is one, else on the client. */
  readonly store: Store;
  /** The PostgreSQL schema of the module's tables (undefined: the search_path). */
  readonly schema: string | undefined;
  /** With a pool: the database and tables it reaches, read by `probe()`. */
  private poolIdentity: Identity | undefined;
  /** With a pool: a transaction client was found to reach the same tables. */
  private poolChecked = false;

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

  /** Throws (as the database does) when the module's tables cannot be reached through the store. */
  async probe(): Promise<void> {
    await this.store.probe();
    if (this.options.pool) this.poolIdentity = await this.store.identity();
  }

  /**
   * The store on a transaction client of the Prisma client, after `probe()`. With a pool, the first
   * one also checks that the pool and the client reach the same tables, or a submit in `{ tx }` and
   * one without would not meet. Checked here rather than in `probe()`: a process that never opens a
   * transaction (a worker) then never sends Prisma a query, and never instantiates its query
   * compiler. The pool's side was read by `probe()`: asking the pool for a second connection while
   * this transaction holds one could wait forever when the pool is full of such transactions.
   */
  async storeIn(tx: Db): Promise<Store> {
    const store = this.store.on(tx);
    if (this.options.pool && !this.poolChecked) {
      const viaPool = this.poolIdentity!;
      const viaPrisma = await store.identity();
      if (viaPool.database !== viaPrisma.database || viaPool.operationsTable !== viaPrisma.operationsTable) {
        throw new OperationsError(
          "invalid_options",
          `createOperations: \`pool\` reaches database "${viaPool.database}" (operations table oid ${viaPool.operationsTable}), but \`prisma\` reaches "${viaPrisma.database}" (oid ${viaPrisma.operationsTable}): build your PrismaPg adapter on that pool (\`new PrismaPg(pool)\`)`,
        );
      }
      this.poolChecked = true;
    }
    return store;
  }
}
