-- Mail and account tokens (hapta/auth/mail.py, hapta/auth/recovery.py).
--
-- mail_outbox: what the gateway has to send. A mail is written in the same transaction as whatever it tells of
-- (a reset token), and sent after commit by whichever process claims it first (next_try pushed ahead is its
-- lease): at least once, retried with backoff, never lost to a crash.
CREATE TABLE hapta.mail_outbox (
  id         bigserial PRIMARY KEY,
  recipient  text NOT NULL,
  subject    text NOT NULL,
  text_body  text NOT NULL,
  html_body  text,
  created    timestamptz NOT NULL DEFAULT now(),
  attempts   integer NOT NULL DEFAULT 0,
  next_try   timestamptz NOT NULL DEFAULT now(),
  sent_at    timestamptz,
  error      text
);
CREATE INDEX mail_outbox_due ON hapta.mail_outbox (next_try) WHERE sent_at IS NULL;

-- account_tokens: single-use secrets mailed to a user (verify an email, reset a password, a one-time sign-in code).
-- Only their SHA-256 is kept (a code's with its user's id: six digits alone would collide): a copy of the table
-- gives no one a working link.
CREATE TABLE hapta.account_tokens (
  hash       text PRIMARY KEY,
  user_id    text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  purpose    text NOT NULL CHECK (purpose IN ('verify', 'reset', 'otp', 'mfa', 'email')),
  email      text NOT NULL,                 -- the address it was sent to (a verification holds for that one)
  created    timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  used_at    timestamptz,
  attempts   integer NOT NULL DEFAULT 0       -- wrong guesses of a one-time code; at OTP_ATTEMPTS it is burnt
);
CREATE INDEX account_tokens_user ON hapta.account_tokens (user_id, purpose);

-- A user's second factor (TOTP, RFC 6238): the secret (it must be readable to check codes; it never leaves again
-- after enrolment), when it was confirmed (NULL: enrolment started, not in force), the last time step used (a code
-- works once), and the recovery codes, hashed, each single-use.
CREATE TABLE hapta.mfa_factors (
  user_id      text PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
  secret       text NOT NULL,
  confirmed_at timestamptz,
  last_step    bigint NOT NULL DEFAULT 0,
  recovery     text[] NOT NULL DEFAULT '{}'
);
