-- The change trigger once per statement, not once per row (docs/realtime.md, "What the feed costs a write"): a
-- multi-row INSERT (records/combine.py puts concurrent creates in one) pays one trigger call, one inbox INSERT and
-- one doorbell instead of one of each per row. The rows come from the statement's transition tables, in the order
-- the statement wrote them, so their inbox places (and positions) keep that order. What each change records is
-- what hapta.notify_change (0006) recorded; its arguments are the same two arrays. Transition tables need one
-- trigger per event: the gateway installs hapta_changes_insert, _update and _delete (live/feed.py) in place of the
-- row trigger hapta_changes. Rows are named whole as `alias.*`: an app's column may be called like an alias.
CREATE OR REPLACE FUNCTION hapta.notify_changes() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  rule_columns text[] := TG_ARGV[0]::text[];
  hidden_columns text[] := TG_ARGV[1]::text[];
  xact text := pg_current_xact_id()::text;
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO hapta.change_inbox (change)
    SELECT jsonb_build_object('t', TG_TABLE_NAME, 'a', 'create', 'id', n.id, 'v', n.version, 'x', xact)
      FROM hapta_new n;
  ELSIF TG_OP = 'UPDATE' THEN   -- with the rule columns that changed: who could see the row before
    INSERT INTO hapta.change_inbox (change)
    SELECT jsonb_build_object('t', TG_TABLE_NAME, 'a', 'update', 'id', n.id, 'v', n.version, 'x', xact)
           || coalesce((SELECT jsonb_build_object('o', jsonb_object_agg(was.key, was.value))
                          FROM jsonb_each(to_jsonb(o.*)) was JOIN jsonb_each(to_jsonb(n.*)) became
                            ON became.key = was.key
                         WHERE was.key = ANY(rule_columns) AND was.value IS DISTINCT FROM became.value
                        HAVING count(*) > 0), '{}'::jsonb)
      FROM hapta_new n JOIN hapta_old o ON o.id = n.id;
  ELSE   -- with the old row, less its hidden columns (what the rules read, if it is over 7,000 bytes)
    INSERT INTO hapta.change_inbox (change)
    SELECT jsonb_build_object('t', TG_TABLE_NAME, 'a', 'delete', 'id', o.id, 'v', o.version, 'x', xact,
                              'o', CASE WHEN octet_length((to_jsonb(o.*) - hidden_columns)::text) > 7000
                                        THEN (SELECT jsonb_object_agg(col.key, col.value)
                                                FROM jsonb_each(to_jsonb(o.*)) col
                                               WHERE col.key = ANY(rule_columns))
                                        ELSE to_jsonb(o.*) - hidden_columns END)
      FROM hapta_old o;
  END IF;
  IF FOUND THEN
    PERFORM pg_notify('hapta_changes', json_build_object('t', TG_TABLE_NAME, 'x', xact)::text);
  END IF;
  RETURN NULL;
END
$$;
