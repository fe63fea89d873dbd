-- Objects in file storage that no record refers to: uploads in progress (their lease in the future, renewed while
-- the upload lives) and objects a record let go of (lease now). Finishing an upload deletes its row in the same
-- transaction that writes the file into the record; the sweeper removes the objects of rows whose lease ran out,
-- so a crash, a lost socket or a storage outage leaves nothing behind for longer than a lease.
CREATE TABLE hapta.unclaimed_files (
  key         text PRIMARY KEY,
  lease_until timestamptz NOT NULL DEFAULT now(),
  created     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX unclaimed_files_lease_idx ON hapta.unclaimed_files (lease_until);

-- AFTER UPDATE OF <file fields> OR DELETE on a collection with file fields (the gateway installs it, naming the
-- fields as arguments): every file a row held and holds no more becomes unclaimed, in the same transaction, whoever
-- writes (a files.* op, records.delete, a cascade, plain SQL). NOTIFY wakes the sweepers after commit.
CREATE OR REPLACE FUNCTION hapta.release_files() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  field text;
  before jsonb;
  after jsonb;
  released bigint := 0;
  n bigint;
BEGIN
  FOREACH field IN ARRAY TG_ARGV LOOP
    before := to_jsonb(OLD) -> field;
    after := CASE WHEN TG_OP = 'UPDATE' THEN to_jsonb(NEW) -> field END;
    IF jsonb_typeof(before) IS DISTINCT FROM 'array' THEN
      CONTINUE;
    END IF;
    IF jsonb_typeof(after) IS DISTINCT FROM 'array' THEN
      after := '[]';
    END IF;
    INSERT INTO hapta.unclaimed_files (key)
      SELECT DISTINCT f ->> 'key' FROM jsonb_array_elements(before) AS f
      WHERE jsonb_typeof(f) = 'object' AND f ->> 'key' IS NOT NULL
        AND NOT after @> jsonb_build_array(jsonb_build_object('key', f ->> 'key'))
      ON CONFLICT (key) DO UPDATE SET lease_until = now();
    GET DIAGNOSTICS n = ROW_COUNT;
    released := released + n;
  END LOOP;
  IF released > 0 THEN
    PERFORM pg_notify('hapta_files', '');
  END IF;
  RETURN NULL;
END
$$;
