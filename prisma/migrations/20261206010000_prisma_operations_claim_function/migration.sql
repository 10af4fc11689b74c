-- Written by hand: functions and their settings, which a Prisma schema cannot say (see the first
-- migration). Nothing in the models changes.

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
      UPDATE operations o
      SET status = 'processing', locked_by = worker_id,
          locked_until = now() + make_interval(secs => lease_seconds),
          lock_token = gen_random_uuid(), attempts = o.attempts + 1,
          started_at = COALESCE(o.started_at, now()), updated_at = now()
      FROM unnest(picked) WITH ORDINALITY AS p(picked_id, pick_order)
      WHERE o.id = p.picked_id AND o.status = 'pending'
      RETURNING o.id, o.tenant_id, o.batch_id, o.type, o.payload, o.attempts, o.max_attempts, o.lock_token,
        p.pick_order::integer
    ), started AS (
      UPDATE operation_batches b
      SET status = 'processing', started_at = COALESCE(b.started_at, now()), updated_at = now()
      WHERE b.id IN (SELECT c.batch_id FROM claimed c) AND b.status = 'pending'
    )
    SELECT * FROM claimed;
END
$$;

-- The picks find the oldest due rows through the claim path's partial indexes, whatever the
-- statistics say: with them taken on a small table, a pick read the whole table and sorted it
-- (the same 0.5 ms per claim at 5,000 rows). Bitmap scans were already off (see the first migration).
ALTER FUNCTION "operations_pick_claimable"(integer, text[], boolean, text, text, text[], integer[], integer[], jsonb)
  SET enable_seqscan = off;
ALTER FUNCTION "operations_pick_announced"(text[], text[], integer) SET enable_seqscan = off;
ALTER FUNCTION "operation_deliveries_pick_due"(integer, text) SET enable_seqscan = off;
