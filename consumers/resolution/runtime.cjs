// The entry points load at run time from CommonJS (require) and from an ES module (import), and
// expose what their types promise.
/* global require, console, process -- Node.js (CommonJS) globals */
/* eslint-disable @typescript-eslint/no-require-imports -- this file checks require() itself */
const assert = require("node:assert/strict");

const entries = {
  "prisma-operations": ["createOperations", "defineOperationType", "OperationsError", "applyMigrations"],
  "prisma-operations/nestjs": [
    "OperationsModule",
    "OperationHandler",
    "OperationsExceptionFilter",
    "OperationsService",
  ],
  "prisma-operations/http": ["toHttpError"],
  "prisma-operations/embedded": ["openEmbeddedDatabase"],
};

(async () => {
  for (const [entry, names] of Object.entries(entries)) {
    const required = require(entry);
    const imported = await import(entry);
    for (const name of names) {
      assert.equal(typeof required[name], "function", `require("${entry}").${name}`);
      assert.equal(
        typeof imported[name],
        "function",
        `import("${entry}").${name} (named export seen from ESM)`,
      );
    }
    console.log(`${entry}: require and import expose ${names.join(", ")}`);
  }
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
