-- Written by hand: functions and their settings, which a Prisma schema cannot say (see the first
-- migration). Nothing in the models changes.
--
-- A failure in a fail_fast batch cancels the batch's pending siblings, in the statement that
-- records it (src/store/statements/transitions.ts). That statement picked the siblings as its
-- snapshot, taken when it started, showed them; a sibling an operator retried (cancelled or failed
-- → pending) while the statement waited for a row lock was still cancelled or failed there, so it
-- was left pending and ran, although the batch's counters, read as they are when locked, counted
-- the retry: a state no order of the two reaches (test/db/races.test.ts, "fail_fast racing a
-- retry of a sibling"). Now:
-- - the lock taken with the failing rows covers every child of the batch a retry could make
--   pending (not only the pending and running ones): a retry of one either committed before the
--   lock was granted, or waits for the failure's commit (and then re-queues it after the failure,
--   as an operator retrying after it would);
-- - the siblings to cancel are read after those locks are held, with a snapshot of that moment
--   (`operations_fail_fast_siblings`), and each is then changed as it is, not as the statement's
--   snapshot showed it.

-- Locks the rows `changing`, and with them, when any of `failing` (not asked to cancel: those end
-- cancelled, and cascade nothing) is in a fail_fast batch, that batch's children that are not
-- completed — pending and running ones, which its cascade cancels, and failed and cancelled ones,
-- which a retry could make pending meanwhile: in one pass, in id order (see
-- …_prisma_operations_stable_plans). Without a failing row in a fail_fast batch it locks nothing:
-- the caller locks its own rows as it changes them, in id order too.
CREATE OR REPLACE FUNCTION "operations_lock_with_siblings"(changing uuid[], failing uuid[])
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
  WHERE s.status <> 'completed' AND s.batch_id IN (
    SELECT f.batch_id FROM operations f JOIN operation_batches b ON b.id = f.batch_id
    WHERE b.failure_policy = 'fail_fast' AND f.id = ANY (failing) AND f.cancel_requested_at IS NULL);
  IF siblings IS NOT NULL THEN
    PERFORM 1 FROM (
      SELECT pl.id FROM operations pl WHERE pl.id = ANY (siblings || changing) ORDER BY pl.id FOR UPDATE OF pl
    ) locked_first;
  END IF;
END
$$;

-- The pending and running children of those of `batch_ids` that are fail_fast: the siblings a
-- failure there cancels (or asks to stop). Called by the statement that records the failure, after
-- its rows and their siblings were locked (`operations_lock_with_siblings`); being VOLATILE, it
-- reads them with a snapshot taken when it is called, not the statement's.
CREATE FUNCTION "operations_fail_fast_siblings"(batch_ids uuid[])
RETURNS TABLE (sibling_id uuid)
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
  IF cardinality(batch_ids) IS NULL OR cardinality(batch_ids) = 0 THEN RETURN; END IF;
  RETURN QUERY
    SELECT s.id FROM operations s
    WHERE s.status IN ('pending', 'processing') AND s.batch_id IN (
      SELECT b.id FROM operation_batches b WHERE b.id = ANY (batch_ids) AND b.failure_policy = 'fail_fast');
END
$$;
