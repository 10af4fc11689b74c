// The module's own statements sent straight to a `pg` pool — the one your PrismaPg adapter is built
// on — instead of through the Prisma client. Every statement of the module is raw SQL, yet on the
// client each one still passes Prisma's query pipeline (0.2–0.3 ms of CPU per statement here,
// measured against the same statement on the pool), and the first one instantiates Prisma's query
// compiler (a drain's peak RSS 285 MB with it, 183 MB without, in a process that only runs a
// worker). Statements inside a caller's transaction still go through that transaction's client.
import { sqltag, type Sql } from "@prisma/client/runtime/client";
import { isModuleStatement, statementName } from "../prepared-statements";
import type { Db } from "./client";

/** A `pg` query as the module sends it. */
export interface PgQueryConfig {
  text: string;
  values: unknown[];
  /** Set for the module's hot-path statements when prepared statements are on. */
  name?: string;
}

/**
 * What the module needs of a `pg.Pool` (any version of `pg` 8): said structurally, so that the
 * application's own copy of `pg` is accepted as it is.
 */
export interface PgPool {
  query(config: PgQueryConfig): Promise<{ rows: unknown[]; rowCount: number | null }>;
}

export interface PoolDbOptions {
  /** Name the module's hot-path statements, so each connection parses them once. */
  prepare: boolean;
}

function isSql(query: TemplateStringsArray | Sql): query is Sql {
  return typeof (query as Sql).text === "string" && Array.isArray((query as Sql).values);
}

/** A {@link Db} whose statements run on `pool`, each in its own implicit transaction. */
export function poolDb(pool: PgPool, options: PoolDbOptions): Db {
  const run = (query: TemplateStringsArray | Sql, values: unknown[]) => {
    const statement = isSql(query) ? query : sqltag(query, ...values);
    const name =
      options.prepare && isModuleStatement(statement.text) ? statementName(statement.text) : undefined;
    return pool.query({ text: statement.text, values: statement.values, ...(name ? { name } : {}) });
  };
  return {
    async $queryRaw<T>(query: TemplateStringsArray | Sql, ...values: unknown[]): Promise<T> {
      return (await run(query, values)).rows as T;
    },
    async $executeRaw(query: TemplateStringsArray | Sql, ...values: unknown[]): Promise<number> {
      return (await run(query, values)).rowCount ?? 0;
    },
  };
}
