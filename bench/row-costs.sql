-- What each row our drain writes costs the database, one step at a time, on one connection: not
-- part of `npm run bench`, a tool for whoever changes the schema or the statements.
--
--   npx tsx bench/profile-drain.ts --total 20000 --keep     # leaves po_bench_profile behind
--   psql -h 127.0.0.1 -U postgres -d po_bench_profile -f bench/row-costs.sql
--
-- It empties that database's outbox and re-queues its 20,000 'bench' operations, then runs each
-- step 200 times on 100 rows, committing each (without waiting for the WAL flush, so the numbers
-- are CPU and not the disk), and prints µs per row. The steps are set-based versions of what a
-- claim, a group commit and a delivery mark write per operation; batch counters and the client are
-- left out. Run it on nothing else: it truncates tables.
\set QUIET on
\set ON_ERROR_STOP on
SET synchronous_commit = off;
TRUNCATE operation_deliveries, operation_outbox;
UPDATE operations SET status = 'pending', finished_at = NULL, result = NULL, error = NULL, locked_by = NULL,
  locked_until = NULL, lock_token = NULL, attempts = 0, started_at = NULL
WHERE type = 'bench';
VACUUM FULL ANALYZE operations;
VACUUM ANALYZE operation_outbox;
VACUUM ANALYZE operation_deliveries;

\ir step.sql

CALL pg_temp.step('claim: pick, lock, update to processing', $q$
  WITH p AS (SELECT id FROM operations WHERE type = 'bench' AND tenant_id = 'bench' AND status = 'pending'
               AND run_at <= now() ORDER BY run_at, id LIMIT 100 FOR UPDATE SKIP LOCKED)
  UPDATE operations o SET status = 'processing', locked_by = 'w', locked_until = now() + interval '30 s',
    lock_token = gen_random_uuid(), attempts = o.attempts + 1, started_at = now(), updated_at = now()
  FROM p WHERE o.id = p.id $q$);

CALL pg_temp.step('finish: update to completed', $q$
  WITH p AS (SELECT id FROM operations WHERE status = 'processing' ORDER BY locked_until LIMIT 100)
  UPDATE operations o SET status = 'completed', result = 'null', locked_by = NULL, locked_until = NULL,
    lock_token = NULL, finished_at = now(), updated_at = now()
  FROM p WHERE o.id = p.id $q$);

CALL pg_temp.step('its outbox event', $q$
  INSERT INTO operation_outbox (tenant_id, topic, aggregate_id, payload)
  SELECT 'bench', 'operation.completed', gen_random_uuid(),
    jsonb_build_object('operationId', gen_random_uuid(), 'batchId', gen_random_uuid(), 'type', 'bench',
                       'status', 'completed', 'attempts', 1)
  FROM generate_series(1, 100) $q$);

CALL pg_temp.step('its delivery row (and foreign key check)', $q$
  INSERT INTO operation_deliveries (event_id, subscriber, available_at)
  SELECT e.id, 'bench', now() + interval '60 s' FROM operation_outbox e
  WHERE e.id > (SELECT COALESCE(max(event_id), 0) FROM operation_deliveries)
  ORDER BY e.id LIMIT 100 $q$);

CALL pg_temp.step('the delivery marked delivered', $q$
  WITH p AS (SELECT event_id FROM operation_deliveries
             WHERE subscriber = 'bench' AND delivered_at IS NULL AND dead_at IS NULL
             ORDER BY available_at, event_id LIMIT 100)
  UPDATE operation_deliveries d SET delivered_at = now(), attempts = 1
  FROM p WHERE d.event_id = p.event_id AND d.subscriber = 'bench' $q$);
