-- AlterTable
ALTER TABLE "operation_deliveries" ADD COLUMN     "spent_attempts" INTEGER NOT NULL DEFAULT 0;


-- ================================================================================================
-- Written by hand: what a Prisma schema cannot say (see the first migration). Two races of the
-- outbox with operators (issue 28), each closed where the rows are locked:
--  * removeSubscriber racing a write left delivery rows (or holds) for a subscriber no longer
--    registered: no relay delivers them, and retention keeps their events and batch for ever.
--  * redeliverDead reset `attempts`, the number that names a relay's claim: a relay stalled through
--    a whole retry cycle found its old number again, and its stale outcome was recorded.
-- ================================================================================================

-- `attempts` only ever grows (it names each claim: see operation_deliveries_record); a redelivery
-- gives a fresh budget by moving `spent_attempts` up to it instead of setting `attempts` back.
ALTER TABLE "operation_deliveries" ADD CONSTRAINT "operation_deliveries_spent_valid"
  CHECK ("spent_attempts" >= 0 AND "spent_attempts" <= "attempts");

-- A relay's claim, as …_prisma_operations_claim_functions made it, returning beside the claim's
-- number (`claimed_attempts`, its fence) the attempt within the delivery's budget
-- (`claimed_attempt`: 1 for the first since the row was written or last redelivered).
DROP FUNCTION "operation_deliveries_claim"(text, integer, integer, double precision);
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
  claimed_attempts integer,
  claimed_attempt integer
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
      RETURNING event_id, attempts, attempts - spent_attempts AS attempt
    ), claimed AS (
      UPDATE operation_deliveries d
      SET attempts = d.attempts + 1, available_at = now() + make_interval(secs => lease_seconds)
      WHERE d.subscriber = for_subscriber AND d.event_id = ANY (COALESCE(due, '{}'))
      RETURNING d.event_id, d.attempts, d.attempts - d.spent_attempts AS attempt
    )
    -- Each event looked up by its key, one lateral lookup per delivery (a join to the outbox, or
    -- `= ANY` over it, was planned as a walk of the whole outbox when its statistics were small).
    SELECT e.id, e.tenant_id, e.topic, e.aggregate_id, e.payload, e.created_at, c.attempts, c.attempt
    FROM (SELECT * FROM claimed UNION ALL SELECT * FROM taken_over) c
    CROSS JOIN LATERAL (SELECT * FROM operation_outbox x WHERE x.id = c.event_id OFFSET 0) e
    ORDER BY e.id;
END
$$;

-- Forgets a subscriber and every delivery still owed to it, each step a statement of its own:
--  1. Its row. Every statement that writes delivery rows or holds for a subscriber holds its row
--     FOR KEY SHARE (src/store/statements/outbox.ts, recordEvents and replayEvents), so this waits
--     for those under way to commit; one that comes to the row later waits for this transaction,
--     then finds the row gone and owes the subscriber nothing.
--  2. Its holds, with a snapshot taken after step 1's wait: it sees what those writes committed. A
--     hold being settled (settleHolds) or taken over by a relay (operation_deliveries_claim) is
--     locked by them; this waits for them, and step 3 sees the delivery rows they wrote instead.
--  3. Its delivery rows, locked in key order as a relay's records lock them.
-- Returns whether the row was there, and the deliveries forgotten (rows, and events held).
CREATE FUNCTION "operation_subscribers_remove"(for_name text)
RETURNS TABLE (removed integer, deliveries integer)
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
  was_there integer;
  held integer;
  rows_gone integer;
BEGIN
  DELETE FROM operation_subscribers s WHERE s.name = for_name;
  GET DIAGNOSTICS was_there = ROW_COUNT;

  WITH locked AS MATERIALIZED (
    SELECT h.id FROM operation_delivery_holds h WHERE h.subscriber = for_name ORDER BY h.id FOR UPDATE
  ), gone AS (
    DELETE FROM operation_delivery_holds h WHERE h.id = ANY (ARRAY(SELECT l.id FROM locked l))
    RETURNING cardinality(h.event_ids) AS n
  )
  SELECT COALESCE(sum(g.n), 0)::int INTO held FROM gone g;

  WITH locked AS MATERIALIZED (
    SELECT d.event_id FROM operation_deliveries d WHERE d.subscriber = for_name
    ORDER BY d.event_id FOR UPDATE
  ), gone AS (
    DELETE FROM operation_deliveries d
    WHERE d.subscriber = for_name AND d.event_id = ANY (ARRAY(SELECT l.event_id FROM locked l))
    RETURNING 1
  )
  SELECT count(*)::int INTO rows_gone FROM gone;

  RETURN QUERY SELECT was_there, held + rows_gone;
END
$$;
