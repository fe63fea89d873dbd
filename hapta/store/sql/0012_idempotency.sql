-- Idempotent writes (hapta/records/idempotency.py): the first answer to a write sent with an idempotency_key,
-- kept for 24 hours so that a retry of the same request gets it again instead of writing twice.
--
-- A row is claimed (reply NULL) in the write's own transaction before anything is written and filled in with the
-- answer just before COMMIT: the row and the write commit together or not at all. A second request with the same
-- key waits on the primary key until the first ends, then finds the answer (or, if the first rolled back, claims
-- the key itself). owner is 'user:<id>' or 'admin' (anon principals may not send keys); request_hash tells a
-- retry from another request reusing the key. Rows older than 24 hours are ignored (a claim takes them over) and
-- deleted by the gateway's periodic sweep.
CREATE TABLE hapta.idempotency (
  owner        text NOT NULL,
  key          text NOT NULL,
  op           text NOT NULL,
  request_hash bytea NOT NULL,
  reply        bytea,
  created      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (owner, key)
);
CREATE INDEX idempotency_created ON hapta.idempotency (created);
