// The module's tables and functions as SQL identifiers, qualified with the PostgreSQL schema the
// application keeps them in. Prisma's query API finds them through the adapter's `schema` option;
// raw statements would otherwise go by the session's search_path, so every statement names them
// through this object.
import { raw, type Sql } from "@prisma/client/runtime/client";
import { OperationsError } from "../errors";

export interface Tables {
  /** The schema, or undefined for the search_path (the default). */
  readonly schema: string | undefined;
  readonly batches: Sql;
  readonly operations: Sql;
  readonly outbox: Sql;
  readonly subscribers: Sql;
  readonly deliveries: Sql;
  readonly holds: Sql;
  readonly workers: Sql;
  readonly claim: Sql;
  readonly pickClaimable: Sql;
  readonly pickAnnounced: Sql;
  readonly pickDueDeliveries: Sql;
  readonly claimDeliveries: Sql;
  readonly heartbeat: Sql;
  readonly finish: Sql;
  readonly reap: Sql;
  readonly failFastSiblings: Sql;
  readonly recordDeliveries: Sql;
  readonly removeSubscriber: Sql;
  readonly pruneOutbox: Sql;
  /** Enum types, for casts. */
  readonly operationStatus: Sql;
  readonly batchStatus: Sql;
  readonly failurePolicy: Sql;
}

function quote(identifier: string): string {
  return `"${identifier.replace(/"/g, '""')}"`;
}

/**
 * The module's objects in `schema` (a PostgreSQL schema name), or found by the search_path when
 * `schema` is undefined. Refuses a name PostgreSQL could not have (empty, over 63 bytes, NUL).
 */
export function tablesIn(schema?: string): Tables {
  if (
    schema !== undefined &&
    (schema.length === 0 || Buffer.byteLength(schema) > 63 || schema.includes("\0"))
  ) {
    throw new OperationsError(
      "invalid_options",
      `schema ${JSON.stringify(schema)} is not a PostgreSQL schema name`,
    );
  }
  const name = (object: string) =>
    raw(schema === undefined ? quote(object) : `${quote(schema)}.${quote(object)}`);
  return {
    schema,
    batches: name("operation_batches"),
    operations: name("operations"),
    outbox: name("operation_outbox"),
    subscribers: name("operation_subscribers"),
    deliveries: name("operation_deliveries"),
    holds: name("operation_delivery_holds"),
    workers: name("operation_workers"),
    claim: name("operations_claim"),
    pickClaimable: name("operations_pick_claimable"),
    pickAnnounced: name("operations_pick_announced"),
    pickDueDeliveries: name("operation_deliveries_pick_due"),
    claimDeliveries: name("operation_deliveries_claim"),
    heartbeat: name("operations_heartbeat"),
    finish: name("operations_finish"),
    reap: name("operations_reap"),
    failFastSiblings: name("operations_fail_fast_siblings"),
    recordDeliveries: name("operation_deliveries_record"),
    removeSubscriber: name("operation_subscribers_remove"),
    pruneOutbox: name("operation_outbox_prune"),
    operationStatus: name("operation_status"),
    batchStatus: name("batch_status"),
    failurePolicy: name("failure_policy"),
  };
}
