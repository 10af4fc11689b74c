-- Written by hand: a function and its settings, which a Prisma schema cannot say (see the first
-- migration). Nothing in the models changes. The reaper takes expired leases back in a function,
-- with the settings of the group commit's (…_prisma_operations_finish_function).
--
-- The reaper is the way back from a crash: the leases of a worker that died expire, and it takes
-- their rows back. It was a statement whose plan followed the statistics: taken when the table was
-- small (a new install; autovacuum off, or before its next analysis), the plan looked up each
-- expired row by reading the whole table, and a prepared statement keeps that plan for the life
-- of its connection while the table grows — O(expired leases × rows in the table) per pass, when
-- a crash has just left hundreds (5 expired leases read a table of 15,010 rows 14 times over:
-- test/db/plans.test.ts). Here the oldest expired leases are found through the partial index of
-- processing rows, and each is locked by primary key, in id order, and updated by primary key,
-- whatever the statistics say. What follows from the change (the batches' counters, the events,
-- fail_fast's cascade) stays in the statement that calls it (src/store/statements/transitions.ts).

-- Takes back at most `max_rows` operations whose lease expired, the oldest first (a row another
-- transaction holds — its worker recording its outcome right now — is skipped; each row is checked
-- again as it is once locked): cancelled when a cancel was asked, failed when its attempts are
-- exhausted, otherwise due again at once with the attempt counted. The unfinished children of the
-- fail_fast batches of rows about to fail are locked first, in id order, as a cancel of such a
-- batch locks them. Returns each changed row as it is now, in the columns of operations_finish.
CREATE FUNCTION "operations_reap"(max_rows integer)
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
  PERFORM 1 FROM (
    SELECT pl.id FROM operations pl
    WHERE pl.status IN ('pending', 'processing') AND pl.batch_id IN (
      SELECT f.batch_id FROM operations f JOIN operation_batches b ON b.id = f.batch_id
      WHERE b.failure_policy = 'fail_fast' AND f.status = 'processing' AND f.locked_until < now()
        AND f.attempts >= f.max_attempts AND f.cancel_requested_at IS NULL)
    ORDER BY pl.id
    FOR UPDATE OF pl
  ) locked_first;
  RETURN QUERY
    WITH expired AS MATERIALIZED (
      -- Read without locks, through the partial index of processing rows.
      SELECT x.id FROM operations x
      WHERE x.status = 'processing' AND x.locked_until < now()
      ORDER BY x.locked_until
      LIMIT max_rows
    ), locked AS MATERIALIZED (
      SELECT c.id
      FROM (SELECT e.id FROM expired e ORDER BY e.id) u
      CROSS JOIN LATERAL (SELECT * FROM operations l WHERE l.id = u.id OFFSET 0 FOR UPDATE SKIP LOCKED) c
      -- The status compared as text: the partial index of processing rows cannot answer it.
      WHERE c.status::text = 'processing' AND c.locked_until < now()
    ), reaped AS (
      UPDATE operations o
      SET status = (CASE WHEN o.cancel_requested_at IS NOT NULL THEN 'cancelled'
                         WHEN o.attempts >= o.max_attempts THEN 'failed'
                         ELSE 'pending' END)::operation_status,
          error = jsonb_build_object('name', 'LeaseExpired', 'message', 'the lease of ' || o.locked_by || ' expired',
            'retryable', o.attempts < o.max_attempts, 'attempt', o.attempts),
          -- As src/store/statements/shared.ts `dueAt`: now, truncated to the column's milliseconds.
          run_at = date_trunc('milliseconds', now()),
          locked_by = NULL, locked_until = NULL, lock_token = NULL,
          finished_at = CASE WHEN o.cancel_requested_at IS NOT NULL OR o.attempts >= o.max_attempts THEN now() END,
          updated_at = now()
      FROM locked p
      WHERE o.id = p.id
      RETURNING o.id, o.tenant_id, o.batch_id, o.type, o.status::text, o.attempts
    )
    SELECT * FROM reaped;
END
$$;
