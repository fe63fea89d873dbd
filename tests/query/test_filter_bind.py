"""bind(): field resolution against the schema and coercion of literals to the compared kind."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from hapta.query import FilterError, bind, bind_guards, compile_rule, fields_used, parse, relations_used, vars_used
from hapta.query.ast import Compare, Field, Literal
from hapta.query.schema import Field as SchemaField, Schema, Table

from query_testdata import COMMENTS, POSTS, SCHEMA, UUID1


def bound(text: str, table: Table = POSTS):
    return compile_rule(text, table, SCHEMA)


def bind_error(text: str, table: Table = POSTS) -> str:
    with pytest.raises(FilterError) as error:
        bound(text, table)
    return error.value.message


def test_empty_rule_means_no_condition():
    assert compile_rule("", POSTS, SCHEMA) is None
    assert compile_rule(" \t\n", POSTS, SCHEMA) is None
    with pytest.raises(FilterError):
        compile_rule("\u3000", POSTS, SCHEMA)  # not whitespace to the lexer, so not "no rule" either


@pytest.mark.parametrize(
    ("text", "table", "message"),
    [
        ("nope = 1", POSTS, "unknown field 'nope'"),
        ("internal = \"x\"", POSTS, "unknown field 'internal'"),  # hidden: in the database, not the schema
        ("Author = \"x\"", POSTS, "unknown field 'Author'"),
        ("TRUE = true", POSTS, "unknown field 'TRUE'"),
        ("score.id = 1", POSTS, "field 'score' is not a relation, so 'score.id' is not allowed"),
        ("author.nope = 1", POSTS, "unknown field 'author.nope'"),
        ("post.internal = \"x\"", COMMENTS, "unknown field 'post.internal'"),
        ("nope.id = 1", COMMENTS, "unknown field 'nope'"),
        ("post.author = @user.id && x = 1", COMMENTS, "unknown field 'x'"),
    ],
)
def test_field_resolution_errors(text, table, message):
    assert bind_error(text, table) == message


def test_three_part_paths_are_rejected_even_when_built_by_hand():
    node = Compare(Field(("post", "author", "id")), "=", Literal("x"))
    with pytest.raises(FilterError, match="more than one relation"):
        bind(node, COMMENTS, SCHEMA)


def test_missing_relation_target_table_is_not_a_relation():
    table = Table("t", {"other": SchemaField("other", "text", relation="missing")})
    with pytest.raises(FilterError, match="'other' is not a relation"):
        bind(parse("other.id = 1"), table, Schema({"t": table}))


def test_guarded_field_through_relation_needs_a_relation_free_guard():
    users = Table("users", {"id": SchemaField("id", "text"), "org": SchemaField("org", "text", relation="orgs"),
                            "email": SchemaField("email", "text", guard=parse("org.id = @user.id"))})
    orgs = Table("orgs", {"id": SchemaField("id", "text")})
    posts = Table("posts", {"author": SchemaField("author", "text", relation="users")})
    schema = Schema({"users": users, "orgs": orgs, "posts": posts})
    with pytest.raises(FilterError, match="^field 'author.email' cannot be used through a relation$"):
        bind(parse('author.email = "x"'), posts, schema)


def test_a_guarded_relation_cannot_be_followed():
    users = Table("users", {"id": SchemaField("id", "text"), "name": SchemaField("name", "text")})
    posts = Table("posts", {"author": SchemaField("author", "text", relation="users", guard=parse("author = @user.id"))})
    schema = bind_guards(Schema({"users": users, "posts": posts}))
    assert bind(parse("author = @user.id"), schema.tables["posts"], schema).kind == "text"
    with pytest.raises(FilterError, match="^field 'author.name' cannot be used through a relation$"):
        bind(parse('author.name = "x"'), schema.tables["posts"], schema)


def _reader(views: dict) -> tuple[Table, Schema]:
    users = Table("users", {"id": SchemaField("id", "text"), "name": SchemaField("name", "text"),
                            "org": SchemaField("org", "text", relation="orgs")})
    orgs = Table("orgs", {"id": SchemaField("id", "text"), "open": SchemaField("open", "bool")})
    posts = Table("posts", {"author": SchemaField("author", "text", relation="users"),
                            "org": SchemaField("org", "text", relation="orgs")})
    plain = Schema({"users": users, "orgs": orgs, "posts": posts})
    bound_views = {name: None if text is None else bind(parse(text), plain.tables[name], plain)
                   for name, text in views.items()}
    return posts, Schema(plain.tables, bound_views)


def test_a_readers_relation_step_carries_the_related_view_rule():
    posts, schema = _reader({"users": "id = @user.id", "orgs": None})
    node = bind(parse('author.name = "x"'), posts, schema)
    assert node.left.view == bind(parse("id = @user.id"), schema.tables["users"], Schema(schema.tables))
    assert bind(parse("org.open = true"), posts, schema).left.view is None   # "" (anyone past the guest stage)
    assert bind(parse('author = "x"'), posts, schema).left.view is None      # not a relation step
    # the variables and fields the step reads are the filter's own, for cache keys and realtime groups
    assert vars_used(node) == {"user.id"} and fields_used(node) == {("author", "name"), ("author", "id")}


def test_a_collection_the_reader_may_not_view_cannot_be_followed():
    posts, schema = _reader({"orgs": None})   # users: admins only
    with pytest.raises(FilterError, match="^field 'author.name' cannot be used through a relation: users is not "
                                          "readable here$"):
        bind(parse('author.name = "x"'), posts, schema)


def test_a_view_rule_that_reads_relations_cannot_be_followed():
    posts, schema = _reader({"users": "org.open = true", "orgs": None})
    with pytest.raises(FilterError, match="^field 'author.name' cannot be used through a relation$"):
        bind(parse('author.name = "x"'), posts, schema)


def test_without_views_relations_are_followed_as_written():
    posts, schema = _reader({})
    assert bind(parse('author.name = "x"'), posts, Schema(schema.tables)).left.view is None


def literal_of(text: str, table: Table = POSTS):
    node = bound(text, table)
    return node.right


@pytest.mark.parametrize(
    ("text", "value", "kind"),
    [
        ('text = "x"', "x", "text"),
        ("score = 12", 12, "int"),
        ("score = 1.5", 1.5, "float"),
        ("rating = 2", 2.0, "float"),
        ("public = true", True, "bool"),
        ("public = null", None, "bool"),
        ('created > "2024-01-02T03:04:05Z"', datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc), "timestamp"),
        ('created > "2024-01-02T03:04:05"', datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc), "timestamp"),
        ('created > "2024-01-02"', datetime(2024, 1, 2, tzinfo=timezone.utc), "timestamp"),
        ('created > "2024-01-02T03:04:05.123456+02:00"',
         datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=timezone(timedelta(hours=2))), "timestamp"),
        (f'ref = "{UUID1}"', UUID1, "uuid"),
        (f'ref = "{str(UUID1).upper()}"', UUID1, "uuid"),
        ('ref ~ "abc"', "abc", "text"),
        ("meta = null", None, "json"),
        ("score in [1, 2]", (1, 2), "int"),
        ("score in [1, 2.5, null]", (1.0, 2.5, None), "float"),
        ('created in ["2024-01-02"]', (datetime(2024, 1, 2, tzinfo=timezone.utc),), "timestamp"),
        (f'ref in ["{UUID1}"]', (UUID1,), "uuid"),
        ("score in []", (), "int"),
    ],
)
def test_literals_are_coerced_to_the_field_kind(text, value, kind):
    literal = literal_of(text)
    assert literal.value == value and literal.kind == kind
    assert [type(v) for v in _as_tuple(literal.value)] == [type(v) for v in _as_tuple(value)]
    assert bound(text).kind == kind


def _as_tuple(value):
    return value if isinstance(value, tuple) else (value,)


def test_coercion_works_with_the_literal_on_the_left():
    node = bound('"2024-01-02" < created')
    assert node.left == Literal(datetime(2024, 1, 2, tzinfo=timezone.utc), "timestamp")
    assert bound("2 = rating").left == Literal(2.0, "float")


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ('@now > "2024-01-01"', "timestamp"),
        ('@user.id = "x"', "text"),
        ("@user.role = null", "text"),
        ('"a" = "b"', "text"),
        ("1 < 2", "int"),
        ("1 < 2.5", "float"),
        ("null = null", "text"),
        ("rating > score", "float"),
        ("ref = @user.id", "text"),
        ("ref = text", "text"),
        ("created < @now", "timestamp"),
    ],
)
def test_comparison_kinds(text, kind):
    assert bound(text).kind == kind


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('score = "12"', "cannot compare field 'score' (int) with a string"),
        ('"12" = score', "cannot compare a string with field 'score' (int)"),
        ("text = 12", "cannot compare field 'text' (text) with an integer"),
        ('rating > "1.5"', "cannot compare field 'rating' (float) with a string"),
        ('public = "true"', "cannot compare field 'public' (bool) with a string"),
        ("public = 1", "cannot compare field 'public' (bool) with an integer"),
        ("public = score", "cannot compare field 'public' (bool) with field 'score' (int)"),
        ("created > 1700000000", "cannot compare field 'created' (timestamp) with an integer"),
        ('created > "yesterday"', 'invalid timestamp; use ISO-8601, e.g. "2024-05-01T12:00:00Z"'),
        ('created > ""', 'invalid timestamp; use ISO-8601, e.g. "2024-05-01T12:00:00Z"'),
        ('created in ["2024-01-01", "soon"]', 'invalid timestamp; use ISO-8601, e.g. "2024-05-01T12:00:00Z"'),
        ('ref = "not-a-uuid"', "invalid uuid value"),
        ("ref = 1", "cannot compare field 'ref' (uuid) with an integer"),
        ("@user.id = 1", "cannot compare @user.id (text) with an integer"),
        ("@now = @user.id", "cannot compare @now (timestamp) with @user.id (text)"),
        ('1 = "1"', "cannot compare an integer with a string"),
        ('meta = "{}"', "cannot compare field 'meta' (json) with a string"),
        ("meta = meta", "field 'meta' (json) can only be compared with '= null' or '!= null'"),
        ("meta in []", "field 'meta' (json) can only be compared with '= null' or '!= null'"),
        ("meta in [1]", "cannot compare field 'meta' (json) with an integer"),
        ('meta ~ "a"', "'~' needs text on both sides, not field 'meta' (json) and a string"),
        ('score ~ "1"', "'~' needs text on both sides, not field 'score' (int) and a string"),
        ("text ~ 1", "'~' needs text on both sides, not field 'text' (text) and an integer"),
        ('created !~ "2024"', "'!~' needs text on both sides, not field 'created' (timestamp) and a string"),
        ("text ~ null", "null can only be compared with '=' or '!=', not '~'"),
        ("score > null", "null can only be compared with '=' or '!=', not '>'"),
        ("public > false", "'>' cannot compare bool values"),
        ("public <= public", "'<=' cannot compare bool values"),
        ('score in [1, "2"]', "cannot compare field 'score' (int) with a string"),
        ("text in [1]", "cannot compare field 'text' (text) with an integer"),
        ("public in [1]", "cannot compare field 'public' (bool) with an integer"),
        ("score in text", "'in' needs a list on the right; field 'text' is not a list"),
        ("null in [1]", "'in' cannot test null; use '= null'"),
    ],
)
def test_type_errors(text, message):
    assert bind_error(text) == message


def test_bind_attaches_kinds_and_guards():
    node = bound("secret = null && author.email = null")
    secret, email = node.items[0].left, node.items[1].left
    assert secret.kind == "text" and secret.guard == POSTS.fields["secret"].guard
    assert email.path == ("author", "email") and email.guard == SCHEMA.tables["users"].fields["email"].guard
    assert secret.guard.items[0].kind == "text"  # guards in the test schema were bound by bind_guards()


def test_bind_returns_a_new_tree_and_leaves_the_cached_parse_alone():
    before = parse("score = 1.0")
    bound("score = 1.0")
    assert before.left.kind is None and before.kind is None


def test_usage_helpers_include_what_guards_read():
    node = bound("secret ~ \"x\" && author.email = null && score > 1")
    assert fields_used(node) == {
        ("secret",), ("author",), ("public",),  # secret's guard: author = @user.id || public = true
        ("author", "email"), ("author", "id"),  # email's guard (id = @user.id), read on the related user
        ("score",),
    }
    assert relations_used(node) == {"author"}
    assert vars_used(node) == {"user.id"}
    assert vars_used(bound("created < @now || @user.role = \"x\"")) == {"now", "user.role"}
    assert relations_used(bound("post.author = author", COMMENTS)) == {"post"}
    assert relations_used(bound("author = \"x\"")) == set()
