// The module's statements run directly, for tests that drive claims and outcomes by hand.
import { randomUUID } from "node:crypto";
import type { Db } from "../../src/store/client";
import { NO_INLINE } from "../../src/store/statements/outbox";
import type { Finish } from "../../src/store/statements/transitions";
import { Store } from "../../src/store/store";
import { tablesIn } from "../../src/store/tables";

export { NO_INLINE };

export function storeOf(db: Db, schema?: string): Store {
  return new Store(db, tablesIn(schema));
}

/** Ends one claim (`lockToken` from its claim; any other token is someone else's claim). */
export function finish(db: Db, row: { id: string; lockToken: string }, to: Finish) {
  return storeOf(db).finishOperations([{ id: row.id, lockToken: row.lockToken, finish: to }], NO_INLINE);
}

/** A token no claim has: an outcome sent with it is a stale run's. */
export const staleToken = () => randomUUID();
