-- A worker's claim for queues a notification has just announced (see claimsAnnounced in
-- src/execution/producer.ts). A submit's wake-up names its (type, tenant) queue; a worker with fair
-- claiming takes that queue's due rows in a claim of their own, next to its regular claims, instead
-- of in shares of the next fair claims alongside a big tenant's backlog. Each queue oldest first, at
-- most `per_queue` rows, FOR UPDATE SKIP LOCKED: one ordered index probe per queue, with bitmap
-- scans off for the reason given above operations_pick_claimable. Types with concurrency limits are
-- never claimed here (their claims count what runs).
CREATE FUNCTION "operations_pick_announced"(queue_types text[], queue_tenants text[], per_queue integer)
RETURNS TABLE (picked_id uuid, pick_order integer)
LANGUAGE plpgsql VOLATILE
ROWS 16
SET enable_bitmapscan = off
SET search_path FROM CURRENT
AS $$
DECLARE
  i integer;
  id uuid;
  ord integer := 0;
BEGIN
  IF per_queue <= 0 OR cardinality(queue_types) IS NULL THEN RETURN; END IF;
  FOR i IN 1 .. cardinality(queue_types) LOOP
    FOR id IN
      SELECT o.id FROM operations o
      WHERE o.type = queue_types[i] AND o.tenant_id = queue_tenants[i] AND o.status = 'pending'
        AND o.run_at <= now()
      ORDER BY o.run_at, o.id
      LIMIT per_queue
      FOR UPDATE SKIP LOCKED
    LOOP
      ord := ord + 1;
      picked_id := id;
      pick_order := ord;
      RETURN NEXT;
    END LOOP;
  END LOOP;
END;
$$;
