-- Uploads that can be resumed (files.upload {resume}): the unclaimed row of an upload in progress says whose it is,
-- what it is for and whether a connection is receiving it (`held`); when its socket drops, the row keeps what the
-- storage kept (`stored` bytes, and for S3 the multipart upload's parts) for files.resume_timeout, after which the
-- sweeper removes the partial object as it removes any unclaimed one.
ALTER TABLE hapta.unclaimed_files ADD COLUMN resume jsonb;
CREATE UNIQUE INDEX unclaimed_files_resume_idx ON hapta.unclaimed_files ((resume ->> 'id'))
  WHERE resume IS NOT NULL;
CREATE INDEX unclaimed_files_resume_owner_idx ON hapta.unclaimed_files ((resume ->> 'owner'))
  WHERE resume IS NOT NULL;
