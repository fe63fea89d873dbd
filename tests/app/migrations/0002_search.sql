-- Searching posts (docs/performance.md). Each index is on exactly the expression the gateway's SQL uses:
--   text @@ "words"   (config.py: Collection("posts", search={"text": "english"}))
--                     -> to_tsvector('english', text) @@ websearch_to_tsquery('english', $1)
--   text ~ "words"    -> lower(text) LIKE '%words%', which pg_trgm's trigram index serves
-- pg_trgm is a trusted extension (PostgreSQL 13+): the database's owner may create it, no superuser needed.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE INDEX posts_text_search_idx ON posts USING gin (to_tsvector('english', text));
CREATE INDEX posts_text_trgm_idx ON posts USING gin (lower(text) gin_trgm_ops);
