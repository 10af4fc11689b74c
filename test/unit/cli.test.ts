// `prisma-operations init` in a fresh app folder, run twice, with a changed file, and with the app's
// own prisma.config naming its folders.
import { spawnSync } from "node:child_process";
import {
  mkdtempSync,
  readFileSync,
  readdirSync,
  writeFileSync,
  mkdirSync,
  existsSync,
  rmSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { init, packageRoot } from "../../src/cli/init";

const app = () => mkdtempSync(join(tmpdir(), "po-init-"));
const shippedMigrations = readdirSync(join(packageRoot(), "prisma", "migrations")).filter((name) =>
  existsSync(join(packageRoot(), "prisma", "migrations", name, "migration.sql")),
);

describe("prisma-operations init", () => {
  it("copies the models and every migration (named as the module's) into a fresh app, then says what next", () => {
    const cwd = app();
    const report = init({ cwd });
    expect(report.files.map((file) => file.action)).toEqual(report.files.map(() => "created"));
    expect(readFileSync(join(cwd, "prisma/schema/operations.prisma"), "utf8")).toBe(
      readFileSync(join(packageRoot(), "prisma/schema/operations.prisma"), "utf8"),
    );
    expect(shippedMigrations.length).toBeGreaterThan(0);
    expect(shippedMigrations.every((name) => /^\d{14}_prisma_operations_/.test(name))).toBe(true);
    for (const name of shippedMigrations)
      expect(existsSync(join(cwd, "prisma/migrations", name, "migration.sql"))).toBe(true);
    expect(readFileSync(join(cwd, "prisma/migrations/migration_lock.toml"), "utf8")).toMatch(
      /provider = "postgresql"/,
    );
    // Every file it writes is in the report, the lock file too.
    expect(report.files.map((file) => file.path)).toContain(
      join("prisma", "migrations", "migration_lock.toml"),
    );
    expect(report.nextSteps.join("\n")).toMatch(/prisma generate[\s\S]*prisma migrate deploy/);
  });

  it("is safe to run again: identical files stay, nothing is rewritten", () => {
    const cwd = app();
    init({ cwd });
    const again = init({ cwd });
    expect(new Set(again.files.map((file) => file.action))).toEqual(new Set(["unchanged"]));
  });

  it("refuses to overwrite a file the app changed, and copies the rest", () => {
    const cwd = app();
    mkdirSync(join(cwd, "prisma/schema"), { recursive: true });
    writeFileSync(join(cwd, "prisma/schema/operations.prisma"), "// edited\n");
    const report = init({ cwd });
    expect(report.files[0]).toEqual({
      path: join("prisma", "schema", "operations.prisma"),
      action: "refused",
    });
    expect(readFileSync(join(cwd, "prisma/schema/operations.prisma"), "utf8")).toBe("// edited\n");
    expect(report.files.slice(1).every((file) => file.action === "created")).toBe(true);
    expect(report.nextSteps.join("\n")).toMatch(/resolve the refused files/);
  });

  it("after an upgrade, replaces the models as an earlier version shipped them, and adds the new migrations", () => {
    const cwd = app();
    init({ cwd });
    // The models of the version before the 20261206 migrations, byte for byte (git show 1b44338:…).
    const earlier = readFileSync(join(__dirname, "../fixtures/operations-0.1.0-1b44338.prisma"));
    writeFileSync(join(cwd, "prisma/schema/operations.prisma"), earlier);
    const added = shippedMigrations.filter((name) => name >= "20261206000000");
    for (const name of added) rmSync(join(cwd, "prisma/migrations", name), { recursive: true });
    expect(added.length).toBeGreaterThan(0);

    const report = init({ cwd });
    expect(report.files.filter((file) => file.action !== "unchanged")).toEqual([
      { path: join("prisma", "schema", "operations.prisma"), action: "updated" },
      ...added.map((name) => ({
        path: join("prisma", "migrations", name, "migration.sql"),
        action: "created",
      })),
    ]);
    expect(readFileSync(join(cwd, "prisma/schema/operations.prisma"), "utf8")).toBe(
      readFileSync(join(packageRoot(), "prisma/schema/operations.prisma"), "utf8"),
    );
    expect(report.nextSteps.join("\n")).toMatch(/prisma generate/);
  });

  it("follows the app's prisma.config, and says when it names a single schema file", () => {
    const cwd = app();
    mkdirSync(join(cwd, "db"), { recursive: true });
    writeFileSync(join(cwd, "db/schema.prisma"), "// the app's schema\n");
    writeFileSync(
      join(cwd, "prisma.config.ts"),
      `export default defineConfig({ schema: "db/schema.prisma", migrations: { path: "db/migrations" } });\n`,
    );
    const report = init({ cwd });
    expect(report.schemaDir).toBe(join(cwd, "db"));
    expect(report.migrationsDir).toBe(join(cwd, "db/migrations"));
    expect(existsSync(join(cwd, "db/operations.prisma"))).toBe(true);
    expect(report.notes.join("\n")).toMatch(/set `schema: "db"`/);
  });

  it("finds the prisma7.config.ts that `prisma init` writes, before an older prisma.config.ts", () => {
    const cwd = app();
    writeFileSync(join(cwd, "prisma.config.ts"), `export default defineConfig({ schema: "old/schema" });\n`);
    writeFileSync(
      join(cwd, "prisma7.config.ts"),
      `export default defineConfig({ schema: "db/schema", migrations: { path: "db/migrations" } });\n`,
    );
    const report = init({ cwd, dryRun: true });
    expect(report.schemaDir).toBe(join(cwd, "db/schema"));
    expect(report.migrationsDir).toBe(join(cwd, "db/migrations"));
  });

  it("keeps an app's existing migration_lock.toml, and writes nothing on --dry-run", () => {
    const cwd = app();
    mkdirSync(join(cwd, "prisma/migrations"), { recursive: true });
    writeFileSync(join(cwd, "prisma/migrations/migration_lock.toml"), 'provider = "postgresql"\n# mine\n');
    const report = init({ cwd, dryRun: true });
    expect(report.files.every((file) => file.action === "created")).toBe(true);
    expect(existsSync(join(cwd, "prisma/schema/operations.prisma"))).toBe(false);
    init({ cwd });
    expect(readFileSync(join(cwd, "prisma/migrations/migration_lock.toml"), "utf8")).toMatch(/# mine/);
  });

  it("as a command: exit 0, then 1 when a file was refused, 2 on a wrong command", () => {
    const cwd = app();
    const run = (...args: string[]) =>
      spawnSync(
        process.execPath,
        [
          "--import",
          pathToFileURL(require.resolve("tsx")).href,
          join(__dirname, "../../src/cli/main.ts"),
          ...args,
        ],
        {
          cwd,
          encoding: "utf8",
        },
      );
    const first = run("init");
    expect(first.status).toBe(0);
    expect(first.stdout).toMatch(/created\s+prisma\/schema\/operations.prisma/);
    writeFileSync(join(cwd, "prisma/schema/operations.prisma"), "// edited\n");
    const second = run("init");
    expect(second.status).toBe(1);
    expect(second.stdout).toMatch(/refused\s+prisma\/schema\/operations.prisma/);
    expect(run("deploy").status).toBe(2);
  });
});
