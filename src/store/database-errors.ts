// What a caller sees when the database refuses or goes away: one of the module's typed errors,
// never a driver's or Prisma's raw error. Conflicts between transactions (deadlock victim,
// serialization failure) are retried where the statement can simply run again.
import {
  ConcurrentUpdateError,
  DatabaseUnavailableError,
  OperationsError,
  SchemaMissingError,
  UnexpectedDatabaseError,
} from "../errors";

interface AdapterCause {
  kind?: string;
  originalCode?: string;
  code?: string;
  originalMessage?: string;
  message?: string;
}

const KIND_STATES: Record<string, string> = {
  TransactionWriteConflict: "40001",
  ConnectionClosed: "08006",
  SocketTimeout: "08006",
  DatabaseNotReachable: "08001",
  TooManyConnections: "53300",
  TableDoesNotExist: "42P01",
};

// Prisma's own codes for conditions that are not SQL states.
const PRISMA_UNAVAILABLE = new Set(["P1001", "P1002", "P1008", "P1017", "P2024", "P2028"]);
const PRISMA_CONFLICT = new Set(["P2034"]);

/** The SQLSTATE behind a Prisma, driver-adapter or pg error, when there is one. */
function sqlState(error: unknown): string | undefined {
  const e = error as {
    code?: unknown;
    meta?: { driverAdapterError?: { cause?: AdapterCause } };
    name?: unknown;
    cause?: unknown;
  };
  const adapter =
    e?.meta?.driverAdapterError?.cause ??
    (e?.name === "DriverAdapterError" ? (e.cause as AdapterCause) : undefined);
  if (adapter)
    return adapter.originalCode ?? adapter.code ?? (adapter.kind ? KIND_STATES[adapter.kind] : undefined);
  return typeof e?.code === "string" && /^[0-9A-Z]{5}$/.test(e.code) ? e.code : undefined;
}

function prismaCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown })?.code;
  return typeof code === "string" && /^P\d{4}$/.test(code) ? code : undefined;
}

/** A deadlock victim or a serialization failure: running the same transaction again is correct. */
export function isTransactionConflict(error: unknown): boolean {
  const state = sqlState(error);
  return state === "40001" || state === "40P01" || PRISMA_CONFLICT.has(prismaCode(error) ?? "");
}

function isUnavailable(error: unknown): boolean {
  const state = sqlState(error);
  if (state && (state.startsWith("08") || ["57P01", "57P02", "57P03", "53300", "53400"].includes(state)))
    return true;
  if (PRISMA_UNAVAILABLE.has(prismaCode(error) ?? "")) return true;
  const message = error instanceof Error ? error.message : "";
  return /Connection terminated|connection error|ECONNREFUSED|ECONNRESET|Client has been closed|timeout exceeded when trying to connect/i.test(
    message,
  );
}

/**
 * The database refused a statement for a value in it (SQLSTATE class 22, data exception: e.g. a
 * string jsonb cannot hold, a time out of range; 54, a limit exceeded): the same statement would
 * be refused again, so retrying it as it is cannot help. Not class 23: no value of an outcome
 * breaks the module's constraints, so a violation is a race or a defect, not the data.
 */
export function isDataError(error: unknown): boolean {
  const state = sqlState(error);
  return state !== undefined && ["22", "54"].includes(state.slice(0, 2));
}

/** Whether an error came from the database or the client talking to it (not from the caller's code). */
export function isDatabaseError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  return (
    sqlState(error) !== undefined ||
    prismaCode(error) !== undefined ||
    /^PrismaClient|^DriverAdapterError$/.test(error.name) ||
    isUnavailable(error)
  );
}

/**
 * The typed error for a database error; anything else (an OperationsError, the caller's own error
 * thrown through a hook or a transaction callback) is returned unchanged.
 */
export function typedDatabaseError(error: unknown, action: string): unknown {
  if (error instanceof OperationsError || !isDatabaseError(error)) return error;
  if (isTransactionConflict(error)) return new ConcurrentUpdateError(action, error);
  if (isUnavailable(error)) return new DatabaseUnavailableError(action, error);
  const state = sqlState(error);
  if (state === "42P01" || state === "42883" || state === "3F000") return new SchemaMissingError(error);
  return new UnexpectedDatabaseError(action, error);
}

/**
 * Runs `fn`, again when the database chose it as a deadlock victim or failed it on serialization
 * (up to `attempts` times in all), and turns whatever the database throws into a typed error.
 * Only for work that is safe to run again from the start: one statement, or a transaction of ours.
 */
export async function withDatabase<R>(action: string, fn: () => Promise<R>, attempts = 4): Promise<R> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (error) {
      if (attempt < attempts && isTransactionConflict(error)) {
        await new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * 10 * attempt)));
        continue;
      }
      throw typedDatabaseError(error, action);
    }
  }
}
