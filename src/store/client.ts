// What the module needs of a Prisma client, said structurally, so that the application's own
// generated client (with its own models beside the module's) is accepted as it is, and `tx` in
// `ops.transaction` is the application's own transaction client.
import type { ITXClientDenyList, Sql } from "@prisma/client/runtime/client";

/** Runs the module's statements: a Prisma client, or the client of an interactive transaction. */
export interface Db {
  $queryRaw<T = unknown>(query: TemplateStringsArray | Sql, ...values: unknown[]): PromiseLike<T>;
  $executeRaw(query: TemplateStringsArray | Sql, ...values: unknown[]): PromiseLike<number>;
}

/** Options of an interactive transaction, as Prisma's `$transaction(fn, options)` takes them. */
export interface TransactionOptions {
  maxWait?: number;
  timeout?: number;
  isolationLevel?: "ReadCommitted" | "RepeatableRead" | "Serializable";
}

/** The models `operations.prisma` adds to a client (their delegates' names). */
export type ModuleModel =
  | "operationBatch"
  | "operation"
  | "outboxEvent"
  | "outboxSubscriber"
  | "outboxDelivery"
  | "outboxDeliveryHold"
  | "operationWorker";

/** Any Prisma 7 client: raw statements and interactive transactions. */
export interface PrismaClientLike extends Db {
  // `any`: every generated client types this parameter as its own transaction client.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  $transaction<R>(fn: (tx: any) => Promise<R>, options?: TransactionOptions): PromiseLike<R>;
}

/**
 * A Prisma 7 client generated from a schema that contains the module's models (copy
 * `operations.prisma` into it: `npx prisma-operations init`), with the PostgreSQL driver adapter.
 * Any such client fits, whatever else its schema holds, extended with `$extends` or not.
 */
export interface OperationsPrismaClient extends PrismaClientLike {
  operationBatch: unknown;
  operation: unknown;
  outboxEvent: unknown;
  outboxSubscriber: unknown;
  outboxDelivery: unknown;
  outboxDeliveryHold: unknown;
  operationWorker: unknown;
}

/** The client Prisma passes to an interactive transaction's callback, for client `C`. */
export type TransactionClientOf<C> = Omit<C, ITXClientDenyList>;

/** The transaction client of the module's own client type (for code that is not generic). */
export type TransactionClient = TransactionClientOf<OperationsPrismaClient>;

/**
 * `C` when it is a client with the module's models; otherwise a type whose one required property
 * names what is missing, so that the compiler's error says what to do.
 */
export type CheckedClient<C> = [ModuleModel] extends [keyof C]
  ? C
  : C & {
      "prisma-operations: this PrismaClient lacks the module's models — add operations.prisma to your Prisma schema (npx prisma-operations init), run `prisma generate`, and pass that client": Exclude<
        ModuleModel,
        keyof C
      >;
    };

/** Runs `fn` in an interactive transaction of `client`, whatever its generated type. */
export function interactive<R>(
  client: PrismaClientLike,
  fn: (tx: Db) => Promise<R>,
  options?: TransactionOptions,
): Promise<R> {
  const run = client.$transaction as unknown as (
    fn: (tx: Db) => Promise<R>,
    options?: TransactionOptions,
  ) => PromiseLike<R>;
  return Promise.resolve(run.call(client, fn, options));
}

/**
 * The `schema` a Prisma client's PostgreSQL adapter was given (`new PrismaPg(config, { schema })`),
 * when it can be read: Prisma's queries go there, so the module's raw statements must too. Read
 * from the client's internals, so undefined when they change shape — then the module uses the
 * search_path, and a missing table is reported as SchemaMissingError naming the `schema` option.
 */
export function adapterSchema(client: unknown): string | undefined {
  const schema = (client as { _engineConfig?: { adapter?: { options?: { schema?: unknown } } } })
    ?._engineConfig?.adapter?.options?.schema;
  return typeof schema === "string" && schema.length > 0 ? schema : undefined;
}

/**
 * The `pg` pool a Prisma client's PrismaPg adapter was built on (`new PrismaPg(pool)`), when it can
 * be read from the client's internals; undefined otherwise (an adapter given a config, another
 * adapter, or internals that changed shape).
 */
export function adapterPool(client: unknown): unknown {
  return (
    (client as { _engineConfig?: { adapter?: { externalPool?: unknown } } })?._engineConfig?.adapter
      ?.externalPool ?? undefined
  );
}

/**
 * The `pg` settings a Prisma client's PrismaPg adapter connects with (its pool's options, or the
 * config it was given), when they can be read from the client's internals; undefined otherwise.
 */
export function adapterConfig(client: unknown): object | undefined {
  const config = (client as { _engineConfig?: { adapter?: { config?: unknown } } })?._engineConfig?.adapter
    ?.config;
  return typeof config === "object" && config !== null ? config : undefined;
}
