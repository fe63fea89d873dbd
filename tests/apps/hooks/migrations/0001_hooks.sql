-- Tables of the rules tests' app (tests/apps/hooks/config.py).

CREATE TABLE items (
  id      text PRIMARY KEY DEFAULT hapta.new_id(),
  action  text NOT NULL DEFAULT '',
  text    text NOT NULL DEFAULT '',
  tag     text,
  due     timestamptz,
  created timestamptz NOT NULL DEFAULT now(),
  updated timestamptz NOT NULL DEFAULT now(),
  version bigint NOT NULL DEFAULT 1
);

CREATE TABLE counted (
  id      text PRIMARY KEY DEFAULT hapta.new_id(),
  text    text NOT NULL DEFAULT '',
  created timestamptz NOT NULL DEFAULT now(),
  updated timestamptz NOT NULL DEFAULT now(),
  version bigint NOT NULL DEFAULT 1
);

CREATE TABLE plain (
  id      text PRIMARY KEY DEFAULT hapta.new_id(),
  text    text NOT NULL DEFAULT '',
  created timestamptz NOT NULL DEFAULT now(),
  updated timestamptz NOT NULL DEFAULT now(),
  version bigint NOT NULL DEFAULT 1
);

CREATE TABLE tallies (
  id      text PRIMARY KEY,
  n       bigint NOT NULL DEFAULT 0,
  created timestamptz NOT NULL DEFAULT now(),
  updated timestamptz NOT NULL DEFAULT now(),
  version bigint NOT NULL DEFAULT 1
);
