-- Written by hand: a function and its settings, which a Prisma schema cannot say (see the first
-- migration). Nothing in the models changes. A relay's records on its claimed deliveries (a
-- delivery made, a delivery failed, a lease extended) change their rows in a function, with the
-- settings of the group commit's (…_prisma_operations_finish_function).
--
-- They name their rows by key, and were statements whose plans followed the statistics: taken
-- when the deliveries table was small (a new install; autovacuum off, or before its next analysis),
-- the plan looked up each named row by reading the whole table, and once more to update it, and a
-- prepared statement keeps that plan for the life of its connection while the table grows —
-- O(deliveries × rows in the table) per record (5 marks read a table of 10,010 rows 10 times over:
-- test/db/plans.test.ts). Here every named row is locked by primary key, in key order, and
-- updated by primary key, whatever the statistics say.

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
