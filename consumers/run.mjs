#!/usr/bin/env node
// Tests prisma-operations from the outside, the way users get it: packs the package (npm pack), installs
// the tarball into real apps with their own models and build tools, migrates a fresh database with
// Prisma's schema engine, starts the built app and runs end-to-end tests over HTTP (consumers/e2e).
//
//   node consumers/run.mjs [--only nest11,next16] [--keep]
//
// Variants: nest11, nest12 (consumers/nestjs), next15, next16 (consumers/nextjs), resolution
// (consumers/resolution: entry points and client typing, type-level only). Each runs in a temp copy
// of its app; nothing is written into the repository except dist/ (npm run build) and the packed
// tarball's temp folder. PostgreSQL: the server of DATABASE_URL (default
// postgresql://postgres@127.0.0.1:5432/postgres), on which each variant creates and drops its own
// databases. Prisma's schema engine: $PRISMA_ENGINE, else ../shared/tools/prisma-engine next to the
// repository, else /work/shared/tools/prisma-engine.
//
// Prints the time of each step and ends with `CONSUMERS {json}`; exits 1 when any variant failed.
/* global console, process, setTimeout, clearTimeout, fetch, URL, performance -- Node.js globals */
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.dirname(here);

// ---- what is tested ---------------------------------------------------------------------------

const nest = (major) => ({
  dependencies: {
    "@nestjs/common": `^${major}.0.0`,
    "@nestjs/core": `^${major}.0.0`,
    "@nestjs/platform-express": `^${major}.0.0`,
  },
  devDependencies: { "@nestjs/cli": `^${major}.0.0`, "@nestjs/testing": `^${major}.0.0` },
});

/** The apps: where they are, how they build and run, and their own model (for the migration check). */
const APPS = {
  nestjs: { framework: "nest", model: "Upload", table: "uploads", apiPrefix: "" },
  nextjs: { framework: "next", model: "Upload", table: "uploads", apiPrefix: "/api" },
  resolution: { framework: "types" },
};

const VARIANTS = {
  nest11: { app: "nestjs", versions: nest(11) },
  nest12: { app: "nestjs", versions: nest(12) },
  next15: { app: "nextjs", versions: { dependencies: { next: "^15.0.0" } } },
  next16: { app: "nextjs", versions: { dependencies: { next: "^16.0.0" } } },
  resolution: { app: "resolution", versions: {} },
};

/** The tsconfigs of consumers/resolution, each one way of resolving the package. */
const RESOLUTION_CHECKS = [
  ["node10 (module commonjs)", "tsconfig.node10.json"],
  ["node16 (a CommonJS package)", "tsconfig.node16.json"],
  ['nodenext (a "type": "module" package)', "tsconfig.nodenext-esm.json"],
  ["bundler", "tsconfig.bundler.json"],
  ["the app's client: accepted, tx typed, a client without the module refused", "tsconfig.client.json"],
];

// ---- options and environment ----------------------------------------------------------------

function parseArgs(argv) {
  const options = { only: Object.keys(VARIANTS), keep: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--keep") options.keep = true;
    else if (arg === "--only" || arg.startsWith("--only=")) {
      const value = arg.includes("=") ? arg.slice(arg.indexOf("=") + 1) : argv[++i];
      options.only = (value ?? "")
        .split(",")
        .map((name) => name.trim())
        .filter(Boolean);
      const unknown = options.only.filter((name) => !VARIANTS[name]);
      if (unknown.length || options.only.length === 0) {
        fail(
          `--only: unknown variant(s) ${unknown.join(", ") || "(none given)"}; known: ${Object.keys(VARIANTS).join(", ")}`,
        );
      }
    } else if (arg === "--help" || arg === "-h") {
      console.log(`usage: node consumers/run.mjs [--only ${Object.keys(VARIANTS).join(",")}] [--keep]`);
      process.exit(0);
    } else fail(`unknown argument ${arg}`);
  }
  return options;
}

function fail(message) {
  console.error(`run.mjs: ${message}`);
  process.exit(2);
}

function findPrismaEngine() {
  const candidates = [
    process.env.PRISMA_ENGINE,
    path.resolve(repo, "../shared/tools/prisma-engine"),
    "/work/shared/tools/prisma-engine",
  ].filter(Boolean);
  const found = candidates.find((candidate) => fs.existsSync(candidate));
  if (!found) {
    fail(
      `Prisma's schema engine runner was not found (looked at ${candidates.join(", ")}).\n` +
        "  Set PRISMA_ENGINE to the prisma-engine script (it drives Prisma 7.10.1's own schema engine, where\n" +
        "  `prisma migrate` cannot download its native binary).",
    );
  }
  return found;
}

// Environment for child processes: without the variables `npm run` sets for this repository, which
// would otherwise leak into the apps' own npm commands (e.g. npm_config_local_prefix).
const baseEnv = Object.fromEntries(
  Object.entries(process.env).filter(
    ([key]) => !/^npm_(package_|lifecycle_|command$|config_local_prefix$|config_prefix$)/i.test(key),
  ),
);
Object.assign(baseEnv, {
  NEXT_TELEMETRY_DISABLED: "1",
  NO_UPDATE_NOTIFIER: "1",
  npm_config_update_notifier: "false",
});

const adminUrl = process.env.DATABASE_URL || "postgresql://postgres@127.0.0.1:5432/postgres";

// ---- processes ----------------------------------------------------------------------------------

const running = new Set(); // process groups started here, stopped on exit or interrupt

function tail(text, lines = 60) {
  const all = text.trimEnd().split("\n");
  return (all.length > lines ? [`… (${all.length - lines} lines before)`, ...all.slice(-lines)] : all).join(
    "\n",
  );
}

function indent(text, prefix = "    ") {
  return text
    .split("\n")
    .map((line) => prefix + line)
    .join("\n");
}

/** Runs a command to its end; rejects (with the output's tail) on a non-zero exit unless `allowFail`. */
function run(command, args, { cwd, env = {}, timeoutMs = 300_000, allowFail = false } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd,
      env: { ...baseEnv, ...env },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true, // its own process group, so that a timeout stops its children too
    });
    running.add(child);
    let stdout = "";
    let stderr = "";
    let output = "";
    child.stdout.on("data", (chunk) => ((stdout += chunk), (output += chunk)));
    child.stderr.on("data", (chunk) => ((stderr += chunk), (output += chunk)));
    const timer = setTimeout(() => {
      output += `\n[run.mjs] timed out after ${timeoutMs / 1000} s; killed\n`;
      killGroup(child, "SIGKILL");
    }, timeoutMs);
    child.on("error", (error) => {
      clearTimeout(timer);
      running.delete(child);
      reject(new Error(`${command} ${args.join(" ")}: ${error.message}`));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      running.delete(child);
      const result = { code, signal, stdout, stderr, output };
      if (code === 0 || allowFail) resolve(result);
      else {
        const shown = [path.basename(command), ...args].join(" ");
        reject(new Error(`\`${shown}\` exited with ${code ?? signal}:\n${tail(output)}`));
      }
    });
  });
}

function killGroup(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

/** Starts a long-running process (an app server, a worker), its output going to a log file. */
function startProcess(command, args, { cwd, env, logFile }) {
  const log = fs.openSync(logFile, "a");
  const child = spawn(command, args, {
    cwd,
    env: { ...baseEnv, ...env },
    stdio: ["ignore", log, log],
    detached: true,
  });
  fs.closeSync(log);
  running.add(child);
  child.exited = new Promise((resolve) =>
    child.on("exit", (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    }),
  );
  child.logFile = logFile;
  return child;
}

/** SIGTERM, then waits for a graceful exit; SIGKILL and an error after `timeoutMs`. */
async function stopProcess(child, name, timeoutMs = 20_000) {
  const started = Date.now();
  killGroup(child, "SIGTERM");
  const exit = await Promise.race([child.exited, sleep(timeoutMs).then(() => null)]);
  if (!exit) {
    killGroup(child, "SIGKILL");
    await child.exited;
    throw new Error(
      `${name} did not stop within ${timeoutMs / 1000} s of SIGTERM:\n${tail(readLog(child), 30)}`,
    );
  }
  const graceful = exit.code === 0 || exit.signal === "SIGTERM" || exit.code === 143;
  const how = exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
  if (!graceful) throw new Error(`${name} exited with ${how} after SIGTERM:\n${tail(readLog(child), 30)}`);
  return `${name} stopped in ${((Date.now() - started) / 1000).toFixed(1)} s (${how})`;
}

const readLog = (child) => (fs.existsSync(child.logFile) ? fs.readFileSync(child.logFile, "utf8") : "");
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Waits until `url` answers 200, failing early when the process exits. */
async function waitForHttp(url, child, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  let last = "no answer";
  let exited = null;
  child.exited.then((exit) => (exited = exit));
  while (Date.now() < deadline) {
    if (exited)
      throw new Error(
        `exited (${JSON.stringify(exited)}) before answering ${url}:\n${tail(readLog(child), 40)}`,
      );
    try {
      const response = await fetch(url);
      if (response.ok) return;
      last = `HTTP ${response.status}: ${(await response.text()).slice(0, 200)}`;
    } catch (error) {
      last = error.cause?.code ?? error.message;
    }
    await sleep(250);
  }
  throw new Error(
    `${url} did not answer 200 within ${timeoutMs / 1000} s (last: ${last}):\n${tail(readLog(child), 40)}`,
  );
}

async function waitForLog(child, pattern, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  let exited = null;
  child.exited.then((exit) => (exited = exit));
  while (Date.now() < deadline) {
    if (pattern.test(readLog(child))) return;
    if (exited) throw new Error(`exited (${JSON.stringify(exited)}):\n${tail(readLog(child), 40)}`);
    await sleep(200);
  }
  throw new Error(`no line matching ${pattern} within ${timeoutMs / 1000} s:\n${tail(readLog(child), 40)}`);
}

// ---- databases ----------------------------------------------------------------------------------

const createdDatabases = new Set();

function databaseUrl(name) {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function admin(sql) {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

async function createDatabase(name) {
  await admin(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await admin(`CREATE DATABASE "${name}"`);
  createdDatabases.add(name);
  return databaseUrl(name);
}

async function dropDatabase(name) {
  await admin(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  createdDatabases.delete(name);
}

// ---- steps and reporting ------------------------------------------------------------------------

class VariantAborted extends Error {}

const seconds = (since) => Number(((performance.now() - since) / 1000).toFixed(1));

/**
 * Runs one step of a variant and prints its time. A failed step fails the variant; a `fatal` one
 * also ends it (the later steps need what it makes).
 */
async function step(ctx, name, fn, { fatal = true } = {}) {
  const started = performance.now();
  console.log(`[${ctx.name}] ${name} …`);
  try {
    const note = await fn();
    console.log(
      `[${ctx.name}] ${name}: ok (${seconds(started)} s)${typeof note === "string" && note ? `\n${indent(note)}` : ""}`,
    );
    ctx.steps.push({ name, ok: true, seconds: seconds(started) });
    return note;
  } catch (error) {
    console.log(
      `[${ctx.name}] ${name}: FAILED (${seconds(started)} s)\n${indent(error.message ?? String(error))}`,
    );
    ctx.steps.push({ name, ok: false, seconds: seconds(started) });
    ctx.failed.push(name);
    if (fatal) throw new VariantAborted(name);
    return undefined;
  }
}

const bin = (dir, name) => path.join(dir, "node_modules", ".bin", name);

// ---- the package --------------------------------------------------------------------------------

async function packPackage(tmpRoot) {
  const destination = path.join(tmpRoot, "pack");
  fs.mkdirSync(destination, { recursive: true });
  const pkg = JSON.parse(fs.readFileSync(path.join(repo, "package.json"), "utf8"));
  if (!pkg.scripts?.prepack) await run("npm", ["run", "build"], { cwd: repo });
  // `npm pack` runs the package's prepack (the build) first, as it does before a publish.
  await run("npm", ["pack", "--pack-destination", destination], { cwd: repo, timeoutMs: 600_000 });
  const tarballs = fs.readdirSync(destination).filter((file) => file.endsWith(".tgz"));
  if (tarballs.length !== 1)
    throw new Error(`expected one tarball in ${destination}, found ${tarballs.join(", ") || "none"}`);
  const tarball = path.join(destination, tarballs[0]);
  assertNoInstallScripts(tarball);
  return tarball;
}

/**
 * The packed manifest must not ask an installing app to run anything: our `prepare` generates this
 * repository's client from files the package does not ship (prepack strips it; this proves it did,
 * whatever packed the tarball). npm 11 would list it for approval, and an approved run would fail.
 */
function assertNoInstallScripts(tarball) {
  const manifest = JSON.parse(
    execFileSync("tar", ["-xOzf", tarball, "package/package.json"], { encoding: "utf8" }),
  );
  const lifecycle = ["preinstall", "install", "postinstall", "prepare"].filter(
    (name) => manifest.scripts?.[name] !== undefined,
  );
  if (lifecycle.length > 0) {
    throw new Error(`the packed package.json still has install-time scripts: ${lifecycle.join(", ")}`);
  }
}

/** Copies an app to `dest` without what a build or an install leaves behind. */
function copyApp(source, dest) {
  const skip = new Set(["node_modules", "dist", ".next", "generated", "package-lock.json"]);
  fs.cpSync(source, dest, {
    recursive: true,
    filter: (file) => !skip.has(path.basename(file)) && !file.endsWith(".tsbuildinfo"),
  });
}

/** Points the app at the tarball and this variant's versions. */
function setVersions(dir, tarball, versions) {
  const file = path.join(dir, "package.json");
  const pkg = JSON.parse(fs.readFileSync(file, "utf8"));
  pkg.dependencies["prisma-operations"] = `file:${tarball}`;
  for (const [field, deps] of Object.entries(versions)) pkg[field] = { ...pkg[field], ...deps };
  fs.writeFileSync(file, `${JSON.stringify(pkg, null, 2)}\n`);
}

const sameFile = (a, b) => fs.readFileSync(a).equals(fs.readFileSync(b));

/**
 * Puts the module's schema file(s) into the app's schema folder and its migrations into the app's
 * migrations folder. Prefers the package's own CLI (`npx prisma-operations init`) when the installed
 * package has it; otherwise copies them the way that CLI does, refusing to overwrite a changed file.
 * Afterwards checks that every file the package ships is in place, unchanged.
 */
async function installModuleFiles(
  appDir,
  { schemaDir = "prisma/schema", migrationsDir = "prisma/migrations" } = {},
) {
  const pkgDir = path.join(appDir, "node_modules", "prisma-operations");
  const shipped = moduleFiles(pkgDir);
  let how;
  if (fs.existsSync(bin(appDir, "prisma-operations"))) {
    const result = await run("npx", ["--no-install", "prisma-operations", "init"], {
      cwd: appDir,
      timeoutMs: 60_000,
    });
    how = `npx prisma-operations init:\n${indent(tail(result.output, 20))}`;
  } else {
    const copy = (from, to) => {
      if (fs.existsSync(to)) {
        if (!sameFile(from, to))
          throw new Error(
            `${path.relative(appDir, to)} exists and differs from the package's; not overwriting it`,
          );
        return;
      }
      fs.mkdirSync(path.dirname(to), { recursive: true });
      fs.copyFileSync(from, to);
    };
    for (const file of shipped.schemaFiles)
      copy(path.join(pkgDir, "prisma/schema", file), path.join(appDir, schemaDir, file));
    for (const migration of shipped.migrations) {
      for (const file of fs.readdirSync(path.join(pkgDir, "prisma/migrations", migration))) {
        copy(
          path.join(pkgDir, "prisma/migrations", migration, file),
          path.join(appDir, migrationsDir, migration, file),
        );
      }
    }
    const lock = path.join(appDir, migrationsDir, "migration_lock.toml");
    if (!fs.existsSync(lock) && fs.existsSync(path.join(pkgDir, "prisma/migrations/migration_lock.toml"))) {
      fs.copyFileSync(path.join(pkgDir, "prisma/migrations/migration_lock.toml"), lock);
    }
    how = "the installed package has no `prisma-operations` bin yet: copied its files as `init` will";
  }
  for (const file of shipped.schemaFiles) {
    const target = path.join(appDir, schemaDir, file);
    if (!fs.existsSync(target) || !sameFile(path.join(pkgDir, "prisma/schema", file), target)) {
      throw new Error(
        `${schemaDir}/${file} is missing or differs from the package's after installing the module's files`,
      );
    }
  }
  for (const migration of shipped.migrations) {
    const target = path.join(appDir, migrationsDir, migration, "migration.sql");
    if (
      !fs.existsSync(target) ||
      !sameFile(path.join(pkgDir, "prisma/migrations", migration, "migration.sql"), target)
    ) {
      throw new Error(`${migrationsDir}/${migration}/migration.sql is missing or differs from the package's`);
    }
  }
  return `${how}\n    schema: ${shipped.schemaFiles.join(", ")}; migrations: ${shipped.migrations.join(", ")}`;
}

/** What the installed package ships: its .prisma files, its migration folders, its tables and enums. */
function moduleFiles(pkgDir) {
  const schemaFiles = fs
    .readdirSync(path.join(pkgDir, "prisma/schema"))
    .filter((file) => file.endsWith(".prisma"));
  const migrations = fs
    .readdirSync(path.join(pkgDir, "prisma/migrations"), { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();
  // The database names of its models and enums: @@map("…"), else the block's own name.
  const names = [];
  for (const file of schemaFiles) {
    const text = fs.readFileSync(path.join(pkgDir, "prisma/schema", file), "utf8");
    for (const [, , name, body] of text.matchAll(/^\s*(model|enum)\s+(\w+)\s*\{([\s\S]*?)^\}/gm)) {
      names.push(body.match(/@@map\(\s*"([^"]+)"\s*\)/)?.[1] ?? name);
    }
  }
  return { schemaFiles, migrations, names };
}

// ---- prisma ----------------------------------------------------------------------------------

let placeholderEngine = null; // set once `prisma generate` failed to download the engine in this run

/**
 * `prisma generate`. Offline, Prisma 7's CLI fails downloading the schema-engine binary that
 * generation never runs; only then is it run again with PRISMA_SCHEMA_ENGINE_BINARY naming a
 * placeholder file, and this says so.
 */
async function prismaGenerate(ctx, args = []) {
  const prisma = bin(ctx.dir, "prisma");
  if (!placeholderEngine) {
    const first = await run(prisma, ["generate", ...args], {
      cwd: ctx.dir,
      allowFail: true,
      timeoutMs: 120_000,
    });
    if (first.code === 0) return "";
    if (!/binaries\.prisma\.sh|ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ETIMEDOUT|fetch failed/.test(first.output)) {
      throw new Error(`prisma generate failed:\n${tail(first.output)}`);
    }
    placeholderEngine = path.join(ctx.tmpRoot, "schema-engine-placeholder");
    fs.writeFileSync(placeholderEngine, "");
    console.log(
      `[${ctx.name}] prisma generate could not download the schema-engine binary (offline?); generation does not ` +
        `run it, so retrying with PRISMA_SCHEMA_ENGINE_BINARY=${placeholderEngine} (for the rest of this run)`,
    );
  }
  await run(prisma, ["generate", ...args], {
    cwd: ctx.dir,
    env: { PRISMA_SCHEMA_ENGINE_BINARY: placeholderEngine },
    timeoutMs: 120_000,
  });
  return "with PRISMA_SCHEMA_ENGINE_BINARY set to a placeholder (the engine download failed)";
}

function engine(ctx, args, env) {
  return run(ctx.prismaEngine, args, {
    cwd: ctx.dir,
    env: { SCHEMA: "prisma/schema", MIGRATIONS: "prisma/migrations", ...env },
    timeoutMs: 180_000,
  });
}

/** The part of a migration script that is not comments or blank. */
const sqlOnly = (script) =>
  script
    .split("\n")
    .filter((line) => !/^\s*(--.*)?$/.test(line))
    .join("\n");

async function migrate(ctx) {
  const app = APPS[ctx.variant.app];
  const main = `consumers_${ctx.name}_${process.pid}`;
  const shadow = `${main}_shadow`;
  ctx.databases.push(main, shadow);
  ctx.databaseUrl = await createDatabase(main);
  const shadowUrl = await createDatabase(shadow);
  const env = { DATABASE_URL: ctx.databaseUrl, SHADOW_DATABASE_URL: shadowUrl };
  const migrationsDir = path.join(ctx.dir, "prisma/migrations");
  const migrations = () =>
    fs
      .readdirSync(migrationsDir, { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => entry.name)
      .sort();
  const shipped = moduleFiles(path.join(ctx.dir, "node_modules", "prisma-operations"));

  await step(ctx, "migrate: prisma-engine deploy", async () => {
    const { stdout } = await engine(ctx, ["deploy"], env);
    const applied = JSON.parse(stdout.match(/appliedMigrationNames:\s*(\[.*\])/)?.[1] ?? "null");
    if (!applied) throw new Error(`unexpected output:\n${stdout}`);
    const missing = migrations().filter((name) => !applied.includes(name));
    if (missing.length) throw new Error(`not applied: ${missing.join(", ")}\n${stdout}`);
    return `applied ${applied.join(", ")}`;
  });

  await step(
    ctx,
    "migrate: prisma-engine status is clean",
    async () => {
      const { stdout } = await engine(ctx, ["status"], env);
      const status = JSON.parse(stdout.slice(stdout.indexOf("{")));
      const clean =
        status.history === null &&
        status.failedMigrationNames?.length === 0 &&
        status.editedMigrationNames?.length === 0;
      if (!clean) throw new Error(`status is not clean:\n${stdout}`);
    },
    { fatal: false },
  );

  await step(
    ctx,
    "migrate: prisma-engine diff-migrations is empty (migrations = schema)",
    async () => {
      const { stdout } = await engine(ctx, ["diff-migrations"], env);
      if (sqlOnly(stdout).trim()) throw new Error(`the migrations and the schema differ:\n${stdout}`);
    },
    { fatal: false },
  );

  await step(
    ctx,
    `migrate: a new field on ${app.model} makes a migration (dev-create-only) touching only "${app.table}"`,
    async () => {
      const schemaFile = path.join(ctx.dir, "prisma/schema/schema.prisma");
      const original = fs.readFileSync(schemaFile, "utf8");
      const modelStart = new RegExp(`^model\\s+${app.model}\\s*\\{\\s*$`, "m");
      if (!modelStart.test(original))
        throw new Error(`model ${app.model} not found in prisma/schema/schema.prisma`);
      const before = new Set(migrations());
      fs.writeFileSync(
        schemaFile,
        original.replace(modelStart, (line) => `${line}\n  consumerCheck String?`),
      );
      try {
        const { stdout } = await engine(ctx, ["dev-create-only", "consumers_check"], env);
        const created = migrations().filter((name) => !before.has(name));
        if (created.length !== 1)
          throw new Error(`expected one new migration, found ${created.length}:\n${stdout}`);
        const sql = fs.readFileSync(path.join(migrationsDir, created[0], "migration.sql"), "utf8");
        try {
          const statements = sqlOnly(sql);
          if (!statements.includes(`"${app.table}"`))
            throw new Error(`it does not alter "${app.table}":\n${sql}`);
          const touched = shipped.names.filter((name) => statements.includes(`"${name}"`));
          if (touched.length)
            throw new Error(`it touches the module's ${touched.map((n) => `"${n}"`).join(", ")}:\n${sql}`);
          return sql.trim();
        } finally {
          fs.rmSync(path.join(migrationsDir, created[0]), { recursive: true, force: true });
        }
      } finally {
        fs.writeFileSync(schemaFile, original);
      }
    },
    { fatal: false },
  );
}

// ---- the variants -------------------------------------------------------------------------------

async function typecheck(ctx, project = "tsconfig.json") {
  const result = await run(bin(ctx.dir, "tsc"), ["--noEmit", "-p", project], {
    cwd: ctx.dir,
    allowFail: true,
    timeoutMs: 300_000,
  });
  if (result.code !== 0) throw new Error(`tsc --noEmit -p ${project}:\n${tail(result.output, 80)}`);
}

/**
 * The README's TypeScript blocks are copies of docs/snippets/*.ts (scripts/readme-snippets.mjs
 * keeps them equal): here they are compiled in this app, against the installed package and the
 * app's own generated client, where they import it from (`./generated/prisma/client`).
 */
async function checkSnippets(ctx) {
  const dir = path.join(ctx.dir, "snippets");
  const files = fs.readdirSync(path.join(repo, "docs", "snippets")).filter((file) => file.endsWith(".ts"));
  fs.mkdirSync(path.join(dir, "generated"), { recursive: true });
  for (const file of files) fs.copyFileSync(path.join(repo, "docs", "snippets", file), path.join(dir, file));
  fs.symlinkSync(path.join(ctx.dir, "generated", "app"), path.join(dir, "generated", "prisma"));
  // ES modules (some snippets use top-level await), checked as a bundler app (Next.js style) and as
  // a Node app under nodenext, where relative imports need their `.js`.
  fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ type: "module" }));
  const settings = {
    bundler: { module: "esnext", moduleResolution: "bundler" },
    nodenext: { module: "nodenext", moduleResolution: "nodenext" },
  };
  for (const [name, options] of Object.entries(settings)) {
    fs.writeFileSync(
      path.join(dir, `tsconfig.${name}.json`),
      JSON.stringify({
        extends: "../tsconfig.base.json",
        compilerOptions: { ...options, skipLibCheck: true },
        include: ["*.ts"],
      }),
    );
    await run(bin(ctx.dir, "tsc"), ["-p", `snippets/tsconfig.${name}.json`], { cwd: ctx.dir });
  }
  return `${files.join(", ")} (bundler and nodenext)`;
}

async function buildNest(ctx, typesOk) {
  if (typesOk) {
    await run(bin(ctx.dir, "nest"), ["build"], { cwd: ctx.dir });
  } else {
    // The same output as `nest build` (tsc with tsconfig.build.json), without the type check, so that
    // the runtime tests still run; the variant has already failed on its type errors.
    fs.rmSync(path.join(ctx.dir, "dist"), { recursive: true, force: true });
    for (const file of fs.readdirSync(ctx.dir).filter((f) => f.endsWith(".tsbuildinfo")))
      fs.rmSync(path.join(ctx.dir, file));
    await run(bin(ctx.dir, "tsc"), ["-p", "tsconfig.build.json", "--noCheck"], { cwd: ctx.dir });
  }
  if (!fs.existsSync(path.join(ctx.dir, "dist/main.js"))) throw new Error("the build made no dist/main.js");
  return typesOk
    ? ""
    : "type check failed above: compiled with `tsc -p tsconfig.build.json --noCheck` instead of `nest build`";
}

async function buildNext(ctx, typesOk) {
  if (!typesOk) {
    // next build type-checks too; with the type errors already reported, let it build to test the runtime.
    const file = path.join(ctx.dir, "next.config.ts");
    const config = fs.readFileSync(file, "utf8");
    const patched = config.replace(
      /(const nextConfig: NextConfig = \{)/,
      "$1 typescript: { ignoreBuildErrors: true },",
    );
    if (patched === config)
      throw new Error(
        "cannot turn off next build's type check: next.config.ts has no `const nextConfig: NextConfig = {`",
      );
    fs.writeFileSync(file, patched);
  }
  const result = await run(bin(ctx.dir, "next"), ["build"], { cwd: ctx.dir, timeoutMs: 600_000 });
  const routes = result.output
    .slice(result.output.indexOf("Route (app)"))
    .split("\n")
    .slice(0, 14)
    .join("\n");
  return `${typesOk ? "" : "type check failed above: built with typescript.ignoreBuildErrors (temp copy only)\n"}${routes}`;
}

async function runApp(ctx) {
  const app = APPS[ctx.variant.app];
  const port = await freePort();
  const logs = path.join(ctx.dir, "logs");
  fs.mkdirSync(logs, { recursive: true });
  const env = { DATABASE_URL: ctx.databaseUrl, PORT: String(port), NODE_ENV: "production" };
  const processes = [];
  try {
    await step(ctx, "start the built app", async () => {
      if (app.framework === "nest") {
        processes.push([
          "server",
          startProcess(process.execPath, ["dist/main.js"], {
            cwd: ctx.dir,
            env,
            logFile: path.join(logs, "server.log"),
          }),
        ]);
      } else {
        const next = path.join(ctx.dir, "node_modules/next/dist/bin/next");
        processes.push([
          "server",
          startProcess(process.execPath, [next, "start", "-p", String(port), "-H", "127.0.0.1"], {
            cwd: ctx.dir,
            env,
            logFile: path.join(logs, "server.log"),
          }),
        ]);
        processes.push([
          "worker",
          startProcess(process.execPath, ["--import", "tsx", "worker.ts"], {
            cwd: ctx.dir,
            env,
            logFile: path.join(logs, "worker.log"),
          }),
        ]);
      }
      const [, server] = processes[0];
      await waitForHttp(`http://127.0.0.1:${port}${app.apiPrefix}/metrics`, server);
      if (processes[1]) await waitForLog(processes[1][1], /worker .* started/);
      return `http://127.0.0.1:${port}${app.apiPrefix}${processes[1] ? " (and the worker process)" : ""}`;
    });

    await step(
      ctx,
      "e2e tests over HTTP (node --test)",
      async () => {
        fs.copyFileSync(path.join(here, "e2e/http.test.mjs"), path.join(ctx.dir, "e2e.test.mjs"));
        const result = await run(process.execPath, ["--test", "--test-reporter=spec", "e2e.test.mjs"], {
          cwd: ctx.dir,
          env: { BASE_URL: `http://127.0.0.1:${port}${app.apiPrefix}`, DATABASE_URL: ctx.databaseUrl },
          allowFail: true,
          timeoutMs: 300_000,
        });
        const report = result.output.trimEnd();
        if (result.code !== 0) {
          const serverLogs = processes
            .map(([name, child]) => `--- ${name} log (tail) ---\n${tail(readLog(child), 40)}`)
            .join("\n");
          throw new Error(`${report}\n${serverLogs}`);
        }
        return report;
      },
      { fatal: false },
    );
  } finally {
    for (const [name, child] of processes.reverse()) {
      await step(ctx, `stop the ${name} (SIGTERM)`, () => stopProcess(child, name), { fatal: false });
    }
  }
}

async function runVariant(name, { tarball, tmpRoot, prismaEngine }) {
  const variant = VARIANTS[name];
  const app = APPS[variant.app];
  const ctx = {
    name,
    variant,
    tmpRoot,
    prismaEngine,
    dir: path.join(tmpRoot, name),
    steps: [],
    failed: [],
    databases: [],
  };
  const started = performance.now();
  console.log(
    `\n=== ${name}: consumers/${variant.app} ${JSON.stringify({ ...variant.versions.dependencies, ...variant.versions.devDependencies })}`,
  );
  try {
    await step(ctx, "copy the app and npm install the tarball", async () => {
      copyApp(path.join(here, variant.app), ctx.dir);
      setVersions(ctx.dir, tarball, variant.versions);
      await run("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund"], {
        cwd: ctx.dir,
        timeoutMs: 600_000,
      });
      const { stdout } = await run("npm", ["ls", "--depth=0"], { cwd: ctx.dir, allowFail: true });
      return stdout
        .split("\n")
        .filter((line) =>
          /@nestjs\/(core|cli)@|next@|prisma@|@prisma\/client@|typescript@|prisma-operations@/.test(line),
        )
        .join("\n")
        .replace(/^[├└│─┬ ]+/gm, "");
    });
    await step(ctx, "install the module's schema and migrations (installModuleFiles)", () =>
      installModuleFiles(ctx.dir),
    );

    if (app.framework === "types") {
      await step(ctx, "prisma generate (the app's schema, with the module's models)", () =>
        prismaGenerate(ctx),
      );
      await step(ctx, "prisma generate (prisma/bare: a schema without them)", () =>
        prismaGenerate(ctx, ["--schema", "prisma/bare"]),
      );
      for (const [label, project] of RESOLUTION_CHECKS) {
        await step(ctx, `tsc --noEmit: ${label}`, () => typecheck(ctx, project), { fatal: false });
      }
      await step(
        ctx,
        "the README's TypeScript examples compile (strict), as written",
        () => checkSnippets(ctx),
        {
          fatal: false,
        },
      );
      await step(
        ctx,
        "the entry points load with require() and import()",
        async () => (await run(process.execPath, ["runtime.cjs"], { cwd: ctx.dir })).stdout.trim(),
        { fatal: false },
      );
    } else {
      await step(ctx, "prisma generate", () => prismaGenerate(ctx));
      const typesOk =
        (await step(ctx, "tsc --noEmit (strict)", () => typecheck(ctx).then(() => true), {
          fatal: false,
        })) === true;
      await step(ctx, app.framework === "nest" ? "nest build" : "next build", () =>
        app.framework === "nest" ? buildNest(ctx, typesOk) : buildNext(ctx, typesOk),
      );
      await migrate(ctx);
      await runApp(ctx);
    }
  } catch (error) {
    if (!(error instanceof VariantAborted)) {
      console.log(`[${name}] error: ${error.stack ?? error}`);
      ctx.failed.push(`error: ${error.message}`);
    }
  } finally {
    for (const database of ctx.databases) {
      await dropDatabase(database).catch((error) =>
        console.log(`[${name}] could not drop database ${database}: ${error.message}`),
      );
    }
  }
  const result = { ok: ctx.failed.length === 0, seconds: seconds(started), failed: ctx.failed };
  console.log(
    `=== ${name}: ${result.ok ? "PASS" : `FAIL (${ctx.failed.join("; ")})`} in ${result.seconds} s`,
  );
  return result;
}

// ---- main ---------------------------------------------------------------------------------------

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const prismaEngine = findPrismaEngine();
  const started = performance.now();
  const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "prisma-operations-consumers-"));
  if (!options.keep) interrupted.tmpRoot = tmpRoot;
  console.log(
    `consumers: ${options.only.join(", ")}; temp dir ${tmpRoot}; PostgreSQL ${new URL(adminUrl).host}; engine ${prismaEngine}`,
  );

  const results = {};
  let tarball;
  const packStarted = performance.now();
  try {
    await admin("SELECT 1").catch((error) => {
      throw new Error(
        `cannot reach PostgreSQL at ${new URL(adminUrl).host} (DATABASE_URL): ${error.message}`,
      );
    });
    tarball = await packPackage(tmpRoot);
    console.log(
      `[pack] ${path.basename(tarball)} (${(fs.statSync(tarball).size / 1024).toFixed(0)} kB): ok (${seconds(packStarted)} s)`,
    );
  } catch (error) {
    console.log(`[pack] FAILED (${seconds(packStarted)} s)\n${indent(error.message)}`);
    for (const name of options.only) results[name] = { ok: false, seconds: 0, failed: ["pack"] };
  }

  if (tarball) {
    for (const name of options.only)
      results[name] = await runVariant(name, { tarball, tmpRoot, prismaEngine });
  }

  if (options.keep) console.log(`\nkept ${tmpRoot}`);
  else fs.rmSync(tmpRoot, { recursive: true, force: true });

  const ok = Object.values(results).every((result) => result.ok);
  console.log("\nsummary:");
  for (const [name, result] of Object.entries(results)) {
    console.log(
      `  ${name.padEnd(11)} ${result.ok ? "pass" : "FAIL"} ${String(result.seconds).padStart(6)} s${result.ok ? "" : `  (${result.failed.join("; ")})`}`,
    );
  }
  console.log(`CONSUMERS ${JSON.stringify({ ok, seconds: seconds(started), variants: results })}`);
  process.exitCode = ok ? 0 : 1;
}

const interrupted = { tmpRoot: null }; // what to remove on an interrupt (not with --keep)

async function cleanUpAndExit(signal) {
  console.log(`\n${signal}: stopping what was started and dropping the databases`);
  for (const child of running) killGroup(child, "SIGKILL");
  for (const database of createdDatabases) await dropDatabase(database).catch(() => {});
  if (interrupted.tmpRoot) fs.rmSync(interrupted.tmpRoot, { recursive: true, force: true });
  process.exit(130);
}
process.once("SIGINT", () => void cleanUpAndExit("SIGINT"));
process.once("SIGTERM", () => void cleanUpAndExit("SIGTERM"));

await main();
