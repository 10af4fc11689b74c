// A copy of ../entries.ts: the same imports from an ES module (this folder is "type": "module").
// Every entry point resolves, with its types: under `strict`, an import without types is error
// TS7016, and the symbols below are checked not to be `any`. Compiled by tsconfig.node10.json (module
// commonjs, as a `nest new` app of old), tsconfig.node16.json (a CommonJS package under node16) and
// tsconfig.bundler.json (Next.js, Vite); esm/entries.ts is the same file in a `"type": "module"`
// package, compiled by tsconfig.nodenext-esm.json.
import { applyMigrations, createOperations, defineOperationType, OperationsError } from "prisma-operations";
import type { OperationsService } from "prisma-operations";
import { OperationHandler, OperationsExceptionFilter, OperationsModule } from "prisma-operations/nestjs";
import { toHttpError, type HttpError } from "prisma-operations/http";
import { openEmbeddedDatabase } from "prisma-operations/embedded";

type IsAny<T> = 0 extends 1 & T ? true : false;

// A union with `any` in it is `any`: one unresolved symbol makes this line fail.
export const typed: IsAny<
  | typeof applyMigrations
  | typeof createOperations
  | typeof defineOperationType
  | typeof OperationsError
  | OperationsService
  | typeof OperationHandler
  | typeof OperationsExceptionFilter
  | typeof OperationsModule
  | typeof toHttpError
  | HttpError
  | typeof openEmbeddedDatabase
> = false;

// Signatures exercised, not only named.
export const status: number = toHttpError(new OperationsError("some_code", "a message")).status;
export const forRoot = OperationsModule.forRoot;
