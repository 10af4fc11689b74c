#!/usr/bin/env node
// The `prisma-operations` command shipped with the package.
import { parseArgs } from "node:util";
import { init } from "./init";

const USAGE = `usage: prisma-operations init [--schema <folder>] [--migrations <folder>] [--dry-run]

Copies the module's Prisma models (operations.prisma) into your schema folder and its migrations
into your migrations folder. Safe to run again after an upgrade: identical files are left alone,
the models as an earlier version shipped them are updated, new migrations are added, and files you
changed are refused (exit code 1).`;

function main(argv: string[]): number {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      schema: { type: "string" },
      migrations: { type: "string" },
      "dry-run": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (positionals[0] !== "init" || positionals.length > 1) {
    console.error(USAGE);
    return 2;
  }
  const report = init({
    cwd: process.cwd(),
    schemaDir: values.schema,
    migrationsDir: values.migrations,
    dryRun: values["dry-run"],
  });
  const dryRun: Record<string, string> = { created: "would create", updated: "would update" };
  const said = (action: string) => (values["dry-run"] ? (dryRun[action] ?? action) : action);
  for (const file of report.files) console.log(`  ${said(file.action).padEnd(12)} ${file.path}`);
  for (const note of report.notes) console.log(`note: ${note}`);
  const refused = report.files.filter((file) => file.action === "refused");
  console.log(refused.length ? "\nrefused to overwrite changed files:" : "\nnext:");
  for (const step of report.nextSteps) console.log(`  ${step}`);
  return refused.length ? 1 : 0;
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (error) {
  console.error(`prisma-operations: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 2;
}
