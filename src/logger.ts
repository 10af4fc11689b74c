/**
 * Where the module reports what it did not throw (a failed dispatch, a rejected late completion).
 * Messages carry ids, types and error messages — never payloads.
 */
export interface Logger {
  debug(message: string, context?: Record<string, unknown>): void;
  info(message: string, context?: Record<string, unknown>): void;
  warn(message: string, context?: Record<string, unknown>): void;
  error(message: string, context?: Record<string, unknown>): void;
}

/** Warnings and errors to the console, prefixed; debug and info dropped. The default. */
export const consoleLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: (message, context) => console.warn(`[prisma-operations] ${message}`, context ?? ""),
  error: (message, context) => console.error(`[prisma-operations] ${message}`, context ?? ""),
};

/** Drops everything (tests that provoke failures on purpose). */
export const silentLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};
