-- The files tests' extra field: attachments of any type on a post.
ALTER TABLE posts ADD COLUMN attachments jsonb NOT NULL DEFAULT '[]';
