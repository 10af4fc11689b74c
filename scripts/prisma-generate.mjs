#!/usr/bin/env node
// Runs `prisma generate`, working around one offline limitation of Prisma 7's CLI.
//
// The CLI downloads the native schema-engine binary before generating, although generation never
// runs it. Where binaries.prisma.sh is unreachable that download fails and so does `generate`.
// Only in that case do we retry with PRISMA_SCHEMA_ENGINE_BINARY pointing at a placeholder file,
// and we say so: a connected machine generates exactly as plain `prisma generate` would.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const prismaArgs = ["prisma", "generate", ...process.argv.slice(2)];

function run(env) {
  const child = spawnSync("npx", ["--no-install", ...prismaArgs], { env, encoding: "utf8" });
  return { status: child.status ?? 1, output: `${child.stdout ?? ""}${child.stderr ?? ""}` };
}

const first = run(process.env);
if (first.status === 0) {
  process.stdout.write(first.output);
  process.exit(0);
}

const downloadFailed = /binaries\.prisma\.sh|ENOTFOUND|EAI_AGAIN|ECONNREFUSED|fetch failed/.test(
  first.output,
);
if (!downloadFailed || process.env.PRISMA_SCHEMA_ENGINE_BINARY) {
  process.stderr.write(first.output);
  process.exit(first.status);
}

const placeholderDir = mkdtempSync(join(tmpdir(), "prisma-operations-"));
const placeholder = join(placeholderDir, "schema-engine-placeholder");
writeFileSync(placeholder, "");
console.warn(
  "prisma-generate: the schema-engine download failed (offline?); generation does not run that engine,\n" +
    "so retrying with PRISMA_SCHEMA_ENGINE_BINARY set to a placeholder. `prisma migrate` still needs the real engine.",
);
const second = run({ ...process.env, PRISMA_SCHEMA_ENGINE_BINARY: placeholder });
rmSync(placeholderDir, { recursive: true, force: true });
process.stdout.write(second.output);
process.exit(second.status);
