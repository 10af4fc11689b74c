-- AlterTable
ALTER TABLE "operation_deliveries" ADD COLUMN     "spent_attempts" INTEGER NOT NULL DEFAULT 0;


-- ================================================================================================
-- Written by hand: what a Prisma schema cannot say (see the first migration). Three races of the
-- outbox with operators and retention (issue 28), each closed where the rows are locked:
--  * removeSubscriber racing a write left delivery rows (or holds) for a subscriber no longer
--    registered: no relay delivers them, and retention keeps their events and batch for ever.
--  * redeliverDead racing retention: the pruner decided from its snapshot that a delivery was dead
--    long enough, and deleted it with its event after an operator had revived it (told "1").
--  * redeliverDead reset `attempts`, the number that names a relay's claim: a relay stalled through
--    a whole retry cycle found its old number again, and its stale outcome was recorded.
-- The lock order every writer of these rows keeps is written down in src/store/statements/
-- transitions.ts.
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

-- Retention's last step for events (src/store/statements/retention.ts): deletes the events of each
-- group (a batch with its children, an operation, or one event) none of whose events is still owed
-- to a subscriber, held, dead for less than `dead_kept_seconds` (null: kept while dead at all), or
-- delivered less than `delivered_kept_seconds` ago (null: however recently) — decided here, by a
-- statement whose snapshot is taken after the calling statement locked the events (FOR UPDATE,
-- skipping any another transaction held). That statement decided from its own, older snapshot: a
-- delivery revived (redeliverDead) or written (replayEvents, a settle, a relay's takeover) and
-- committed before it locked the event was not in it, and its delete took that delivery with the
-- event. Whoever revives or writes a delivery holds its event FOR KEY SHARE (the foreign key does
-- it for a new row), so from the lock on, none can change what is decided here. Each event's
-- delivery rows are locked too, skipping any another transaction holds (a relay recording on it):
-- a group with one of them is kept for a later pass, so the delete below never waits.
-- `event_ids` are the locked events, `event_groups` the group of each; `groups` every group asked
-- about (one may have no event left). Returns the groups whose events are gone, with how many.
CREATE FUNCTION "operation_outbox_prune"(
  groups text[],
  event_ids bigint[],
  event_groups text[],
  dead_kept_seconds double precision,
  delivered_kept_seconds double precision
)
RETURNS TABLE (pruned_group text, pruned_events integer)
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
BEGIN
  IF cardinality(groups) IS NULL OR cardinality(groups) = 0 THEN RETURN; END IF;
  RETURN QUERY
    WITH members AS (
      SELECT m.event_id, m.grp FROM unnest(COALESCE(event_ids, '{}'), COALESCE(event_groups, '{}')) AS m(event_id, grp)
    ), locked AS MATERIALIZED (
      SELECT d.event_id, d.delivered_at, d.dead_at FROM operation_deliveries d
      WHERE d.event_id = ANY (COALESCE(event_ids, '{}'))
      ORDER BY d.event_id, d.subscriber
      FOR UPDATE OF d SKIP LOCKED
    ), kept AS (
      SELECT DISTINCT m.grp FROM members m
      WHERE EXISTS (SELECT 1 FROM operation_delivery_holds h WHERE m.event_id = ANY (h.event_ids))
         OR EXISTS (SELECT 1 FROM locked d WHERE d.event_id = m.event_id AND (
              (d.delivered_at IS NULL AND d.dead_at IS NULL)
              OR (d.dead_at IS NOT NULL AND (dead_kept_seconds IS NULL
                    OR d.dead_at >= now() - make_interval(secs => dead_kept_seconds)))
              OR (delivered_kept_seconds IS NOT NULL
                    AND d.delivered_at >= now() - make_interval(secs => delivered_kept_seconds))))
         OR (SELECT count(*) FROM operation_deliveries d WHERE d.event_id = m.event_id)
            <> (SELECT count(*) FROM locked d WHERE d.event_id = m.event_id)
    ), going AS (
      SELECT DISTINCT g.grp FROM unnest(groups) AS g(grp) WHERE g.grp NOT IN (SELECT k.grp FROM kept k)
    ), gone AS (
      -- By primary key (`= ANY(ARRAY(…))`: a join to `members` could be planned as a walk of the outbox).
      DELETE FROM operation_outbox e
      WHERE e.id = ANY (ARRAY(SELECT m.event_id FROM members m WHERE m.grp IN (SELECT g.grp FROM going g)))
      RETURNING e.id
    )
    SELECT g.grp, (SELECT count(*)::int FROM gone x JOIN members m ON m.event_id = x.id WHERE m.grp = g.grp)
    FROM going g;
END
$$;
