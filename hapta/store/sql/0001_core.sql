-- The gateway's own tables and functions. App tables come from the app's migrations/ folder.

-- Record ids: 15 characters of [a-z0-9], like PocketBase's. Defined in SQL so that rows inserted straight in SQL
-- get one too. Ids are names, not secrets: random() is enough here.
CREATE OR REPLACE FUNCTION hapta.new_id() RETURNS text LANGUAGE sql VOLATILE AS $$
  SELECT string_agg(substr('abcdefghijklmnopqrstuvwxyz0123456789', 1 + floor(random() * 36)::int, 1), '')
  FROM generate_series(1, 15)
$$;

-- Every exposed table carries id, created, updated and version; this keeps the last three honest on update,
-- whoever writes (the gateway or plain SQL).
CREATE OR REPLACE FUNCTION hapta.touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.id := OLD.id;
  NEW.created := OLD.created;
  NEW.updated := now();
  NEW.version := OLD.version + 1;
  RETURN NEW;
END
$$;

CREATE TABLE users (
  id            text PRIMARY KEY DEFAULT hapta.new_id(),
  email         text NOT NULL UNIQUE CHECK (email = lower(email) AND length(email) <= 254),
  username      text UNIQUE CHECK (username = lower(username) AND length(username) BETWEEN 2 AND 32),
  password_hash text,
  created       timestamptz NOT NULL DEFAULT now(),
  updated       timestamptz NOT NULL DEFAULT now(),
  version       bigint NOT NULL DEFAULT 1
);

-- A session is one login on one device. Its refresh tokens form a family: each use spends one and mints the
-- next (replaced_by), so a spent token presented again reveals a leak and revokes the session.
CREATE TABLE hapta.sessions (
  id             text PRIMARY KEY DEFAULT hapta.new_id(),
  user_id        text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  created        timestamptz NOT NULL DEFAULT now(),
  last_seen      timestamptz NOT NULL DEFAULT now(),
  expires_at     timestamptz NOT NULL,
  revoked_at     timestamptz,
  revoked_reason text
);
CREATE INDEX sessions_user_idx ON hapta.sessions (user_id);

CREATE TABLE hapta.refresh_tokens (
  hash        text PRIMARY KEY,             -- sha256 of the token; the token itself is never stored
  session_id  text NOT NULL REFERENCES hapta.sessions (id) ON DELETE CASCADE,
  created     timestamptz NOT NULL DEFAULT now(),
  spent_at    timestamptz,
  replaced_by text
);
CREATE INDEX refresh_tokens_session_idx ON hapta.refresh_tokens (session_id);
