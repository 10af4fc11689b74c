// `prisma-operations init`: copies the module's Prisma models and migrations into an application,
// so that `prisma generate` gives the app's client the module's models and `prisma migrate deploy`
// creates its tables. Safe to run again after an upgrade: a file already there and identical is left
// alone, the models as an earlier version shipped them are replaced (new migrations are added), and
// a file the app changed is refused, never overwritten.
import { createHash } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { EARLIER_SCHEMA_SHA256 } from "./earlier-schemas";

/** Where the module's own files are: the package root (holds prisma/schema/operations.prisma). */
export function packageRoot(from: string = __dirname): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "prisma", "schema", "operations.prisma"))) return dir;
    if (dirname(dir) === dir)
      throw new Error(`prisma-operations: its prisma/ folder was not found above ${from}`);
  }
}

export interface InitOptions {
  /** The application's folder. */
  cwd: string;
  /** The app's schema folder; default from its prisma.config, else prisma/schema or prisma. */
  schemaDir?: string;
  /** The app's migrations folder; default from its prisma.config, else prisma/migrations. */
  migrationsDir?: string;
  /** Say what would be done, write nothing. */
  dryRun?: boolean;
}

export type FileAction = "created" | "unchanged" | "updated" | "refused";

export interface InitReport {
  schemaDir: string;
  migrationsDir: string;
  files: { path: string; action: FileAction }[];
  /** Things the user must do, in order. */
  nextSteps: string[];
  /** Notes about the app's set-up (e.g. a single-file schema). */
  notes: string[];
}

interface AppConfig {
  schema?: string;
  migrations?: string;
}

const CONFIG_EXTENSIONS = [".js", ".ts", ".mjs", ".cjs", ".mts", ".cts"];

/**
 * Where Prisma 7 looks for its config, in its order (@prisma/config's loadConfigFromFile):
 * `prisma7.config.*` (what `prisma init` writes), `.config/prisma7.*`, then the older names.
 */
const CONFIG_CANDIDATES = [
  ...CONFIG_EXTENSIONS.map((ext) => `prisma7.config${ext}`),
  ...CONFIG_EXTENSIONS.map((ext) => join(".config", `prisma7${ext}`)),
  ...["prisma.config", join(".config", "prisma"), join(".config", "prisma.config")].flatMap((base) => [
    ...CONFIG_EXTENSIONS.map((ext) => `${base}${ext}`),
    ...CONFIG_EXTENSIONS.map((ext) => join(base, `index${ext}`)),
  ]),
];

/** The schema and migrations paths of the app's Prisma config (read as text, not run). */
export function readAppConfig(cwd: string): AppConfig {
  const file = CONFIG_CANDIDATES.map((name) => join(cwd, name)).find(
    (path) => existsSync(path) && statSync(path).isFile(),
  );
  if (!file) return {};
  const text = readFileSync(file, "utf8");
  const schema = /\bschema\s*:\s*["'`]([^"'`]+)["'`]/.exec(text)?.[1];
  const migrations = /\bmigrations\s*:\s*\{[^}]*\bpath\s*:\s*["'`]([^"'`]+)["'`]/s.exec(text)?.[1];
  return { schema, migrations };
}

function place(options: InitOptions): { schemaDir: string; migrationsDir: string; notes: string[] } {
  const notes: string[] = [];
  const config = readAppConfig(options.cwd);
  let schemaDir = options.schemaDir && resolve(options.cwd, options.schemaDir);
  if (!schemaDir && config.schema) {
    const configured = resolve(options.cwd, config.schema);
    if (existsSync(configured) && statSync(configured).isFile()) {
      schemaDir = dirname(configured);
      notes.push(
        `your prisma.config points at one schema file (${config.schema}); Prisma reads every .prisma file of a folder ` +
          `only when the config names the folder: set \`schema: "${relative(options.cwd, schemaDir) || "."}"\``,
      );
    } else schemaDir = configured;
  }
  schemaDir ??= [join(options.cwd, "prisma", "schema"), join(options.cwd, "prisma")].find(existsSync);
  schemaDir ??= join(options.cwd, "prisma", "schema");
  const migrationsDir =
    (options.migrationsDir && resolve(options.cwd, options.migrationsDir)) ??
    (config.migrations && resolve(options.cwd, config.migrations)) ??
    join(options.cwd, "prisma", "migrations");
  return { schemaDir, migrationsDir, notes };
}

/**
 * Copies `source` to `target` unless the target exists: identical is fine; one that `replaceable`
 * accepts (an earlier version's, never edited) is replaced; any other difference is refused.
 */
function copyOnce(
  source: string,
  target: string,
  dryRun: boolean,
  replaceable: (existing: Buffer) => boolean = () => false,
): FileAction {
  let action: FileAction = "created";
  if (existsSync(target)) {
    const existing = readFileSync(target);
    if (existing.equals(readFileSync(source))) return "unchanged";
    if (!replaceable(existing)) return "refused";
    action = "updated";
  }
  if (!dryRun) {
    mkdirSync(dirname(target), { recursive: true });
    copyFileSync(source, target);
  }
  return action;
}

/** An operations.prisma exactly as an earlier version of this package shipped it. */
function earlierSchema(existing: Buffer): boolean {
  return EARLIER_SCHEMA_SHA256.has(createHash("sha256").update(existing).digest("hex"));
}

export function init(options: InitOptions): InitReport {
  const root = packageRoot();
  const { schemaDir, migrationsDir, notes } = place(options);
  const files: InitReport["files"] = [];
  const copy = (source: string, target: string, replaceable?: (existing: Buffer) => boolean) =>
    files.push({
      path: relative(options.cwd, target),
      action: copyOnce(source, target, options.dryRun ?? false, replaceable),
    });

  copy(
    join(root, "prisma", "schema", "operations.prisma"),
    join(schemaDir, "operations.prisma"),
    earlierSchema,
  );
  const shipped = join(root, "prisma", "migrations");
  for (const name of readdirSync(shipped).sort()) {
    const sql = join(shipped, name, "migration.sql");
    if (existsSync(sql)) copy(sql, join(migrationsDir, name, "migration.sql"));
  }
  // Prisma's lock file, written as `prisma migrate` writes it, unless the app has one (left alone).
  const lock = join(migrationsDir, "migration_lock.toml");
  if (!existsSync(lock)) {
    if (!options.dryRun) {
      mkdirSync(migrationsDir, { recursive: true });
      writeFileSync(
        lock,
        "# Please do not edit this file manually\n# It should be added in your version-control system (e.g., Git)\n" +
          'provider = "postgresql"\n',
      );
    }
    files.push({ path: relative(options.cwd, lock), action: "created" });
  }

  const nextSteps = files.some((file) => file.action === "refused")
    ? [
        "resolve the refused files: each differs from the one this version of prisma-operations ships " +
          "(compare with node_modules/prisma-operations/prisma/); a migration that was already applied must not change",
      ]
    : [
        "npx prisma generate          # your client gets operationBatch, operation, outboxEvent, …",
        "npx prisma migrate deploy    # creates the module's tables (or `prisma migrate dev` in development)",
      ];
  return { schemaDir, migrationsDir, files, nextSteps, notes };
}
