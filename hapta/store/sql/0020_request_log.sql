-- The request log (hapta/admin/requests.py, docs/dashboard.md "Logs"): one row per request a gateway process
-- answered, written in batches (COPY) from a bounded buffer and pruned to App.request_log.retention. What a
-- request named, never what it carried: no args, bodies, filters, tokens or passwords.
CREATE TABLE hapta.request_log (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,   -- the keyset of admin.logs {before}
  at double precision NOT NULL,                         -- when the reply was ready, unix seconds (written as the
                                                        -- gateway's clock gives it: no conversion per row)
  op text NOT NULL,                                     -- the op, or "unknown" for a name the gateway does not serve
  collection text,                                      -- the collection the args named, if any
  principal text NOT NULL,                              -- who asked (Principal.label: an admin's name, a user id, a role)
  role text NOT NULL,
  address text,                                         -- the client's address
  code text NOT NULL,                                   -- OK or the error code
  duration_ms real NOT NULL,
  pos bigint                                            -- the change feed position the reply carried, if any
);
CREATE INDEX request_log_at_idx ON hapta.request_log (at);
