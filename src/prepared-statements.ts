// Prepared statements for @prisma/adapter-pg. Parsing, analysing and planning the module's
// statements costs more than running most of them (a 10-child submit: 0.5 ms of 1 ms; a group
// commit: 1.5 ms), and PostgreSQL does it again for every unnamed statement. Naming each statement
// by a hash of its text lets `pg` prepare it once per connection and reuse it, as graphile-worker
// and pgx-based River do by default.
import { createHash } from "node:crypto";

/**
 * The texts of the statements the module has sent: a bounded set (each statement builder makes a
 * few variants). Kept on globalThis so that two copies of the package loaded in one process (its
 * CommonJS and ESM builds) share it: the generator may come from one and the store from the other.
 */
const MODULE_TEXTS_KEY = Symbol.for("prisma-operations.statement-texts");
/** More distinct texts than the module can make: past this, new ones are not prepared. */
const MAX_MODULE_TEXTS = 2_000;

function moduleTexts(): Set<string> {
  const holder = globalThis as { [MODULE_TEXTS_KEY]?: Set<string> };
  return (holder[MODULE_TEXTS_KEY] ??= new Set());
}

/** Marks a statement text to be prepared by `preparedStatementNames` (see `prepared`, store.ts). */
export function moduleStatement(text: string): void {
  const texts = moduleTexts();
  if (texts.size < MAX_MODULE_TEXTS) texts.add(text);
}

/** Whether `text` is one of the module's hot-path statements (marked by `moduleStatement`). */
export function isModuleStatement(text: string): boolean {
  return moduleTexts().has(text);
}

/** The name a statement is prepared under: the same text always the same name, in every process. */
export function statementName(text: string): string {
  return `po_${createHash("sha1").update(text).digest("hex").slice(0, 20)}`;
}

/**
 * A `statementNameGenerator` for `new PrismaPg(config, { statementNameGenerator })`: names the
 * module's statements on its hot path — submits, claims, outcomes, heartbeats, deliveries — the
 * same text always the same name, so each connection prepares it once; every other query stays
 * unnamed, as without it (the empty name is the protocol's unnamed statement). So it is safe on
 * the application's one client, whose own queries are an open-ended set that must not stay
 * prepared on every connection. Not behind PgBouncer in transaction mode before 1.21 (from 1.21
 * on, set its `max_prepared_statements`).
 */
export function preparedStatementNames(): (query: { sql: string }) => string {
  const names = new Map<string, string>();
  return ({ sql }) => {
    let name = names.get(sql);
    if (!name) {
      if (!isModuleStatement(sql)) return "";
      name = statementName(sql);
      names.set(sql, name);
    }
    return name;
  };
}
