-- A written row's judgement inside the statement that wrote it (hapta/access/sql.py Sql.judged): records.create
-- runs as one statement in its own implicit transaction, with no BEGIN and COMMIT round trips, so a refusal must
-- undo the write from within: it raises, and PostgreSQL rolls the statement back, the row and its change with it.
--   HA001  relation number MESSAGE (0-based) points at a record the writer may not view (or none)
--   HA002  the rule does not allow the row
CREATE FUNCTION hapta.judge(relations boolean[], allowed boolean) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1 .. coalesce(array_length(relations, 1), 0) LOOP
    IF relations[i] IS NOT TRUE THEN
      RAISE EXCEPTION USING ERRCODE = 'HA001', MESSAGE = (i - 1)::text;
    END IF;
  END LOOP;
  IF allowed IS NOT TRUE THEN
    RAISE EXCEPTION USING ERRCODE = 'HA002', MESSAGE = 'refused by the rule';
  END IF;
  RETURN true;
END
$$;
