-- Searching posts (docs/performance.md). Each index is on exactly the expression the gateway's SQL uses:
--   text @@ "words"   (config.py: Collection("posts", search={"text": "english"}))
--                     -> to_tsvector('english', text) @@ websearch_to_tsquery('english', $1)
--   text ~ "words"    -> lower(text) LIKE '%words%', which pg_trgm's trigram index serves
CREATE INDEX posts_text_search_idx ON posts USING gin (to_tsvector('english', text));

-- pg_trgm is a trusted extension (PostgreSQL 13+): the database's owner may create it, no superuser needed. It is
-- contrib, though, which not every server ships (the embedded one hapta starts without DATABASE_URL lacks it):
-- without it `~` answers the same, by a scan.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    CREATE INDEX posts_text_trgm_idx ON posts USING gin (lower(text) gin_trgm_ops);
  END IF;
END
$$;
