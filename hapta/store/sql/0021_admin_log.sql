-- What admins did from the dashboard that an operator must be able to trace afterwards: every statement of the SQL
-- console (its text, the write switch, the row count or PostgreSQL's error code) and every backup started, deleted
-- or restored. `admin` is Principal.label (an admin account's email, or "admin key"); `address` the client's.
CREATE TABLE hapta.admin_log (
  id bigserial PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  admin text NOT NULL,
  address text,
  action text NOT NULL,
  detail jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX admin_log_at_idx ON hapta.admin_log (at DESC);
