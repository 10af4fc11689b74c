-- The commit-time check that a batch has all of its children counts them through the batch_id
-- index whatever the planner's statistics say. PL/pgSQL keeps a generic plan per connection until
-- the next ANALYZE, so a connection that first ran the check on a small table went on reading
-- every operation for each batch submitted as the table grew (autovacuum off, or between its
-- analyses). Without sequential scans the one plan left reads only the batch's own children.
ALTER FUNCTION "operation_batches_require_children"() SET enable_seqscan = off;
