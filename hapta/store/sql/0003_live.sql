-- The change feed (see hapta/live/feed.py): every exposed table gets an AFTER trigger that NOTIFYs what changed,
-- whoever wrote it. The payload stays far below PostgreSQL's 8000-byte limit: table, action, id, version and transaction id, plus
-- the old values the gateway needs to know who could see the row before (the rows themselves are fetched later,
-- in batches). The trigger's two arguments are text arrays chosen by the gateway at start:
--   TG_ARGV[0]  the columns the collection's rules read (their old values tell who could see the row before)
--   TG_ARGV[1]  the columns that never leave the gateway (kept out of a deleted row's payload)
CREATE OR REPLACE FUNCTION hapta.notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  rule_columns text[] := TG_ARGV[0]::text[];
  hidden_columns text[] := TG_ARGV[1]::text[];
  head jsonb;
  old_values jsonb;
  payload text;
BEGIN
  IF TG_OP = 'DELETE' THEN
    head := jsonb_build_object('t', TG_TABLE_NAME, 'a', 'delete', 'id', OLD.id, 'v', OLD.version,
                               'x', pg_current_xact_id()::text);
    old_values := to_jsonb(OLD) - hidden_columns;
    IF octet_length(old_values::text) > 7000 THEN   -- a big row: keep what the rules read
      SELECT jsonb_object_agg(key, value) INTO old_values FROM jsonb_each(to_jsonb(OLD)) WHERE key = ANY(rule_columns);
    END IF;
  ELSE
    head := jsonb_build_object('t', TG_TABLE_NAME, 'a', CASE TG_OP WHEN 'INSERT' THEN 'create' ELSE 'update' END,
                               'id', NEW.id, 'v', NEW.version, 'x', pg_current_xact_id()::text);
    IF TG_OP = 'UPDATE' THEN   -- only the rule columns that changed: who could see the row before this update
      SELECT jsonb_object_agg(o.key, o.value) INTO old_values
        FROM jsonb_each(to_jsonb(OLD)) o JOIN jsonb_each(to_jsonb(NEW)) n USING (key)
        WHERE o.key = ANY(rule_columns) AND o.value IS DISTINCT FROM n.value;
    END IF;
  END IF;
  payload := (CASE WHEN old_values IS NULL THEN head ELSE head || jsonb_build_object('o', old_values) END)::text;
  IF octet_length(payload) > 7900 THEN   -- still too big: the gateway falls back to what it can check without it
    payload := head::text;
  END IF;
  PERFORM pg_notify('hapta_changes', payload);
  RETURN NULL;
END
$$;

-- Channel presence, shared by every process on this database. UNLOGGED: it is rebuilt from the live sockets, so
-- it need not survive a crash. A process that stops heartbeating is presumed dead and its members are removed.
CREATE UNLOGGED TABLE hapta.live_processes (
  id   text PRIMARY KEY,
  seen timestamptz NOT NULL DEFAULT now()
);

CREATE UNLOGGED TABLE hapta.presence (
  channel text NOT NULL,
  member  text NOT NULL,                    -- "<process id>:<connection number>"
  process text NOT NULL,
  user_id text,
  role    text NOT NULL,
  joined  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (channel, member)
);
CREATE INDEX presence_process_idx ON hapta.presence (process);
