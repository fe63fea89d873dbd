-- Rolling sessions: each spent refresh token keeps its successor sealed under itself (see hapta/auth/tokens.py),
-- so a racing tab that presents the spent token within the reuse interval gets the family's current token.
ALTER TABLE hapta.refresh_tokens ADD COLUMN sealed_next bytea;

-- OAuth2 logins in flight: the state the browser carries, the PKCE verifier, and which socket waits for the
-- outcome (the process's bus address and the connection's number there). Single use, 10 minutes.
CREATE TABLE hapta.oauth_states (
  state_hash text PRIMARY KEY,              -- sha256 of the state; the state itself is never stored
  provider   text NOT NULL,
  verifier   text NOT NULL,                 -- PKCE code_verifier (useless without the authorization code)
  waiter     text NOT NULL,                 -- "<process id>:<connection number>" of the socket that asked
  expires_at timestamptz NOT NULL
);

-- A user's accounts at OAuth2 providers.
CREATE TABLE hapta.identities (
  provider text NOT NULL,
  subject  text NOT NULL,                   -- the provider's stable user id
  user_id  text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  created  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (provider, subject)
);
CREATE INDEX identities_user_idx ON hapta.identities (user_id);
