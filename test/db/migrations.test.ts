// The migration applier records what `prisma migrate deploy` records, and the migrations produce
// exactly the schema that prisma/schema/*.prisma describes (no drift).
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { get_dmmf } from "@prisma/prisma-schema-wasm";
import { Client } from "pg";
import { applyMigrations, MigrationStateError, readMigrations } from "../../src";
import { createTestDatabase, type TestDatabase } from "../support/db";

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.close());

async function withClient<T>(fn: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: db.url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

describe("the migration applier", () => {
  it("recorded each migration as Prisma does: name, sha256 checksum of the file, finished, one step", async () => {
    const migrations = readMigrations();
    expect(migrations.length).toBeGreaterThan(0);
    const { rows } = await db.pool.query(
      `SELECT migration_name, checksum, finished_at, rolled_back_at, applied_steps_count, logs, length(id) AS id_length
       FROM _prisma_migrations ORDER BY started_at`,
    );
    expect(rows).toEqual(
      migrations.map((migration) => ({
        migration_name: migration.name,
        checksum: createHash("sha256")
          .update(readFileSync(join(__dirname, "../../prisma/migrations", migration.name, "migration.sql")))
          .digest("hex"),
        finished_at: expect.any(Date),
        rolled_back_at: null,
        applied_steps_count: 1,
        logs: null,
        id_length: 36,
      })),
    );
    const { rows: columns } = await db.pool.query(
      `SELECT column_name, data_type, is_nullable FROM information_schema.columns
       WHERE table_name = '_prisma_migrations' ORDER BY ordinal_position`,
    );
    expect(columns.map((c) => `${c.column_name} ${c.data_type} ${c.is_nullable}`)).toEqual([
      "id character varying NO",
      "checksum character varying NO",
      "finished_at timestamp with time zone YES",
      "migration_name character varying NO",
      "logs text YES",
      "rolled_back_at timestamp with time zone YES",
      "started_at timestamp with time zone NO",
      "applied_steps_count integer NO",
    ]);
  });

  it("does nothing on a database that is up to date", async () => {
    const report = await withClient((client) => applyMigrations(client));
    expect(report.applied).toEqual([]);
    expect(report.alreadyApplied).toEqual(readMigrations().map((migration) => migration.name));
  });

  it("refuses to go on when an applied migration's file has changed", async () => {
    const [first, ...rest] = readMigrations();
    const edited = {
      ...first!,
      checksum: createHash("sha256")
        .update(first!.sql + "\n-- edited")
        .digest("hex"),
    };
    await expect(withClient((client) => applyMigrations(client, [edited, ...rest]))).rejects.toBeInstanceOf(
      MigrationStateError,
    );
  });

  it("applies a new migration in a transaction with its record, and rolls both back on failure", async () => {
    const existing = readMigrations();
    const good = {
      name: "29990101000000_add_note",
      sql: "ALTER TABLE operations ADD COLUMN note text;",
      checksum: "a".repeat(64),
    };
    const bad = {
      name: "29990102000000_broken",
      sql: "ALTER TABLE operations ADD COLUMN x text; SELECT 1/0;",
      checksum: "b".repeat(64),
    };
    const report = await withClient((client) => applyMigrations(client, [...existing, good]));
    expect(report.applied).toEqual([good.name]);
    await expect(withClient((client) => applyMigrations(client, [...existing, good, bad]))).rejects.toThrow(
      "division by zero",
    );
    const { rows } = await db.pool.query(
      `SELECT (SELECT count(*)::int FROM _prisma_migrations WHERE migration_name = $1) AS recorded,
              (SELECT count(*)::int FROM information_schema.columns WHERE table_name = 'operations' AND column_name = 'x') AS column`,
      [bad.name],
    );
    expect(rows[0]).toEqual({ recorded: 0, column: 0 });
    await db.pool.query(`ALTER TABLE operations DROP COLUMN note`);
    await db.pool.query(`DELETE FROM _prisma_migrations WHERE migration_name = $1`, [good.name]);
  });
});

// --- drift --------------------------------------------------------------------------------------

interface DmmfField {
  name: string;
  dbName?: string | null;
  kind: "scalar" | "enum" | "object";
  type: string;
  isRequired: boolean;
  isList: boolean;
  isId: boolean;
  nativeType?: [string, string[]] | null;
  default?: unknown;
  hasDefaultValue: boolean;
  relationFromFields?: string[];
  relationToFields?: string[];
  relationOnDelete?: string;
}
interface DmmfModel {
  name: string;
  dbName: string | null;
  fields: DmmfField[];
}
interface Dmmf {
  datamodel: {
    models: DmmfModel[];
    enums: { name: string; dbName?: string | null; values: { name: string }[] }[];
    indexes: { model: string; type: "id" | "unique" | "normal" | "fulltext"; fields: { name: string }[] }[];
  };
}

const schemaDir = join(__dirname, "../../prisma/schema");
const dmmf: Dmmf = JSON.parse(
  get_dmmf(
    JSON.stringify({
      prismaSchema: readdirSync(schemaDir)
        .filter((file) => file.endsWith(".prisma"))
        .map((file) => [file, readFileSync(join(schemaDir, file), "utf8")]),
    }),
  ),
);

const column = (field: DmmfField) => field.dbName ?? field.name;
const table = (model: DmmfModel) => model.dbName ?? model.name;
const enumDbName = (name: string) => {
  const found = dmmf.datamodel.enums.find((e) => e.name === name)!;
  return found.dbName ?? found.name;
};

/** The PostgreSQL type (format_type) Prisma's engine creates for a field. */
function expectedType(field: DmmfField): string {
  if (field.isList) return `${expectedType({ ...field, isList: false })}[]`;
  if (field.kind === "enum") return enumDbName(field.type);
  const native = field.nativeType;
  if (native?.[0] === "Uuid") return "uuid";
  if (native?.[0] === "Timestamptz") return `timestamp(${native[1][0] ?? 6}) with time zone`;
  const defaults: Record<string, string> = {
    String: "text",
    Int: "integer",
    BigInt: "bigint",
    Json: "jsonb",
    Boolean: "boolean",
    DateTime: "timestamp(3) without time zone",
    Float: "double precision",
  };
  if (native || !defaults[field.type])
    throw new Error(`extend expectedType for ${field.name}: ${field.type} ${native}`);
  return defaults[field.type]!;
}

/** A predicate on the column default PostgreSQL reports (pg_get_expr). */
function expectedDefault(field: DmmfField): (actual: string | null) => boolean {
  if (!field.hasDefaultValue) return (actual) => actual === null;
  const value = field.default as { name?: string } | string | number | boolean;
  if (typeof value === "object" && value.name === "now") return (actual) => actual === "CURRENT_TIMESTAMP";
  if (typeof value === "object" && value.name === "autoincrement")
    return (actual) => /^nextval\(/.test(actual ?? "");
  if (field.kind === "enum") return (actual) => actual === `'${value}'::${enumDbName(field.type)}`;
  return (actual) => actual === String(value);
}

describe("no drift between the Prisma schema and the migrated database", () => {
  async function columnsOf(tableName: string) {
    const { rows } = await db.pool.query<{
      name: string;
      type: string;
      not_null: boolean;
      default: string | null;
    }>(
      `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null,
              pg_get_expr(d.adbin, d.adrelid) AS default
       FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
       WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped`,
      [tableName],
    );
    return new Map(rows.map((row) => [row.name, row]));
  }

  it.each(dmmf.datamodel.models.map((model) => [model.name, model] as const))(
    "%s: every field has its column with the right type, nullability and default, and nothing else",
    async (_name, model) => {
      const columns = await columnsOf(table(model));
      const scalars = model.fields.filter((field) => field.kind !== "object");
      expect([...columns.keys()].sort()).toEqual(scalars.map(column).sort());
      for (const field of scalars) {
        const actual = columns.get(column(field))!;
        expect({ field: field.name, type: actual.type, notNull: actual.not_null }).toEqual({
          field: field.name,
          type: expectedType(field),
          // Prisma creates a scalar list (String[]) as a nullable array column.
          notNull: field.isRequired && !field.isList,
        });
        expect({
          field: field.name,
          default: actual.default,
          ok: expectedDefault(field)(actual.default),
        }).toEqual({
          field: field.name,
          default: actual.default,
          ok: true,
        });
      }
    },
  );

  it("every relation has its foreign key, with its columns, target and ON DELETE", async () => {
    const { rows } = await db.pool.query<{
      table: string;
      columns: string[];
      target: string;
      target_columns: string[];
      on_delete: string;
    }>(
      `SELECT c.conrelid::regclass::text AS table, c.confrelid::regclass::text AS target, c.confdeltype AS on_delete,
              ARRAY(SELECT attname FROM unnest(c.conkey) WITH ORDINALITY k(n, i) JOIN pg_attribute ON attrelid = c.conrelid AND attnum = k.n ORDER BY i)::text[] AS columns,
              ARRAY(SELECT attname FROM unnest(c.confkey) WITH ORDINALITY k(n, i) JOIN pg_attribute ON attrelid = c.confrelid AND attnum = k.n ORDER BY i)::text[] AS target_columns
       FROM pg_constraint c WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace`,
    );
    const onDelete: Record<string, string> = {
      Cascade: "c",
      Restrict: "r",
      SetNull: "n",
      NoAction: "a",
      SetDefault: "d",
    };
    const expected = dmmf.datamodel.models.flatMap((model) =>
      model.fields
        .filter((field) => field.kind === "object" && field.relationFromFields?.length)
        .map((field) => {
          const target = dmmf.datamodel.models.find((m) => m.name === field.type)!;
          const byName = (m: DmmfModel, name: string) => column(m.fields.find((f) => f.name === name)!);
          return {
            table: table(model),
            columns: field.relationFromFields!.map((name) => byName(model, name)),
            target: table(target),
            target_columns: field.relationToFields!.map((name) => byName(target, name)),
            on_delete: onDelete[field.relationOnDelete ?? (field.isRequired ? "Restrict" : "SetNull")],
          };
        }),
    );
    expect(expected.length).toBeGreaterThan(0);
    expect(rows).toEqual(expected);
  });

  it("every @id, @@unique and @@index has its index, and the enums their values", async () => {
    const { rows } = await db.pool.query<{
      table: string;
      unique: boolean;
      primary: boolean;
      columns: string[];
      partial: boolean;
    }>(
      `SELECT i.indrelid::regclass::text AS table, i.indisunique AS unique, i.indisprimary AS primary,
              i.indpred IS NOT NULL AS partial,
              ARRAY(SELECT attname FROM unnest(i.indkey) WITH ORDINALITY k(n, o) JOIN pg_attribute ON attrelid = i.indrelid AND attnum = k.n ORDER BY o)::text[] AS columns
       FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
       WHERE t.relnamespace = 'public'::regnamespace AND t.relname <> '_prisma_migrations'`,
    );
    const declared = dmmf.datamodel.indexes.map((index) => {
      const model = dmmf.datamodel.models.find((m) => m.name === index.model)!;
      return {
        table: table(model),
        unique: index.type !== "normal",
        primary: index.type === "id",
        columns: index.fields.map((f) => column(model.fields.find((mf) => mf.name === f.name)!)),
        partial: false,
      };
    });
    const full = rows.filter((row) => !row.partial);
    const key = (i: { table: string; columns: string[]; unique: boolean; primary: boolean }) =>
      `${i.table}(${i.columns.join(",")})${i.primary ? " pk" : i.unique ? " unique" : ""}`;
    // Partial indexes are the hand-written part of the migration; everything else is declared.
    expect(full.map(key).sort()).toEqual(declared.map(key).sort());

    for (const declaredEnum of dmmf.datamodel.enums) {
      const { rows: labels } = await db.pool.query(
        `SELECT enumlabel FROM pg_enum WHERE enumtypid = $1::regtype ORDER BY enumsortorder`,
        [declaredEnum.dbName ?? declaredEnum.name],
      );
      expect(labels.map((label) => label.enumlabel)).toEqual(declaredEnum.values.map((value) => value.name));
    }
  });
});
