// Applies prisma/migrations/*/migration.sql in order and records each in `_prisma_migrations` the
// way `prisma migrate deploy` does (same table, same checksum: sha256 hex of the file), so the
// two agree: a database migrated here is "up to date" for `prisma migrate deploy`, and vice versa.
// Used by the tests and the embedded mode, where Prisma's migrate engine cannot run.
import { createHash, randomUUID } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { OperationsError } from "../errors";

/** One connection that runs SQL: a `pg` Client (or a checked-out PoolClient), or PGlite. Not a Pool: the
 * transaction around each migration must stay on one connection. */
export interface SqlConnection {
  query<R = Record<string, unknown>>(text: string, params?: unknown[]): Promise<{ rows: R[] }>;
  /** Runs a multi-statement script (PGlite); without it `query` gets the script (pg's simple protocol). */
  exec?(script: string): Promise<unknown>;
}

export interface Migration {
  name: string;
  sql: string;
  checksum: string;
}

export interface MigrationReport {
  applied: string[];
  alreadyApplied: string[];
}

/** A recorded migration no longer matches its file, or an earlier attempt failed halfway. */
export class MigrationStateError extends OperationsError {
  constructor(message: string) {
    super("migration_state", message);
  }
}

// The advisory lock `prisma migrate` takes, so this applier and Prisma's never interleave.
const PRISMA_MIGRATE_LOCK = 72707369;

const BOOKKEEPING_TABLE = `
CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0,
    CONSTRAINT "_prisma_migrations_pkey" PRIMARY KEY ("id")
)`;

/** The folder holding this package's migrations, in the source tree or in a build. */
export function defaultMigrationsDir(): string {
  for (const up of ["../..", "../../.."]) {
    const dir = resolve(__dirname, up, "prisma", "migrations");
    if (existsSync(dir)) return dir;
  }
  throw new MigrationStateError(`prisma/migrations not found above ${__dirname}`);
}

/** Reads the migrations of a folder in the order Prisma applies them (by folder name). */
export function readMigrations(dir: string = defaultMigrationsDir()): Migration[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(join(dir, entry.name, "migration.sql")))
    .map((entry) => entry.name)
    .sort()
    .map((name) => {
      const sql = readFileSync(join(dir, name, "migration.sql"), "utf8");
      return { name, sql, checksum: createHash("sha256").update(sql).digest("hex") };
    });
}

async function runScript(connection: SqlConnection, script: string): Promise<void> {
  if (connection.exec) await connection.exec(script);
  else await connection.query(script);
}

/**
 * Applies every migration not yet recorded, each in its own transaction together with its
 * `_prisma_migrations` row. Refuses to go on when a recorded migration's file has changed or an
 * earlier attempt was left unfinished, as `prisma migrate deploy` does.
 */
export async function applyMigrations(
  connection: SqlConnection,
  migrations: readonly Migration[] = readMigrations(),
): Promise<MigrationReport> {
  await runScript(connection, BOOKKEEPING_TABLE);
  await connection.query(`SELECT pg_advisory_lock(${PRISMA_MIGRATE_LOCK})`);
  try {
    const { rows } = await connection.query<{
      migration_name: string;
      checksum: string;
      finished_at: Date | null;
      rolled_back_at: Date | null;
    }>(
      `SELECT migration_name, checksum, finished_at, rolled_back_at FROM "_prisma_migrations" ORDER BY started_at`,
    );
    const recorded = new Map(
      rows.filter((row) => row.rolled_back_at === null).map((r) => [r.migration_name, r]),
    );
    const report: MigrationReport = { applied: [], alreadyApplied: [] };
    for (const migration of migrations) {
      const row = recorded.get(migration.name);
      if (row && row.finished_at === null) {
        throw new MigrationStateError(
          `migration ${migration.name} was started but did not finish; resolve it (prisma migrate resolve) first`,
        );
      }
      if (row) {
        if (row.checksum !== migration.checksum) {
          throw new MigrationStateError(`migration ${migration.name} was modified after it was applied`);
        }
        report.alreadyApplied.push(migration.name);
        continue;
      }
      await runScript(connection, "BEGIN");
      try {
        await runScript(connection, migration.sql);
        await connection.query(
          `INSERT INTO "_prisma_migrations" (id, checksum, migration_name, started_at, finished_at, applied_steps_count)
           VALUES ($1, $2, $3, now(), clock_timestamp(), 1)`,
          [randomUUID(), migration.checksum, migration.name],
        );
        await runScript(connection, "COMMIT");
      } catch (error) {
        await runScript(connection, "ROLLBACK");
        throw error;
      }
      report.applied.push(migration.name);
    }
    return report;
  } finally {
    await connection.query(`SELECT pg_advisory_unlock(${PRISMA_MIGRATE_LOCK})`);
  }
}
