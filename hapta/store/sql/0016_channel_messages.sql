-- Channel messages that go out only if a transaction commits (records.batch's `publish`, a function's
-- ctx.transaction(..., publish=...)): docs/realtime.md, "Messages that wait for a commit".
--
-- They travel as the changes do: written into the change inbox by the transaction itself, after its own changes
-- (its statement triggers ran already), so they exist exactly when it commits, numbering gives them the next
-- positions after those changes, and every gateway process reads them from the log and tells its own members. A
-- message's inbox row is {t: "hapta.channels", a: "message", x, n, e?}: `t` names no collection (a collection's
-- name is [a-z_][a-z0-9_]*), so nothing that reads changes of a collection ever sees it, `n` is the notice as the
-- channel bus carries it (hapta/live/channels.py Notice, as JSON text), and `e` marks the transaction's last
-- message (numbering may split a transaction's rows across calls: a reader that reads the log only for messages
-- reads on until it met the last). One doorbell rings for them, as for a table, so that numbering runs even when
-- the transaction wrote no record.
CREATE FUNCTION hapta.publish_messages(notices text[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  xact text := pg_current_xact_id()::text;
  total integer := coalesce(array_length(notices, 1), 0);
BEGIN
  IF total = 0 THEN
    RETURN;
  END IF;
  FOR i IN 1 .. total LOOP   -- one INSERT each: their inbox places keep the order they were given in
    INSERT INTO hapta.change_inbox (change)
    VALUES (jsonb_build_object('t', 'hapta.channels', 'a', 'message', 'x', xact, 'n', notices[i])
            || CASE WHEN i = total THEN '{"e": true}'::jsonb ELSE '{}'::jsonb END);
  END LOOP;
  PERFORM pg_notify('hapta_changes', json_build_object('t', 'hapta.channels', 'x', xact)::text);
END
$$;
