-- Admin accounts: the people who run the app from the dashboard (hapta/auth/admins.py, docs/dashboard.md). Apart
-- from the app's users: no rule, record op or user session ever reaches these tables. The admin key
-- (HAPTA_ADMIN_KEY) stays, for machines.
CREATE TABLE hapta.admins (
  id            text PRIMARY KEY DEFAULT hapta.new_id(),
  email         text NOT NULL UNIQUE CHECK (email = lower(email) AND length(email) <= 254),
  password_hash text NOT NULL,              -- argon2id (hapta/auth/passwords.py)
  -- The TOTP secret (base32), kept as users' factors are (hapta.mfa_factors): a TOTP check needs the secret
  -- itself, so it cannot be hashed. NULL: no second factor (development only; production refuses the sign-in).
  totp_secret   text,
  totp_last_step bigint NOT NULL DEFAULT 0, -- the last time step a code was accepted for: a code works once
  created       timestamptz NOT NULL DEFAULT now(),
  last_sign_in  timestamptz
);

-- A signed-in dashboard: a short-lived, revocable session. The token the dashboard holds is 256 random bits; only
-- its SHA-256 is stored. Each use (a resume, a refresh) pushes expires_at on by the idle timeout, never past
-- created + the absolute lifetime (both in hapta/auth/admins.py).
CREATE TABLE hapta.admin_sessions (
  -- 'adm' + 15: apart from users' session ids, which the SessionHub indexes in the same table of sockets
  id          text PRIMARY KEY DEFAULT 'adm' || hapta.new_id(),
  admin_id    text NOT NULL REFERENCES hapta.admins (id) ON DELETE CASCADE,
  token_hash  text NOT NULL UNIQUE,
  address     text,                         -- where it was signed in from
  created     timestamptz NOT NULL DEFAULT now(),
  last_seen   timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL,
  revoked_at  timestamptz
);
CREATE INDEX admin_sessions_admin_idx ON hapta.admin_sessions (admin_id);
