-- Written by hand: functions and their settings, which a Prisma schema cannot say (see the first
-- migration). Nothing in the models changes. The claims of workers and of relays each become a
-- function that runs its writes as statements of their own, with sequential scans off.

-- A claim's UPDATE, run after its pick as a statement of its own. The claim used to be one
-- statement — pick, then UPDATE ... FROM the picked ids — which had two faults:
--  * The UPDATE's snapshot is older than the pick's (the pick function runs each query with a fresh
--    one), so a row committed between the two was locked by the pick and could not be claimed:
--    left for the worker's next poll (the producer works round it, src/execution/producer.ts).
--    Here the UPDATE starts after the pick has returned, so it sees every row the pick locked.
--  * The planner joined the picked ids to `operations` as the statistics said: taken when the
--    table was small (a new install, or between autovacuum's analyses), that is a hash join over
--    a sequential scan of the whole table, and a prepared statement keeps that plan for the life
--    of its connection — each claim read every operation ever written (0.5 ms per claim at 5,000
--    rows in the latency scenario, growing with the history). Here sequential scans are off, so
--    each picked row is found by primary key whatever the statistics say.
-- `picked` is in pick order; each row comes back with its place in it. Rows that are no longer
-- pending are left out (the picks only lock pending rows, so none is, but the check stays here,
-- where PostgreSQL re-checks it on the row as it is updated). Their batches are started.
CREATE FUNCTION "operations_claim"(picked uuid[], worker_id text, lease_seconds double precision)
RETURNS TABLE (
  claimed_id uuid,
  claimed_tenant_id text,
  claimed_batch_id uuid,
  claimed_type text,
  claimed_payload jsonb,
  claimed_attempts integer,
  claimed_max_attempts integer,
  claimed_lock_token uuid,
  claimed_order integer
)
LANGUAGE plpgsql VOLATILE
ROWS 16
SET enable_seqscan = off
SET search_path FROM CURRENT
AS $$
BEGIN
  IF cardinality(picked) IS NULL OR cardinality(picked) = 0 THEN RETURN; END IF;
  RETURN QUERY
    WITH claimed AS (
      -- By primary key alone (`= ANY` gives the index its condition; a join to the unnested ids
      -- let the planner probe the index for every id once per id), and the status compared as
      -- text, which the partial index of pending rows cannot answer (on a small table the planner
      -- took it, and read every pending row for each claim).
      UPDATE operations o
      SET status = 'processing', locked_by = worker_id,
          locked_until = now() + make_interval(secs => lease_seconds),
          lock_token = gen_random_uuid(), attempts = o.attempts + 1,
          started_at = COALESCE(o.started_at, now()), updated_at = now()
      WHERE o.id = ANY (picked) AND o.status::text = 'pending'
      RETURNING o.id, o.tenant_id, o.batch_id, o.type, o.payload, o.attempts, o.max_attempts, o.lock_token,
        array_position(picked, o.id)
    ), started AS (
      -- By primary key: `= ANY(ARRAY(…))`, not `IN (SELECT …)` (with sequential scans off, a semi
      -- join planned on a small table walked the whole batches index for each claim), and the
      -- status compared as text, which the partial index of batches in flight cannot answer (the
      -- planner took it on a small table, and read every batch in flight).
      UPDATE operation_batches b
      SET status = 'processing', started_at = COALESCE(b.started_at, now()), updated_at = now()
      WHERE b.id = ANY (ARRAY(SELECT DISTINCT c.batch_id FROM claimed c WHERE c.batch_id IS NOT NULL))
        AND b.status::text = 'pending'
    )
    SELECT * FROM claimed;
END
$$;

-- A relay's claim, for the same reasons: the subscriber's holds that ran out (their process died or
-- stalled before settling them) become delivery rows claimed by this relay, and its due delivery
-- rows are claimed — each statement of its own, with sequential scans off, so that none of them
-- reads a whole table when the statistics were taken on small ones (a claim joined to the outbox
-- and the deliveries by hash joins over full scans: 85 ms at 50,000 events). At most `max_holds`
-- holds are taken over per claim, so it can return more than `max_rows` deliveries (the holds'
-- events on top). Each hold is deleted under its row lock, here or by its process's settle.
CREATE FUNCTION "operation_deliveries_claim"(
  for_subscriber text,
  max_rows integer,
  max_holds integer,
  lease_seconds double precision
)
RETURNS TABLE (
  claimed_event_id bigint,
  claimed_tenant_id text,
  claimed_topic text,
  claimed_aggregate_id uuid,
  claimed_payload jsonb,
  claimed_created_at timestamptz,
  claimed_attempts integer
)
LANGUAGE plpgsql VOLATILE
ROWS 100
SET enable_seqscan = off
SET search_path FROM CURRENT
AS $$
DECLARE
  released bigint[];
  due bigint[];
BEGIN
  WITH ran_out AS MATERIALIZED (
    SELECT x.id FROM operation_delivery_holds x
    WHERE x.subscriber = for_subscriber AND x.held_until < now()
    ORDER BY x.held_until
    LIMIT max_holds
    FOR UPDATE SKIP LOCKED
  ), gone AS (
    -- By primary key alone: the rows are locked (nothing else changes a hold's held_until), and a
    -- condition on held_until here made the planner walk every hold that ran out.
    DELETE FROM operation_delivery_holds h
    WHERE h.id = ANY (ARRAY(SELECT r.id FROM ran_out r))
    RETURNING h.event_ids
  )
  SELECT array_agg(DISTINCT x.event_id) INTO released
  FROM gone g CROSS JOIN LATERAL unnest(g.event_ids) AS x(event_id);

  SELECT array_agg(p.picked_event_id) INTO due FROM operation_deliveries_pick_due(max_rows, for_subscriber) p;

  RETURN QUERY
    WITH taken_over AS (
      INSERT INTO operation_deliveries (event_id, subscriber, attempts, available_at)
      SELECT e.id, for_subscriber, 1, now() + make_interval(secs => lease_seconds)
      FROM unnest(COALESCE(released, '{}')) AS r(event_id)
      CROSS JOIN LATERAL (SELECT x.id FROM operation_outbox x WHERE x.id = r.event_id OFFSET 0) e
      ON CONFLICT DO NOTHING
      RETURNING event_id, attempts
    ), claimed AS (
      UPDATE operation_deliveries d
      SET attempts = d.attempts + 1, available_at = now() + make_interval(secs => lease_seconds)
      WHERE d.subscriber = for_subscriber AND d.event_id = ANY (COALESCE(due, '{}'))
      RETURNING d.event_id, d.attempts
    )
    -- Each event looked up by its key, one lateral lookup per delivery (a join to the outbox, or
    -- `= ANY` over it, was planned as a walk of the whole outbox when its statistics were small).
    SELECT e.id, e.tenant_id, e.topic, e.aggregate_id, e.payload, e.created_at, c.attempts
    FROM (SELECT * FROM claimed UNION ALL SELECT * FROM taken_over) c
    CROSS JOIN LATERAL (SELECT * FROM operation_outbox x WHERE x.id = c.event_id OFFSET 0) e
    ORDER BY e.id;
END
$$;

-- The picks find the oldest due rows through the claim path's partial indexes, whatever the
-- statistics say: with them taken on a small table, a pick read the whole table and sorted it
-- (the same 0.5 ms per claim at 5,000 rows). Bitmap scans were already off (see the first migration).
-- Sorts off too: every pick orders rows the way its partial index does, and with sorts allowed the
-- planner could take another index on a small table and sort what it read (a fair claim of 50 read
-- 8,000 rows through the tenants' index).
ALTER FUNCTION "operations_pick_claimable"(integer, text[], boolean, text, text, text[], integer[], integer[], jsonb)
  SET enable_seqscan = off;
ALTER FUNCTION "operations_pick_claimable"(integer, text[], boolean, text, text, text[], integer[], integer[], jsonb)
  SET enable_sort = off;
ALTER FUNCTION "operations_pick_announced"(text[], text[], integer) SET enable_seqscan = off;
ALTER FUNCTION "operations_pick_announced"(text[], text[], integer) SET enable_sort = off;
ALTER FUNCTION "operation_deliveries_pick_due"(integer, text) SET enable_seqscan = off;
ALTER FUNCTION "operation_deliveries_pick_due"(integer, text) SET enable_sort = off;
