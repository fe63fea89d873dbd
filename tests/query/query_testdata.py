"""Test data for the filter language: a schema, and rows for the same tables in PostgreSQL.

A plain module (not conftest) so test modules can import it; pytest puts this directory on sys.path.
"""
from __future__ import annotations

import math
import uuid
from datetime import datetime, timezone

from hapta.query import bind, bind_guards, parse
from hapta.query.schema import Field, Schema, Table

UUID1 = uuid.UUID("0a1b2c3d-4e5f-4a6b-8c7d-9e0fabcdef01")
UUID2 = uuid.UUID("ffffffff-0000-4000-8000-000000000abc")


def _table(name: str, *fields: Field) -> Table:
    return Table(name, {field.name: field for field in fields})


# posts.internal exists in the database but is hidden, so it is absent here.
SCHEMA = bind_guards(Schema({
    "users": _table(
        "users",
        Field("id", "text", nullable=False),
        Field("name", "text"),
        Field("email", "text", guard=parse("id = @user.id")),
    ),
    "posts": _table(
        "posts",
        Field("id", "text", nullable=False),
        Field("author", "text", relation="users"),
        Field("text", "text", search="english"),
        Field("public", "bool"),
        Field("score", "int"),
        Field("rating", "float"),
        Field("created", "timestamp"),
        Field("meta", "json"),
        Field("ref", "uuid"),
        Field("secret", "text", guard=parse("author = @user.id || public = true")),
    ),
    "comments": _table(
        "comments",
        Field("id", "text", nullable=False),
        Field("post", "text", relation="posts"),
        Field("author", "text", relation="users"),
        Field("text", "text"),
    ),
}))
POSTS, COMMENTS, USERS = SCHEMA.tables["posts"], SCHEMA.tables["comments"], SCHEMA.tables["users"]

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(timezone.utc)


CREATE_TABLES = """
CREATE TABLE users (id text PRIMARY KEY, name text, email text);
CREATE TABLE posts (
    id text PRIMARY KEY, author text, text text, public bool, score int8, rating float8,
    created timestamptz, meta jsonb, ref uuid, secret text, internal text
);
CREATE TABLE comments (id text PRIMARY KEY, post text, author text, text text);
"""

USER_ROWS = [
    ("alice", "Alice", "alice@example.com"),
    ("bob", "Bob", "bob@example.com"),
    ("carol", "Carol", None),
    ("dave", "Ünïcödé Dave", "dave@example.com"),
]

# id, author, text, public, score, rating, created, meta, ref, secret, internal
POST_ROWS = [
    ("p1", "alice", "Hello World", True, 10, 4.5, ts("2024-01-01T10:00:00+00:00"), '{"a": 1}', UUID1, "s1", "x"),
    ("p2", "bob", "hello again", False, 5, 3.0, ts("2024-02-01T00:00:00+00:00"), None, None, "bob secret", "x"),
    ("p3", "alice", "Ünïcödé café", None, None, math.nan, ts("2023-12-31T23:59:59.999999+00:00"), "null", UUID2, None, None),
    ("p4", None, 'quote " and \\ backslash', True, -3, -0.0, None, "[]", None, "p4 secret", None),
    ("p5", "carol", "", True, 0, 1e300, ts("2024-05-31T23:00:00-02:00"), '{"b": null}', None, "", None),
    ("p6", "bob", None, False, 2**63 - 1, 0.1, ts("2030-01-01T00:00:00+00:00"), None, None, None, None),
    ("p7", "alice", "it's; DROP TABLE posts; --", True, 7, 7.0, ts("2024-01-01T10:00:00+00:00"), None, None, "s7", None),
    ("p8", "dave", "ÉCOLE", False, 100, None, ts("1999-12-31T23:59:59+00:00"), None, UUID1, "dave's", None),
    ("p9", "carol", "RTL \u202e text", None, 42, 2.5, None, None, None, None, None),
    ("p10", "bob", "multi\nline /* c */", True, -(2**63), -1e-300, ts("2024-06-01T12:00:00+00:00"), None, None, "s10", None),
    ("p11", "alice", "Zebra", False, 3, 3.5, ts("2024-06-01T12:00:00.000001+00:00"), None, None, "zz", None),
    ("p12", None, None, None, None, None, None, None, None, None, None),
    # LIKE's wildcards and escape character, which `~` must read as themselves
    ("p13", None, "100% off_sale \\ a\\%b a_b", None, None, None, None, None, None, None, None),
]

COMMENT_ROWS = [
    ("c1", "p1", "alice", "nice"),
    ("c2", "p2", "bob", "Me too"),
    ("c3", "p3", "carol", None),
    ("c4", "p-missing", "alice", "orphan"),
    ("c5", None, "bob", "no post"),
    ("c6", "p1", None, "anon"),
    ("c7", "p12", "dave", "on the empty post"),
    ("c8", "p7", "alice", "Ünïcödé"),
    ("c9", "p6", "ghost", "author without a user row"),
]

# The schema clients' filters are bound against (hapta.models.reader_schema): through a relation only what the
# related record's view rule shows. Posts are public or their author's; users are seen by the signed-in.
READER = Schema(SCHEMA.tables, views={
    "posts": bind(parse("public = true || author = @user.id"), POSTS, SCHEMA),
    "users": bind(parse("@user.id != null"), USERS, SCHEMA),
})
