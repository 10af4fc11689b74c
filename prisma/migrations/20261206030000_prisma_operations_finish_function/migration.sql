-- Written by hand: a function and its settings, which a Prisma schema cannot say (see the first
-- migration). Nothing in the models changes. A worker's group commit ends its claims in a
-- function, with sequential scans off, as the heartbeat does (…_prisma_operations_heartbeat_function).
--
-- The group commit names its rows by id, and was a statement whose plan followed the statistics:
-- taken when the table was small (a new install; autovacuum off, or before its next analysis),
-- the plan looked up each outcome's row by reading the whole table, and once more to update them,
-- and a prepared statement keeps that plan for the life of its connection while the table grows —
-- O(outcomes × rows in the table) per group commit (5 outcomes read a table of 15,010 rows 6 times
-- over: test/db/plans.test.ts). Here every named row is locked by primary key, in id order, and
-- updated by primary key, whatever the statistics say. What follows from the change (the batches'
-- counters, the events, fail_fast's cascade) stays in the statement that calls it
-- (src/store/statements/transitions.ts), shared with the other transitions.

-- Ends the claims named (each row locked by primary key, in id order, and changed only while it
-- still has the claim named: `tokens`) with the outcome given for it: `targets` completed, failed
-- or pending (a retry or hand-back due after `delays` seconds, its attempt refunded when `refunds`
-- is 1). Work that finished is recorded completed even if a cancel was asked for meanwhile; any
-- other outcome of a row asked to cancel ends it cancelled. Returns each changed row as it is now.
-- When a row fails, the unfinished children of its fail_fast batch are locked first, in id order,
-- as a cancel of that batch locks them, so that the cascade never waits for one while holding
-- another.
--
-- The settings leave each statement one kind of plan: nested loops over primary-key lookups.
-- Hash and merge joins are off because with statistics of a small table the planner joined the
-- locked rows to the table by a full walk of its primary key (cheap on 10 rows, not on millions);
-- `= ANY` over the locked ids instead made it probe every id once per locked row (125,750 index
-- reads for 500 outcomes). `jit = off`: were a plan left only with a way the settings turn off, it
-- would carry PostgreSQL's disable_cost and be JIT-compiled at every call (300–450 ms, measured).
CREATE FUNCTION "operations_finish"(
  ids uuid[],
  tokens uuid[],
  targets text[],
  results jsonb[],
  errors jsonb[],
  delays double precision[],
  refunds integer[]
)
RETURNS TABLE (
  finished_id uuid,
  finished_tenant_id text,
  finished_batch_id uuid,
  finished_type text,
  finished_status text,
  finished_attempts integer
)
LANGUAGE plpgsql VOLATILE
ROWS 100
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
SET jit = off
SET search_path FROM CURRENT
AS $$
BEGIN
  IF cardinality(ids) IS NULL OR cardinality(ids) = 0 THEN RETURN; END IF;
  IF 'failed' = ANY (targets) THEN
    PERFORM 1 FROM (
      SELECT pl.id FROM operations pl
      WHERE pl.status IN ('pending', 'processing') AND pl.batch_id IN (
        SELECT f.batch_id FROM operations f JOIN operation_batches b ON b.id = f.batch_id
        WHERE b.failure_policy = 'fail_fast'
          AND f.id = ANY (ARRAY(SELECT x.id FROM unnest(ids, targets) AS x(id, target) WHERE x.target = 'failed')))
      ORDER BY pl.id
      FOR UPDATE OF pl
    ) locked_first;
  END IF;
  RETURN QUERY
    WITH locked AS MATERIALIZED (
      SELECT c.id, u.target, u.result, u.error, u.delay_s, u.refund
      FROM (SELECT * FROM unnest(ids, tokens, targets, results, errors, delays, refunds)
              AS x(id, token, target, result, error, delay_s, refund)
            ORDER BY x.id) u
      CROSS JOIN LATERAL (SELECT * FROM operations l WHERE l.id = u.id OFFSET 0 FOR UPDATE) c
      -- The status compared as text: the partial index of processing rows cannot answer it.
      WHERE c.lock_token = u.token AND c.status::text = 'processing'
    ), finished AS (
      UPDATE operations o
      SET status = (CASE WHEN p.target = 'completed' THEN 'completed'
                         WHEN o.cancel_requested_at IS NOT NULL THEN 'cancelled'
                         ELSE p.target END)::operation_status,
          result = CASE WHEN p.target = 'completed' THEN p.result ELSE o.result END,
          error = CASE WHEN p.target = 'completed' THEN NULL
                       WHEN o.cancel_requested_at IS NOT NULL
                       THEN COALESCE(p.error, jsonb_build_object('name', 'Cancelled', 'message',
                              'cancelled on request', 'retryable', false, 'attempt', o.attempts))
                       ELSE COALESCE(p.error, o.error) END,
          -- As src/store/statements/shared.ts `dueAt`: truncated to the column's milliseconds.
          run_at = CASE WHEN p.target = 'pending' AND o.cancel_requested_at IS NULL
                        THEN date_trunc('milliseconds', now() + make_interval(secs => p.delay_s))
                        ELSE o.run_at END,
          attempts = o.attempts - p.refund,
          locked_by = NULL, locked_until = NULL, lock_token = NULL,
          finished_at = CASE WHEN p.target <> 'pending' OR o.cancel_requested_at IS NOT NULL THEN now() END,
          updated_at = now()
      FROM locked p
      WHERE o.id = p.id
      RETURNING o.id, o.tenant_id, o.batch_id, o.type, o.status::text, o.attempts
    )
    SELECT * FROM finished;
END
$$;
