-- Guests (auth.guest): an account with no email and no password yet, signed in on one device, that keeps its
-- records when auth.register on its socket gives it an email and a password (it is the same row, the same id).
-- Rules read `@user.anonymous`. A guest nobody can reach any more (its sessions gone) is deleted by the session
-- sweep, with what it wrote (ON DELETE CASCADE): no one could sign in as it again.
ALTER TABLE users ALTER COLUMN email DROP NOT NULL;
ALTER TABLE users ADD COLUMN anonymous boolean NOT NULL DEFAULT false;
ALTER TABLE users ADD CONSTRAINT users_email_or_guest CHECK (anonymous OR email IS NOT NULL);
CREATE INDEX users_guests_idx ON users (created) WHERE anonymous;
