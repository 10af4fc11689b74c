-- Would a narrow queue table make the drain cheaper? A tool for whoever changes the schema, not
-- part of `npm run bench`. It measures, on one connection, what a claim and an outcome cost per
-- row in the schema as it is, beside two layouts that keep the queue state out of the operations
-- table, so that it has no index on status, lease or finish time and its claim and outcome
-- updates can be HOT (no new index entries):
--   - queue table: `queue2` holds (type, tenant, due time, lease) per unfinished operation; a
--     claim sets the lease there, an outcome deletes the row;
--   - queue and lease tables: a claim moves the row from `queue2` to `leases2` (id, lease end),
--     an outcome deletes it there.
--
--   npx tsx bench/profile-drain.ts --total 20000 --keep     # leaves po_bench_profile behind
--   psql -h 127.0.0.1 -U postgres -d po_bench_profile -v ff=50 -f bench/layout-costs.sql
--
-- `ff` is the fillfactor of the other layouts' operations table (`ops2`, indexed by id, batch and
-- (tenant, id) only): room on each page for the row versions a HOT update needs. It re-queues that
-- database's 20,000 'bench' operations and copies them, runs each step 200 times on 100 rows,
-- committing each without waiting for the WAL flush (CPU, not the disk), and prints µs per row and
-- how many of ops2's updates were HOT. Set-based versions of our statements: batch counters,
-- events and the client are left out. It drops its tables at the end. Run it on nothing else.
-- Measured 2026-12-06 (bench/README.md, "What is left"): the same cost per operation in all three.
\set QUIET on
\set ON_ERROR_STOP on
SET synchronous_commit = off;
UPDATE operations SET status = 'pending', finished_at = NULL, result = NULL, error = NULL, locked_by = NULL,
  locked_until = NULL, lock_token = NULL, attempts = 0, started_at = NULL
WHERE type = 'bench';
VACUUM FULL ANALYZE operations;
DROP TABLE IF EXISTS ops2, queue2, leases2;
CREATE TABLE ops2 (LIKE operations INCLUDING DEFAULTS) WITH (fillfactor = :ff);
INSERT INTO ops2 SELECT * FROM operations WHERE type = 'bench';
ALTER TABLE ops2 ADD PRIMARY KEY (id);
CREATE INDEX ON ops2 (batch_id);
CREATE INDEX ON ops2 (tenant_id, id);
CREATE TABLE queue2 (id uuid PRIMARY KEY, type text NOT NULL, tenant_id text NOT NULL,
                     run_at timestamptz(3) NOT NULL, locked_until timestamptz(3));
INSERT INTO queue2 SELECT id, type, tenant_id, run_at, NULL FROM ops2;
CREATE INDEX ON queue2 (type, tenant_id, run_at, id) WHERE locked_until IS NULL;
CREATE INDEX ON queue2 (locked_until) WHERE locked_until IS NOT NULL;
CREATE TABLE leases2 (id uuid PRIMARY KEY, locked_until timestamptz(3) NOT NULL);
CREATE INDEX ON leases2 (locked_until);
VACUUM ANALYZE ops2;
VACUUM ANALYZE queue2;

\ir step.sql

CALL pg_temp.step('as it is: claim', $q$
  WITH p AS (SELECT id FROM operations WHERE type = 'bench' AND tenant_id = 'bench' AND status = 'pending'
               AND run_at <= now() ORDER BY run_at, id LIMIT 100 FOR UPDATE SKIP LOCKED)
  UPDATE operations o SET status = 'processing', locked_by = 'w', locked_until = now() + interval '30 s',
    lock_token = gen_random_uuid(), attempts = o.attempts + 1, started_at = now(), updated_at = now()
  FROM p WHERE o.id = p.id $q$);

CALL pg_temp.step('as it is: outcome', $q$
  WITH p AS (SELECT id FROM operations WHERE status = 'processing' ORDER BY locked_until LIMIT 100)
  UPDATE operations o SET status = 'completed', result = 'null', locked_by = NULL, locked_until = NULL,
    lock_token = NULL, finished_at = now(), updated_at = now()
  FROM p WHERE o.id = p.id $q$);

CALL pg_temp.step('queue table: claim', $q$
  WITH p AS (SELECT id FROM queue2 WHERE type = 'bench' AND tenant_id = 'bench' AND locked_until IS NULL
               AND run_at <= now() ORDER BY run_at, id LIMIT 100 FOR UPDATE SKIP LOCKED),
  q AS (UPDATE queue2 SET locked_until = now() + interval '30 s' FROM p WHERE queue2.id = p.id RETURNING queue2.id)
  UPDATE ops2 o SET status = 'processing', locked_by = 'w', locked_until = now() + interval '30 s',
    lock_token = gen_random_uuid(), attempts = o.attempts + 1, started_at = now(), updated_at = now()
  FROM q WHERE o.id = q.id $q$);

CALL pg_temp.step('queue table: outcome', $q$
  WITH p AS (SELECT id FROM queue2 WHERE locked_until IS NOT NULL ORDER BY locked_until LIMIT 100),
  d AS (DELETE FROM queue2 q USING p WHERE q.id = p.id RETURNING q.id)
  UPDATE ops2 o SET status = 'completed', result = 'null', locked_by = NULL, locked_until = NULL,
    lock_token = NULL, finished_at = now(), updated_at = now()
  FROM d WHERE o.id = d.id $q$);

UPDATE ops2 SET status = 'pending', finished_at = NULL, result = NULL, locked_by = NULL, locked_until = NULL,
  lock_token = NULL, attempts = 0, started_at = NULL;
INSERT INTO queue2 SELECT id, type, tenant_id, run_at, NULL FROM ops2;
VACUUM FULL ANALYZE ops2;
VACUUM ANALYZE queue2;

CALL pg_temp.step('queue and lease tables: claim', $q$
  WITH p AS (SELECT id FROM queue2 WHERE type = 'bench' AND tenant_id = 'bench' AND locked_until IS NULL
               AND run_at <= now() ORDER BY run_at, id LIMIT 100 FOR UPDATE SKIP LOCKED),
  d AS (DELETE FROM queue2 USING p WHERE queue2.id = p.id RETURNING queue2.id),
  l AS (INSERT INTO leases2 SELECT id, now() + interval '30 s' FROM d RETURNING id)
  UPDATE ops2 o SET status = 'processing', locked_by = 'w', locked_until = now() + interval '30 s',
    lock_token = gen_random_uuid(), attempts = o.attempts + 1, started_at = now(), updated_at = now()
  FROM l WHERE o.id = l.id $q$);

CALL pg_temp.step('queue and lease tables: outcome', $q$
  WITH p AS (SELECT id FROM leases2 ORDER BY locked_until LIMIT 100),
  d AS (DELETE FROM leases2 q USING p WHERE q.id = p.id RETURNING q.id)
  UPDATE ops2 o SET status = 'completed', result = 'null', locked_by = NULL, locked_until = NULL,
    lock_token = NULL, finished_at = now(), updated_at = now()
  FROM d WHERE o.id = d.id $q$);

\set QUIET off
SELECT pg_stat_force_next_flush() \gset
SELECT n_tup_upd AS "ops2 updates (both layouts)", n_tup_hot_upd AS "HOT"
FROM pg_stat_user_tables WHERE relname = 'ops2';
DROP TABLE ops2, queue2, leases2;
