"""to_sql(): the exact SQL shapes, parameter numbering and casts."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from hapta.query import compile_rule, parse, to_sql
from hapta.query.schema import Field, Schema, Table
from hapta.query.sql import quote

from query_testdata import COMMENTS, POSTS, SCHEMA, UUID1

CONTAINS = "('%' || replace(replace(replace(lower({}), '\\', '\\\\'), '%', '\\%'), '_', '\\_') || '%')"
VARS = {"user.id": "u1", "user.role": "admin", "now": datetime(2024, 1, 1, tzinfo=timezone.utc)}


def sql(text: str, table: Table = POSTS, params: list | None = None, variables=VARS) -> tuple[str, list]:
    params = [] if params is None else params
    return to_sql(compile_rule(text, table, SCHEMA), table, SCHEMA, variables, params), params


@pytest.mark.parametrize(
    ("text", "expected_sql", "expected_params"),
    [
        ("score = 1", '("posts"."score" = $1::int8)', [1]),
        ("score != 1", '("posts"."score" <> $1::int8)', [1]),
        ("score >= 1.5", '("posts"."score"::float8 >= $1::float8)', [1.5]),
        ("rating < 2", '("posts"."rating" < $1::float8)', [2.0]),
        ("text = null", '("posts"."text" IS NULL)', []),
        ("null != text", '("posts"."text" IS NOT NULL)', []),
        ("meta = null", '("posts"."meta" IS NULL)', []),
        # `~` as LIKE, which a pg_trgm index on lower(text) serves: the value lower-cased and escaped in SQL
        ('text ~ "a"', '(lower("posts"."text") LIKE ' + CONTAINS.format("$1::text") + ')', ["a"]),
        ('text !~ "a"', '(lower("posts"."text") NOT LIKE ' + CONTAINS.format("$1::text") + ')', ["a"]),
        ('ref ~ "a"', '(lower("posts"."ref"::text) LIKE ' + CONTAINS.format("$1::text") + ')', ["a"]),
        # `@@` as the expression of a GIN index on to_tsvector('english', text): the configuration a constant
        ('text @@ "cats dogs"', """(to_tsvector('english'::regconfig, "posts"."text") @@ """
                                """websearch_to_tsquery('english'::regconfig, $1::text))""", ["cats dogs"]),
        ('text < "b"', '("posts"."text" COLLATE "C" < $1::text)', ["b"]),
        ("score in [1, 2]", '("posts"."score" = ANY($1::int8[]))', [[1, 2]]),
        ('text in ["a", null]', '("posts"."text" = ANY($1::text[]))', [["a", None]]),
        ("public in [true]", '("posts"."public" = ANY($1::bool[]))', [[True]]),
        (f'ref in ["{UUID1}"]', '("posts"."ref" = ANY($1::uuid[]))', [[UUID1]]),
        ('created in ["2024-01-01"]', '("posts"."created" = ANY($1::timestamptz[]))',
         [[datetime(2024, 1, 1, tzinfo=timezone.utc)]]),
        ("rating in [1]", '("posts"."rating" = ANY($1::float8[]))', [[1.0]]),
        ("author = @user.id", '("posts"."author" = $1::text)', ["u1"]),
        ("ref = @user.id", '("posts"."ref"::text = $1::text)', ["u1"]),
        ("created < @now", '("posts"."created" < $1::timestamptz)', [VARS["now"]]),
        ("@user.role = \"admin\"", "($1::text = $2::text)", ["admin", "admin"]),
        ("@user.id = null", "($1::text IS NULL)", ["u1"]),
        ("null = null", "(NULL IS NULL)", []),
        ("1 < 2.5", "($1::float8 < $2::float8)", [1.0, 2.5]),
        ("public = true && !(score = 1) || text = \"x\"",
         '((("posts"."public" = $1::bool) AND (NOT ("posts"."score" = $2::int8))) OR ("posts"."text" = $3::text))',
         [True, 1, "x"]),
    ],
)
def test_sql_shapes(text, expected_sql, expected_params):
    assert sql(text) == (expected_sql, expected_params)


def test_relation_paths_become_scalar_subqueries():
    text, params = sql("post.author = @user.id", COMMENTS)
    assert text == (
        '((SELECT "r_post"."author" FROM "posts" AS "r_post" WHERE "r_post"."id" = "comments"."post") = $1::text)'
    )
    assert params == ["u1"]


def test_guarded_columns_compile_to_case_with_the_guard_on_the_right_table():
    text, params = sql('secret = "x"')
    assert text == (
        '((CASE WHEN (("posts"."author" = $1::text) OR ("posts"."public" = $2::bool)) THEN "posts"."secret" END)'
        " = $3::text)"
    )
    assert params == ["u1", True, "x"]
    text, params = sql("post.secret = null", COMMENTS)
    assert text == (
        '((SELECT (CASE WHEN (("r_post"."author" = $1::text) OR ("r_post"."public" = $2::bool))'
        ' THEN "r_post"."secret" END) FROM "posts" AS "r_post" WHERE "r_post"."id" = "comments"."post") IS NULL)'
    )


def test_params_are_numbered_after_prefilled_ones():
    text, params = sql("score = 1 && author = @user.id", params=["mine", "also mine"])
    assert text == '(("posts"."score" = $3::int8) AND ("posts"."author" = $4::text))'
    assert params == ["mine", "also mine", 1, "u1"]


def test_variables_are_params_even_when_null_or_missing():
    assert sql("author = @user.id", variables={}) == ('("posts"."author" = $1::text)', [None])
    assert sql("author = @user.id", variables={"user.id": 42}) == ('("posts"."author" = $1::text)', ["42"])


def test_alias_does_not_shadow_a_table_named_like_it():
    r_post = Table("r_post", {"id": Field("id", "text"), "post": Field("post", "text", relation="r_post")})
    schema = Schema({"r_post": r_post})
    node = compile_rule("post.id = null", r_post, schema)
    assert to_sql(node, r_post, schema, {}, []) == (
        '((SELECT "r_post_"."id" FROM "r_post" AS "r_post_" WHERE "r_post_"."id" = "r_post"."post") IS NULL)'
    )


@pytest.mark.parametrize("name", ['a"b', "A", "a b", "a;b", "", "1a", "a\n", "é"])
def test_quote_refuses_unsafe_identifiers(name):
    with pytest.raises(ValueError):
        quote(name)


def test_schema_names_are_checked_before_use():
    """Even a schema built from a hostile database catalogue cannot put odd identifiers into SQL."""
    node = compile_rule('x = "1"', Table("posts", {"x": Field("x", "text")}), SCHEMA)
    bad_column = Table("posts", {"x": Field('x"; DROP TABLE posts; --', "text")})
    with pytest.raises(ValueError, match="refusing"):
        to_sql(node, bad_column, Schema({"posts": bad_column}), {}, [])
    bad_table = Table('posts"; --', {"x": Field("x", "text")})
    with pytest.raises(ValueError, match="refusing"):
        to_sql(node, bad_table, Schema({}), {}, [])


def test_unbound_trees_are_refused():
    with pytest.raises(ValueError, match="bind"):
        to_sql(parse("score = 1"), POSTS, SCHEMA, {}, [])
