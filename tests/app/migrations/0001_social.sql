-- The demo social app. Every exposed table has id, created, updated and version; the gateway keeps the last
-- three current on update (hapta.touch) and learns everything else from these definitions.

CREATE TABLE posts (
  id      text PRIMARY KEY DEFAULT hapta.new_id(),
  author  text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  text    text NOT NULL CHECK (length(text) <= 10000),
  public  boolean NOT NULL DEFAULT false,
  media   jsonb NOT NULL DEFAULT '[]',
  likes   bigint NOT NULL DEFAULT 0,
  created timestamptz NOT NULL DEFAULT now(),
  updated timestamptz NOT NULL DEFAULT now(),
  version bigint NOT NULL DEFAULT 1
);
CREATE INDEX posts_feed_idx ON posts (created DESC, id);
CREATE INDEX posts_author_idx ON posts (author, created DESC);

CREATE TABLE comments (
  id      text PRIMARY KEY DEFAULT hapta.new_id(),
  post    text NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
  author  text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  text    text NOT NULL CHECK (length(text) BETWEEN 1 AND 2000),
  created timestamptz NOT NULL DEFAULT now(),
  updated timestamptz NOT NULL DEFAULT now(),
  version bigint NOT NULL DEFAULT 1
);
CREATE INDEX comments_post_idx ON comments (post, created);

CREATE TABLE likes (
  id      text PRIMARY KEY DEFAULT hapta.new_id(),
  post    text NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
  "user"  text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  created timestamptz NOT NULL DEFAULT now(),
  updated timestamptz NOT NULL DEFAULT now(),
  version bigint NOT NULL DEFAULT 1,
  UNIQUE (post, "user")
);

CREATE TABLE messages (
  id        text PRIMARY KEY DEFAULT hapta.new_id(),
  sender    text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  recipient text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  text      text NOT NULL CHECK (length(text) BETWEEN 1 AND 5000),
  created   timestamptz NOT NULL DEFAULT now(),
  updated   timestamptz NOT NULL DEFAULT now(),
  version   bigint NOT NULL DEFAULT 1
);
CREATE INDEX messages_pair_idx ON messages (sender, recipient, created);
