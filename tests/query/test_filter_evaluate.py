"""evaluate(): SQL three-valued logic in Python, and the value semantics it shares with PostgreSQL."""
from __future__ import annotations

import itertools
import math
import uuid
from datetime import datetime, timezone

import pytest

from hapta.query import bind, bind_guards, compile_rule, evaluate, parse
from hapta.query.ast import Not
from hapta.query.schema import Field, Schema, Table

T = Table("t", {name: Field(name, kind) for name, kind in [
    ("a", "bool"), ("b", "bool"), ("n", "int"), ("f", "float"), ("s", "text"), ("ts", "timestamp"),
    ("u", "uuid"), ("j", "json"),
]})
SCHEMA = Schema({"t": T})
NOW = datetime(2024, 1, 1, tzinfo=timezone.utc)
VARS = {"user.id": "me", "user.role": "admin", "now": NOW}


def tri(text: str, record: dict, variables: dict = VARS, related: dict | None = None):
    """The three-valued result: True, False, or None when neither the filter nor its negation holds."""
    node = compile_rule(text, T, SCHEMA)
    related = related or {}
    if evaluate(node, record, variables, related):
        return True
    return False if evaluate(Not(node), record, variables, related) else None


def record(**values) -> dict:
    return {name: values.get(name) for name in T.fields}


TRUTH_VALUES = [True, False, None]


@pytest.mark.parametrize(("x", "y"), list(itertools.product(TRUTH_VALUES, TRUTH_VALUES)))
def test_and_or_not_follow_sql(x, y):
    """`a = true` is true, false or unknown exactly when a is true, false or null."""
    rec = record(a=x, b=y)
    expected_and = False if False in (x, y) else (None if None in (x, y) else True)
    expected_or = True if True in (x, y) else (None if None in (x, y) else False)
    assert tri("a = true && b = true", rec) == expected_and
    assert tri("a = true || b = true", rec) == expected_or
    assert tri("!(a = true)", rec) == (None if x is None else not x)
    assert tri("!(a = true && b = true)", rec) == (None if expected_and is None else not expected_and)


def test_long_chains():
    rec = record(a=None, b=True)
    assert tri("a = true && b = true && b = false", rec) is False
    assert tri("a = true || b = false || b = false", rec) is None
    assert tri("a = true || b = false || b = true", rec) is True


@pytest.mark.parametrize("op", ["=", "!=", ">", ">=", "<", "<="])
def test_any_comparison_with_null_is_unknown(op):
    assert tri(f"n {op} 1", record(n=None)) is None
    assert tri(f"1 {op} n", record(n=None)) is None
    assert tri(f"n {op} n", record(n=None)) is None


def test_null_literal_means_is_null():
    assert tri("n = null", record(n=None)) is True
    assert tri("n != null", record(n=None)) is False
    assert tri("n = null", record(n=0)) is False
    assert tri("null != n", record(n=0)) is True
    assert tri("null = null", record()) is True


def test_a_null_variable_is_not_the_null_literal():
    anonymous = {"user.id": None}
    assert tri("s = @user.id", record(s=None), anonymous) is None  # rows without owner never match
    assert tri("s != @user.id", record(s="x"), anonymous) is None
    assert tri("@user.id = null", record(), anonymous) is True
    assert tri("@user.id = null", record(), VARS) is False
    assert tri("@now > ts", record(ts=NOW), {}) is None  # missing variables read as null


def test_contains_is_case_insensitive_and_null_aware():
    rec = record(s="Hello Wörld")
    assert tri('s ~ "WÖR"', rec) is True
    assert tri('s !~ "WÖR"', rec) is False
    assert tri('s ~ "xyz"', rec) is False
    assert tri('s ~ ""', rec) is True
    assert tri('s ~ "x"', record(s=None)) is None
    assert tri('s !~ "x"', record(s=None)) is None
    assert tri("s ~ @user.id", rec, {"user.id": None}) is None


def test_contains_on_uuid_uses_its_text_form():
    value = uuid.UUID("0a1b2c3d-4e5f-4a6b-8c7d-9e0fabcdef01")
    assert tri('u ~ "ABCDEF"', record(u=value)) is True
    assert tri('u ~ "4e5f-4a"', record(u=str(value))) is True


@pytest.mark.parametrize(
    ("text", "n", "expected"),
    [
        ("n in [1, 2]", 1, True),
        ("n in [1, 2]", 3, False),
        ("n in [1, 2]", None, None),
        ("n in [1, null]", 1, True),
        ("n in [1, null]", 3, None),
        ("n in [null]", 3, None),
        ("n in []", 3, False),
        ("n in []", None, False),  # SQL: NULL = ANY('{}') is false, not unknown
        ("n in [1.5, 2]", 2, True),
        ("!(n in [1, null])", 3, None),
        ("!(n in [])", None, True),
    ],
)
def test_in_follows_sql_any(text, n, expected):
    assert tri(text, record(n=n)) == expected


def test_floats_order_nan_like_postgresql():
    nan = record(f=math.nan)
    assert tri("f > 1e300", nan) is True
    assert tri("f = 1", nan) is False
    assert tri("f = f", nan) is True
    assert tri("f < 0", nan) is False
    assert tri("f in [1, 2]", nan) is False
    assert tri("f = 0", record(f=-0.0)) is True


def test_int_compared_with_float_is_compared_as_float():
    assert tri("n > 1.5", record(n=2)) is True
    assert tri("n = 2.0", record(n=2)) is True
    # PostgreSQL converts int8 to float8 to compare with a float, and so must Python.
    assert tri("n = 9007199254740992.0", record(n=2**53 + 1)) is True


def test_timestamps_compare_as_instants():
    rec = record(ts=datetime(2024, 1, 1, 2, 0, tzinfo=timezone.utc))
    assert tri('ts = "2024-01-01T03:00:00+01:00"', rec) is True
    assert tri('ts < "2024-01-01T03:00:00"', rec) is True  # naive: UTC
    assert tri("ts > @now", rec) is True
    assert tri("ts > @now", record(ts="2023-12-31T00:00:00Z")) is False  # ISO strings are read too
    assert tri("ts > @now", rec, {"now": datetime(2024, 1, 1, 3)}) is False  # naive now: UTC


def test_json_is_only_null_checked():
    assert tri("j = null", record(j=None)) is True
    assert tri("j != null", record(j="null")) is True  # a JSON null is a value, as in PostgreSQL


def test_text_ordering_is_by_code_point():
    assert tri('s < "a"', record(s="Z")) is True
    assert tri('s > "z"', record(s="é")) is True


GUARDED = bind_guards(Schema({
    "users": Table("users", {
        "id": Field("id", "text"),
        "email": Field("email", "text", guard=parse("id = @user.id")),
    }),
    "posts": Table("posts", {
        "id": Field("id", "text"),
        "author": Field("author", "text", relation="users"),
        "note": Field("note", "text", guard=parse("author.id = @user.id")),
    }),
}))


def guarded_eval(text: str, table: str, rec: dict, related: dict, user: str | None) -> bool:
    node = compile_rule(text, GUARDED.tables[table], GUARDED)
    return evaluate(node, rec, {"user.id": user}, related)


def test_guarded_fields_read_as_null_unless_the_guard_holds():
    user = {"id": "u1", "email": "u1@example.com"}
    assert guarded_eval('email ~ "@"', "users", user, {}, "u1")
    assert not guarded_eval('email ~ "@"', "users", user, {}, "u2")
    assert guarded_eval("email = null", "users", user, {}, None)


def test_guards_apply_through_relations_and_may_use_relations_themselves():
    user = {"id": "u1", "email": "u1@example.com"}
    post = {"id": "p1", "author": "u1", "note": "n"}
    assert guarded_eval("author.email != null", "posts", post, {"author": user}, "u1")
    assert not guarded_eval("author.email != null", "posts", post, {"author": user}, "u2")
    assert guarded_eval('note = "n"', "posts", post, {"author": user}, "u1")
    assert not guarded_eval('note = "n"', "posts", post, {"author": None}, "u1")


def test_missing_inputs_raise_instead_of_reading_as_null():
    post = {"id": "p1", "author": "u1", "note": "n"}
    with pytest.raises(KeyError, match="related record for 'author' was not provided"):
        guarded_eval("author.id = null", "posts", post, {}, "u1")
    with pytest.raises(KeyError, match="record has no field 'author'"):
        guarded_eval("author = null", "posts", {"id": "p1"}, {}, "u1")
    assert guarded_eval("author.id = null", "posts", post, {"author": None}, "u1")


def test_unbound_trees_are_refused():
    with pytest.raises(ValueError, match="bind"):
        evaluate(parse("a = true"), record(a=True), VARS)
    assert evaluate(bind(parse("a = true"), T, SCHEMA), record(a=True), VARS)
