-- Written by hand: a function and its settings, which a Prisma schema cannot say (see the first
-- migration). Nothing in the models changes. A worker's heartbeat updates its rows in a function,
-- with sequential scans off, as the claims do (…_prisma_operations_claim_functions).
--
-- It names its rows by id, and was a statement whose plan followed the statistics: taken when the
-- table was small (a new install; autovacuum off, or before its next analysis), the plan looked up
-- each named row by reading the whole table, and a prepared statement keeps that plan for the life
-- of its connection while the table grows — O(claims × rows in the table) per heartbeat (5 claims
-- read a table of 15,010 rows 10 times over: test/db/plans.test.ts). Here every named row is
-- locked by primary key, in id order, and updated by primary key, whatever the statistics say.

-- Extends the leases of the claims still held (each row locked by primary key, in id order, and
-- only while it has the claim named); says for each whether it was asked to cancel.
CREATE FUNCTION "operations_heartbeat"(ids uuid[], tokens uuid[], lease_seconds double precision)
RETURNS TABLE (beat_lock_token uuid, beat_cancel_requested boolean)
LANGUAGE plpgsql VOLATILE
ROWS 100
SET enable_seqscan = off
SET enable_bitmapscan = off
SET search_path FROM CURRENT
AS $$
BEGIN
  IF cardinality(ids) IS NULL OR cardinality(ids) = 0 THEN RETURN; END IF;
  RETURN QUERY
    WITH locked AS MATERIALIZED (
      SELECT c.id
      FROM (SELECT * FROM unnest(ids, tokens) AS x(id, token) ORDER BY x.id) u
      CROSS JOIN LATERAL (SELECT * FROM operations l WHERE l.id = u.id OFFSET 0 FOR UPDATE) c
      WHERE c.lock_token = u.token AND c.status = 'processing'
    ), extended AS (
      UPDATE operations o
      SET locked_until = now() + make_interval(secs => lease_seconds)
      WHERE o.id = ANY (ARRAY(SELECT k.id FROM locked k))
      RETURNING o.lock_token, o.cancel_requested_at IS NOT NULL
    )
    SELECT * FROM extended;
END
$$;
