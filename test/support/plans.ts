// The plans PostgreSQL makes for the module's statements, for tests that hold their shape (never
// their speed): EXPLAIN of a statement as the module sends it, optionally as the generic plan a
// prepared statement settles on.
import type { Sql } from "@prisma/client/runtime/client";
import type { PoolClient } from "pg";

/** A bound value as EXECUTE takes it: SQL literal text (arrays in array syntax). */
function literal(client: PoolClient, value: unknown): string {
  const text = (v: unknown): string =>
    Array.isArray(v)
      ? `{${v.map((e) => (e === null ? "NULL" : `"${text(e).replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`)).join(",")}}`
      : v instanceof Date
        ? v.toISOString()
        : typeof v === "object"
          ? JSON.stringify(v)
          : String(v);
  return value === null || value === undefined ? "NULL" : client.escapeLiteral(text(value));
}

export interface PlanNode {
  "Node Type": string;
  "Index Name"?: string;
  "Relation Name"?: string;
  "Actual Loops"?: number;
  Plans?: PlanNode[];
}

/**
 * EXPLAIN (ANALYZE, FORMAT JSON) of `statement`, in a transaction rolled back afterwards. With
 * `generic`, the plan made without the values (PREPARE under `plan_cache_mode = force_generic_plan`),
 * as a client with prepared statements gets after a few executions.
 */
export async function explain(
  client: PoolClient,
  statement: Sql,
  options: { generic: boolean },
): Promise<PlanNode> {
  await client.query("BEGIN");
  try {
    let rows: { "QUERY PLAN": [{ Plan: PlanNode }] }[];
    if (options.generic) {
      await client.query("SET LOCAL plan_cache_mode = force_generic_plan");
      await client.query(`PREPARE explained AS ${statement.text}`);
      const values = statement.values.map((value) => literal(client, value));
      ({ rows } = await client.query(
        `EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE explained(${values.join(", ")})`,
      ));
      await client.query("DEALLOCATE explained");
    } else {
      ({ rows } = await client.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${statement.text}`, statement.values));
    }
    return rows[0]!["QUERY PLAN"][0].Plan;
  } finally {
    await client.query("ROLLBACK");
  }
}

/** Every node of a plan, depth first. */
export function planNodes(node: PlanNode): PlanNode[] {
  return [node, ...(node.Plans ?? []).flatMap(planNodes)];
}
