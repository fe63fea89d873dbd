-- Accounts (hapta/auth/accounts.py holds the same rules, with the messages clients see).
--
-- `verified`: the account's owner has shown the email is theirs (so far only through an OAuth2 provider that vouches
-- for it). Only then may a provider's sign-in with that email be linked to the account; an unverified account
-- with that email is taken over by the verified owner instead (its password and sessions end): no one can
-- register someone else's address first and wait for them to sign in (account pre-hijacking).
ALTER TABLE users ADD COLUMN verified boolean NOT NULL DEFAULT false;

-- A username is never an email and never looks like another: ASCII a-z, 0-9, '_' and '.', 2-32 characters. NOT VALID:
-- rows written before this rule are left as they are; every new write is held to it.
ALTER TABLE users ADD CONSTRAINT users_username_format CHECK (username ~ '^[a-z0-9_.]{2,32}$') NOT VALID;
ALTER TABLE users ADD CONSTRAINT users_email_format CHECK (position('@' IN email) > 1) NOT VALID;
