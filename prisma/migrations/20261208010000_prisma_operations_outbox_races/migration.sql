-- Written by hand: a function, which a Prisma schema cannot say (see the first migration). Nothing
-- in the models changes. removeSubscriber racing a write left delivery rows (or holds) for a
-- subscriber no longer registered (issue 28): no relay delivers them, and retention keeps their
-- events and batch for ever.

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
