-- Account lifecycles (hapta/auth/accounts.py, docs/sessions.md "What ends what").
--
-- A mailed token stands for the account as it was when the token was minted: its address and its password. So
-- every change of either ends every token still live for the account (a reset link sent to the old address, a
-- sign-in code, a pending email change, an older reset link, an MFA challenge), whoever makes the change: the
-- gateway's ops or a statement straight in SQL. The use cases end them explicitly too where nothing of the row
-- changes (every session revoked, an account taken over).
CREATE OR REPLACE FUNCTION hapta.end_account_tokens() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE hapta.account_tokens SET used_at = now() WHERE user_id = NEW.id AND used_at IS NULL;
  RETURN NULL;
END
$$;

CREATE TRIGGER users_credentials_changed AFTER UPDATE OF email, password_hash ON users
  FOR EACH ROW WHEN (OLD.email IS DISTINCT FROM NEW.email OR OLD.password_hash IS DISTINCT FROM NEW.password_hash)
  EXECUTE FUNCTION hapta.end_account_tokens();

-- The session that asked for a token (an email change ends the account's other sessions when it is confirmed, and
-- keeps this one).
ALTER TABLE hapta.account_tokens ADD COLUMN session_id text;

-- Spending looks a token up by hash; ending them all looks up the account's live ones.
CREATE INDEX account_tokens_live ON hapta.account_tokens (user_id) WHERE used_at IS NULL;
