-- Uploads finished without a record (files.upload with no id): the object waits under its unclaimed row, which
-- says who uploaded it, for which field, and the token records.create names it by. Its lease is the upload's
-- idle time (file_idle_timeout): a create that names the token deletes the row in its own transaction; an
-- unused or refused upload is swept when the lease runs out, as any unclaimed object is.
ALTER TABLE hapta.unclaimed_files ADD COLUMN upload jsonb;
CREATE UNIQUE INDEX unclaimed_files_token_idx ON hapta.unclaimed_files ((upload ->> 'token'))
  WHERE upload IS NOT NULL;
