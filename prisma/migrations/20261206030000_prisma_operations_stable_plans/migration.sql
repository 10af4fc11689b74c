-- Written by hand: functions and their settings, which a Prisma schema cannot say (see the first
-- migration). Nothing in the models changes. A worker's group commit, the reaper, and a relay's
-- records on its deliveries change their rows in functions whose plans do not follow the
-- statistics, as the claims and the heartbeat already do (…_prisma_operations_claim_functions,
-- …_prisma_operations_heartbeat_function).
--
-- Each names its rows by key, and was a statement whose plan followed the statistics: taken when
-- the table was small (a new install; autovacuum off, or before its next analysis), the plan
-- looked up each named row by reading the whole table, and once more to update it, and a prepared
-- statement keeps that plan for the life of its connection while the table grows — O(rows named ×
-- rows in the table) per statement. Measured (test/db/plans.test.ts, which fails without this):
-- 5 outcomes of a group commit read a table of 15,010 rows 6 times over, 5 expired leases 14 times
-- (the reaper is the way back from a crash, when hundreds expire at once), 5 delivery marks a
-- deliveries table of 10,010 rows 10 times. Here every named row is locked by primary key, in key
-- order, and updated by primary key, whatever the statistics say. What follows from a change of
-- operations (the batches' counters, the events, fail_fast's cascade) stays in the statement that
-- calls the function (src/store/statements/transitions.ts), shared with the other transitions.
--
-- The settings leave each statement one kind of plan: nested loops over primary-key lookups.
-- Hash and merge joins are off because with statistics of a small table the planner joined the
-- locked rows to the table by a full walk of its primary key (cheap on 10 rows, not on millions);
-- `= ANY` over the locked ids instead made it probe every id once per locked row (125,750 index
-- reads for 500 outcomes). `jit = off`: were a plan left only with a way the settings turn off, it
-- would carry PostgreSQL's disable_cost and be JIT-compiled at every call (300–450 ms, measured).
--
-- A row that fails in a fail_fast batch cancels that batch's unfinished children (the cascade),
-- so its change locks them too: in one pass, in id order, with the rows it changes, as a cancel of
-- the batch locks them. Two passes (the siblings, then the own rows) deadlocked: two group commits
-- each failing a row of one batch and completing a row of the other held each other's outcome row
-- as a sibling (test/db/races.test.ts, "fail_fast group commits racing each other").

-- Locks the rows `changing`, and with them, when any of `failing` is in a fail_fast batch, that
-- batch's unfinished children (which its cascade will cancel): in one pass, in id order (see
-- above). Without a failing row in a fail_fast batch it locks nothing: the caller locks its own
-- rows as it changes them, in id order too.
CREATE FUNCTION "operations_lock_with_siblings"(changing uuid[], failing uuid[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
SET jit = off
SET search_path FROM CURRENT
AS $$
DECLARE
  siblings uuid[];
BEGIN
  IF cardinality(failing) IS NULL OR cardinality(failing) = 0 THEN RETURN; END IF;
  SELECT array_agg(s.id) INTO siblings FROM operations s
  WHERE s.status IN ('pending', 'processing') AND s.batch_id IN (
    SELECT f.batch_id FROM operations f JOIN operation_batches b ON b.id = f.batch_id
    WHERE b.failure_policy = 'fail_fast' AND f.id = ANY (failing));
  IF siblings IS NOT NULL THEN
    PERFORM 1 FROM (
      SELECT pl.id FROM operations pl WHERE pl.id = ANY (siblings || changing) ORDER BY pl.id FOR UPDATE OF pl
    ) locked_first;
  END IF;
END
$$;

-- Ends the claims named (each row locked by primary key, in id order, and changed only while it
-- still has the claim named: `tokens`) with the outcome given for it: `targets` completed, failed
-- or pending (a retry or hand-back due after `delays` seconds, its attempt refunded when `refunds`
-- is 1). Work that finished is recorded completed even if a cancel was asked for meanwhile; any
-- other outcome of a row asked to cancel ends it cancelled. Returns each changed row as it is now.
-- When a row fails in a fail_fast batch, the batch's unfinished children are locked with the
-- rows named, in one pass in id order (see above).
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
  PERFORM operations_lock_with_siblings(
    ids, ARRAY(SELECT x.id FROM unnest(ids, targets) AS x(id, target) WHERE x.target = 'failed'));
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

-- Takes back at most `max_rows` operations whose lease expired, the oldest first (a row another
-- transaction holds — its worker recording its outcome right now — is skipped; each row is checked
-- again as it is once locked): cancelled when a cancel was asked, failed when its attempts are
-- exhausted, otherwise due again at once with the attempt counted. When one is about to fail in a
-- fail_fast batch, the batch's unfinished children are locked with the expired rows, in one pass in
-- id order (see above). Returns each changed row as it is now, in the columns of operations_finish.
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
DECLARE
  expired uuid[];
BEGIN
  -- The oldest expired leases, read without locks, through the partial index of processing rows.
  SELECT array_agg(x.id) INTO expired FROM (
    SELECT x.id FROM operations x
    WHERE x.status = 'processing' AND x.locked_until < now()
    ORDER BY x.locked_until
    LIMIT max_rows
  ) x;
  IF expired IS NULL THEN RETURN; END IF;
  PERFORM operations_lock_with_siblings(
    expired,
    ARRAY(SELECT f.id FROM operations f
          WHERE f.id = ANY (expired) AND f.attempts >= f.max_attempts AND f.cancel_requested_at IS NULL));
  RETURN QUERY
    WITH locked AS MATERIALIZED (
      SELECT c.id
      FROM (SELECT e.id FROM unnest(expired) AS e(id) ORDER BY e.id) u
      CROSS JOIN LATERAL (SELECT * FROM operations l WHERE l.id = u.id OFFSET 0 FOR UPDATE SKIP LOCKED) c
      -- Checked again as it is now. The status compared as text: the partial index of processing
      -- rows cannot answer it.
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

-- Records on the deliveries named (each locked by primary key, in key order, and changed only
-- while it is still the claim named: the attempt count it was claimed with, not delivered, not
-- dead): `delivered` sets delivered_at and clears the last error; a `failure` is kept as the last
-- error; `dead` ends the row; `due_seconds` makes it due again that long from now (a retry's delay,
-- or a lease extended), truncated to the column's milliseconds as src/store/statements/shared.ts
-- `dueAt`. Returns how many rows it changed.
CREATE FUNCTION "operation_deliveries_record"(
  event_ids bigint[],
  subscribers text[],
  claimed integer[],
  delivered boolean,
  failure text,
  dead boolean,
  due_seconds double precision
)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
SET jit = off
SET search_path FROM CURRENT
AS $$
DECLARE
  changed integer;
BEGIN
  IF cardinality(event_ids) IS NULL OR cardinality(event_ids) = 0 THEN RETURN 0; END IF;
  WITH locked AS MATERIALIZED (
    SELECT c.event_id, c.subscriber
    FROM (SELECT * FROM unnest(event_ids, subscribers, claimed) AS x(event_id, subscriber, claimed)
          ORDER BY x.event_id, x.subscriber) u
    CROSS JOIN LATERAL (
      SELECT * FROM operation_deliveries l
      WHERE l.event_id = u.event_id AND l.subscriber = u.subscriber
      OFFSET 0 FOR UPDATE) c
    WHERE c.attempts = u.claimed AND c.delivered_at IS NULL AND c.dead_at IS NULL
  ), recorded AS (
    UPDATE operation_deliveries d
    SET delivered_at = CASE WHEN delivered THEN now() ELSE d.delivered_at END,
        last_error = CASE WHEN delivered THEN NULL ELSE COALESCE(failure, d.last_error) END,
        dead_at = CASE WHEN dead THEN now() ELSE d.dead_at END,
        available_at = CASE WHEN due_seconds IS NULL THEN d.available_at
                            ELSE date_trunc('milliseconds', now() + make_interval(secs => due_seconds)) END
    FROM locked p
    WHERE d.event_id = p.event_id AND d.subscriber = p.subscriber
    RETURNING 1
  )
  SELECT count(*)::int INTO changed FROM recorded;
  RETURN changed;
END
$$;
