// The worker registry: each worker writes its row when it starts and on every heartbeat, and
// marks it stopped when it stops. Operators (the dashboard) read it to see who is there.
import type { Tables } from "../tables";
import { sql, type Sql } from "./shared";

/** A worker as it describes itself. */
export interface WorkerIdentity {
  id: string;
  hostname: string;
  pid: number;
  types: readonly string[];
  concurrency: number;
  heartbeatMs: number;
}

/** A worker starting: its row written afresh (a restarted worker keeps its id and starts again). */
export function announceWorker(t: Tables, worker: WorkerIdentity): Sql {
  return sql`
    INSERT INTO ${t.workers} (id, hostname, pid, types, concurrency, heartbeat_ms)
    VALUES (${worker.id}, ${worker.hostname}, ${worker.pid}, ${[...worker.types]}::text[], ${worker.concurrency},
            ${worker.heartbeatMs})
    ON CONFLICT (id) DO UPDATE SET hostname = EXCLUDED.hostname, pid = EXCLUDED.pid, types = EXCLUDED.types,
      concurrency = EXCLUDED.concurrency, heartbeat_ms = EXCLUDED.heartbeat_ms,
      started_at = now(), seen_at = now(), stopped_at = NULL`;
}

/** A heartbeat: seen now. Writes the row again if it was pruned meanwhile (keeping its start). */
export function workerSeen(t: Tables, worker: WorkerIdentity): Sql {
  return sql`
    INSERT INTO ${t.workers} (id, hostname, pid, types, concurrency, heartbeat_ms)
    VALUES (${worker.id}, ${worker.hostname}, ${worker.pid}, ${[...worker.types]}::text[], ${worker.concurrency},
            ${worker.heartbeatMs})
    ON CONFLICT (id) DO UPDATE SET seen_at = now(), stopped_at = NULL`;
}

/** A graceful stop. */
export function workerStopped(t: Tables, id: string): Sql {
  return sql`UPDATE ${t.workers} SET seen_at = now(), stopped_at = now() WHERE id = ${id}`;
}

/** A worker's row as the registry holds it. */
export interface WorkerRow extends WorkerIdentity {
  startedAt: Date;
  seenAt: Date;
  stoppedAt: Date | null;
}

/** Every worker in the registry, with the operations each holds now (across all tenants: its load). */
export function listWorkers(t: Tables): Sql {
  return sql`
    SELECT w.id, w.hostname, w.pid, w.types, w.concurrency, w.heartbeat_ms AS "heartbeatMs",
           w.started_at AS "startedAt", w.seen_at AS "seenAt", w.stopped_at AS "stoppedAt",
           COALESCE(h.running, 0)::int AS "running"
    FROM ${t.workers} w
    LEFT JOIN (SELECT locked_by, count(*) AS running FROM ${t.operations}
               WHERE status = 'processing' GROUP BY locked_by) h ON h.locked_by = w.id
    ORDER BY w.stopped_at IS NOT NULL, w.seen_at DESC, w.id`;
}
