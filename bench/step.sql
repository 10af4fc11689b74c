-- `CALL pg_temp.step(name, statement)`: runs `statement` (a step on 100 rows) 200 times, committing
-- each, and prints µs per row. Included by row-costs.sql and layout-costs.sql (`\ir step.sql`).
CREATE OR REPLACE PROCEDURE pg_temp.step(name text, statement text) LANGUAGE plpgsql AS $$
DECLARE started timestamptz := clock_timestamp();
BEGIN
  FOR i IN 1 .. 200 LOOP
    EXECUTE statement;
    COMMIT;
  END LOOP;
  RAISE NOTICE '%: % µs per row', rpad(name, 40), round(extract(epoch FROM clock_timestamp() - started) * 1e6 / 20000);
END $$;
