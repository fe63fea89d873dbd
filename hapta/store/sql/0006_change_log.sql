-- Positions for the change feed (docs/realtime.md, "Positions"): every change gets a number that is the same in
-- every process and node and ordered by commit, and is kept for a while so that a client that lost its socket
-- can resume from the last number it saw.
--
-- A writer cannot number its change itself: a sequence value taken inside a transaction says when it started,
-- not when it committed, and one that started first may commit last. So a writer only drops its change in
-- the inbox (in its own transaction: it is there exactly when the write is) and rings a doorbell; numbering is
-- done after commit, by hapta.position_changes(), one call at a time (an advisory lock): it moves every
-- committed change from the inbox to the log with the next numbers. A change committed later is moved by a
-- later call and so gets a greater number than anything anyone has been shown: whoever saw position p has seen,
-- or will be given on resume, every change that was committed before p was handed out.
CREATE TABLE hapta.change_inbox (
  seq    bigserial PRIMARY KEY,             -- the order writers put them in (one row's changes keep their order)
  change jsonb NOT NULL                     -- {t, a, id, v, x, o}: see hapta/live/feed.py Change
);

CREATE TABLE hapta.change_log (
  pos    bigint PRIMARY KEY,                -- the position: 1, 2, 3, ... in the order they were numbered
  seq    bigint NOT NULL,                   -- where it sat in the inbox (a snapshot read says which it includes)
  t      text NOT NULL,                     -- the table, for replaying one collection
  at     timestamptz NOT NULL DEFAULT now(),
  change jsonb NOT NULL
);
CREATE INDEX change_log_table_pos ON hapta.change_log (t, pos);
CREATE INDEX change_log_at ON hapta.change_log (at);

-- Positions up to `pruned` are gone from the log: a resume from before it cannot be answered gap-free.
CREATE TABLE hapta.change_horizon (
  only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  pruned   bigint NOT NULL DEFAULT 0
);
INSERT INTO hapta.change_horizon DEFAULT VALUES;

-- Number up to `batch` committed changes: the newest position, and how many were numbered now (`batch` of them:
-- call again). Called by every gateway process when its listener hears a doorbell, and before a subscription
-- starts (one call at a time across all of them); NOTIFYs hapta_positions with the new head.
CREATE FUNCTION hapta.position_changes(batch integer, OUT head bigint, OUT moved bigint) LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('hapta.change_log'));
  -- A new statement, a new snapshot: it sees what the previous call committed (it released the lock after).
  SELECT greatest((SELECT max(pos) FROM hapta.change_log), (SELECT pruned FROM hapta.change_horizon)) INTO head;
  WITH moved_rows AS (
    DELETE FROM hapta.change_inbox
     WHERE seq IN (SELECT seq FROM hapta.change_inbox ORDER BY seq LIMIT batch)
    RETURNING seq, change
  )
  INSERT INTO hapta.change_log (pos, seq, t, change)
  SELECT head + row_number() OVER (ORDER BY seq), seq, change->>'t', change FROM moved_rows;
  GET DIAGNOSTICS moved = ROW_COUNT;
  IF moved > 0 THEN
    head := head + moved;
    PERFORM pg_notify('hapta_positions', head::text);
  END IF;
END
$$;

-- The writers' side: the trigger of every exposed table (installed by hapta/live/feed.py install_triggers) now
-- puts its change in the inbox and rings `hapta_changes` with {t, x}: the table and the writing transaction,
-- once per table and transaction (PostgreSQL folds identical notifications of one transaction). That doorbell is
-- also what the read cache invalidates on (live/cache.py), as before.
CREATE OR REPLACE FUNCTION hapta.notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  rule_columns text[] := TG_ARGV[0]::text[];
  hidden_columns text[] := TG_ARGV[1]::text[];
  xact text := pg_current_xact_id()::text;
  head jsonb;
  old_values jsonb;
BEGIN
  IF TG_OP = 'DELETE' THEN
    head := jsonb_build_object('t', TG_TABLE_NAME, 'a', 'delete', 'id', OLD.id, 'v', OLD.version, 'x', xact);
    old_values := to_jsonb(OLD) - hidden_columns;
    IF octet_length(old_values::text) > 7000 THEN   -- a big row: keep what the rules read
      SELECT jsonb_object_agg(key, value) INTO old_values FROM jsonb_each(to_jsonb(OLD)) WHERE key = ANY(rule_columns);
    END IF;
  ELSE
    head := jsonb_build_object('t', TG_TABLE_NAME, 'a', CASE TG_OP WHEN 'INSERT' THEN 'create' ELSE 'update' END,
                               'id', NEW.id, 'v', NEW.version, 'x', xact);
    IF TG_OP = 'UPDATE' THEN   -- only the rule columns that changed: who could see the row before this update
      SELECT jsonb_object_agg(o.key, o.value) INTO old_values
        FROM jsonb_each(to_jsonb(OLD)) o JOIN jsonb_each(to_jsonb(NEW)) n USING (key)
        WHERE o.key = ANY(rule_columns) AND o.value IS DISTINCT FROM n.value;
    END IF;
  END IF;
  INSERT INTO hapta.change_inbox (change)
  VALUES (CASE WHEN old_values IS NULL THEN head ELSE head || jsonb_build_object('o', old_values) END);
  PERFORM pg_notify('hapta_changes', json_build_object('t', TG_TABLE_NAME, 'x', xact)::text);
  RETURN NULL;
END
$$;

-- Drop what is older than `retention` seconds, and the oldest beyond `max_kept` (positions are consecutive, so
-- the cap is a position too); record how far. One process at a time prunes (the others find the lock taken).
CREATE FUNCTION hapta.prune_changes(retention double precision, max_kept bigint) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  cut bigint;
BEGIN
  IF NOT pg_try_advisory_xact_lock(hashtext('hapta.change_log.prune')) THEN
    RETURN NULL;
  END IF;
  SELECT greatest((SELECT max(pos) FROM hapta.change_log WHERE at < now() - make_interval(secs => retention)),
                  (SELECT max(pos) FROM hapta.change_log) - max_kept) INTO cut;
  IF cut IS NULL OR cut <= (SELECT pruned FROM hapta.change_horizon) THEN
    RETURN NULL;
  END IF;
  DELETE FROM hapta.change_log WHERE pos <= cut;
  UPDATE hapta.change_horizon SET pruned = cut;
  RETURN cut;
END
$$;
