// Prepared statements for @prisma/adapter-pg: parsing and planning the module's larger statements
// (the claim, the group commit of outcomes) costs more than running them. Naming each statement
// by a hash of its text lets `pg` prepare it once per connection and reuse it.
import { createHash } from "node:crypto";

/**
 * A `statementNameGenerator` for `new PrismaPg(config, { statementNameGenerator })`: the same SQL
 * text always gets the same name, so each connection prepares it once. Every distinct text stays
 * prepared on each connection for the connection's life; use it where the texts are a bounded set
 * (the module's statements are), e.g. on the PrismaClient your workers use.
 */
export function preparedStatementNames(): (query: { sql: string }) => string {
  const names = new Map<string, string>();
  return ({ sql }) => {
    let name = names.get(sql);
    if (!name) {
      name = `po_${createHash("sha1").update(sql).digest("hex").slice(0, 20)}`;
      names.set(sql, name);
    }
    return name;
  };
}
