-- Presence versions (docs/realtime.md, "Channels across a reconnect"). Every join and leave of a channel takes the
-- channel's next version in the same transaction as the membership change, under the lock of the channel's
-- version row: a snapshot that sees version n sees exactly the joins and leaves up to n. A rejoin that names the
-- version it last saw is told only what changed since: the members who joined after it, and those it knew who
-- left (kept for a while in hapta.presence_gone).
--
-- UNLOGGED like hapta.presence, and for the same reason; a crash empties all three together, and the epoch (new
-- with each row) then tells a client's old version apart from a new one that happens to have the same number.
CREATE UNLOGGED TABLE hapta.channel_versions (
  channel text PRIMARY KEY,
  epoch   text NOT NULL DEFAULT substr(md5(random()::text || clock_timestamp()::text), 1, 8),
  version bigint NOT NULL DEFAULT 0,
  pruned  bigint NOT NULL DEFAULT 0         -- leaves up to this version are no longer kept
);

ALTER TABLE hapta.presence ADD COLUMN since bigint NOT NULL DEFAULT 0;   -- the channel's version at the join

CREATE UNLOGGED TABLE hapta.presence_gone (
  channel text NOT NULL,
  member  text NOT NULL,
  user_id text,
  role    text NOT NULL,
  since   bigint NOT NULL,                  -- when it had joined
  version bigint NOT NULL,                  -- the channel's version at the leave
  at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX presence_gone_channel ON hapta.presence_gone (channel, version);

CREATE FUNCTION hapta.next_channel_version(name text) RETURNS bigint LANGUAGE sql AS $$
  INSERT INTO hapta.channel_versions AS v (channel, version) VALUES (name, 1)
  ON CONFLICT (channel) DO UPDATE SET version = v.version + 1
  RETURNING version
$$;

-- A member joins (nothing happens if it is there already); its join's version, or null.
CREATE FUNCTION hapta.presence_join(name text, who text, process_id text, user_id text, role text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  v bigint;
BEGIN
  IF EXISTS (SELECT FROM hapta.presence p WHERE p.channel = name AND p.member = who) THEN
    RETURN NULL;
  END IF;
  v := hapta.next_channel_version(name);
  INSERT INTO hapta.presence (channel, member, process, user_id, role, since)
  VALUES (name, who, process_id, user_id, role, v);
  RETURN v;
END
$$;

-- Members leave: those of `name` and `who` (one member), or every member of the processes `processes` (reaped);
-- each leave takes its channel's next version. Returns the members that left.
CREATE FUNCTION hapta.presence_leave(name text, who text, processes text[])
RETURNS SETOF hapta.presence_gone LANGUAGE sql AS $$
  WITH gone AS (
    DELETE FROM hapta.presence p
     WHERE (p.channel = name AND p.member = who) OR p.process = ANY(processes)
    RETURNING p.channel, p.member, p.user_id, p.role, p.since
  )
  INSERT INTO hapta.presence_gone (channel, member, user_id, role, since, version)
  SELECT g.channel, g.member, g.user_id, g.role, g.since, hapta.next_channel_version(g.channel)
    FROM (SELECT * FROM gone ORDER BY channel, member) g
  RETURNING *
$$;
