"""Fuzzing the filter language (issue 11, item 14): any text parses or raises FilterError; any filter built from
the grammar binds or raises FilterError, against the rules' schema and the reader's; and what binds compiles, runs
on a real PostgreSQL and selects exactly the records the Python evaluator selects. Derandomized, bounded."""
from __future__ import annotations

import string
from datetime import datetime, timezone

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from hapta.query import FilterError, bind, cost, parse, relations_used
from hapta.query.evaluate import evaluate_for_anyone
from hapta.query.operators import OPERATORS as TABLE, SEARCH as SEARCH_GROUP

from query_testdata import READER, SCHEMA
from test_filter_agreement import evaluate_ids, related_records, select_ids

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

FIELDS = ["text", "public", "score", "rating", "created", "meta", "ref", "secret", "author", "id", "nope",
          "author.name", "author.email", "author.id", "author.nope", "text.x"]
COMMENT_FIELDS = ["post", "post.public", "post.author", "post.secret", "post.score", "author.email", "text"]
# every operator of the table (hapta/query/operators.py) but full-text search, which only the database answers
OPERATORS = [text for text, op in TABLE.items() if op.group != SEARCH_GROUP]
literal = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["true", "false", "null", "@user.id", "@user.role", "@now", "@nope", "[]", "[1, 2]",
                     '["a", null]', '"2024-01-01"', '"0001-01-01T00:00:00+14:00"', '"9999-12-31T23:59:59-14:00"',
                     f'"{"0a1b2c3d-4e5f-4a6b-8c7d-9e0fabcdef01"}"']),
    st.text(max_size=20).map(lambda t: msgspec.json.encode(t).decode()),
    st.text(max_size=20).map(lambda t: single_quoted(t)),
)


def single_quoted(value: str) -> str:
    """`value` as a single-quoted filter string: JSON's escapes, and the single quote escaped too."""
    return "'" + msgspec.json.encode(value).decode()[1:-1].replace("'", "\\'") + "'"


def comparisons(fields: list[str]):
    return st.builds(lambda f, op, v: f"{f} {op} {v}", st.sampled_from(fields), st.sampled_from(OPERATORS), literal)


def filters(fields: list[str]):
    return st.recursive(comparisons(fields), lambda inner: st.one_of(
        st.builds(lambda a, b: f"{a} && {b}", inner, inner), st.builds(lambda a, b: f"({a} || {b})", inner, inner),
        inner.map(lambda a: f"!({a})")), max_leaves=8)


@FUZZ
@given(st.text(max_size=500) | st.text(alphabet=string.printable, max_size=500))
def test_parse_raises_only_filter_errors(text):
    try:
        parse(text)
    except FilterError:
        pass


@FUZZ
@given(st.text(max_size=60))
def test_a_single_quoted_string_reads_as_its_double_quoted_twin(value):
    double = msgspec.json.encode(value).decode()
    try:
        expected = parse(f"text = {double}")
    except FilterError:   # NUL or a lone surrogate: refused in both spellings
        with pytest.raises(FilterError):
            parse(f"text = {single_quoted(value)}")
        return
    assert parse(f"text = {single_quoted(value)}") == expected
    assert expected.right.value == value


VARIABLE_SETS = [
    {"user.id": "alice", "user.role": "user", "now": datetime(2024, 6, 1, tzinfo=timezone.utc)},
    {"user.id": None, "user.role": None, "now": datetime(2024, 6, 1, tzinfo=timezone.utc)},
]


async def _agree(db, table_name: str, text: str) -> None:
    """Bound or refused, against both schemas; what binds selects the same rows in SQL as in Python."""
    for schema in (SCHEMA, READER):
        try:
            node = bind(parse(text), schema.tables[table_name], schema)
        except FilterError:
            continue
        assert cost(node) >= 1
        for variables in VARIABLE_SETS:
            assert await select_ids(db, table_name, text, variables, schema) == evaluate_ids(
                db, table_name, text, variables, schema), (text, variables)
            for row in db.rows[table_name]:   # "for anyone" never contradicts an answer for someone
                anyone = evaluate_for_anyone(node, row, related_records(db, table_name, row, relations_used(node)))
                assert anyone in (True, False, None)


@FUZZ
@given(text=filters(FIELDS))
async def test_any_filter_on_posts_agrees_in_sql_and_python_or_is_refused(db, text):
    await _agree(db, "posts", text)


@FUZZ
@given(text=filters(COMMENT_FIELDS))
async def test_any_filter_through_relations_agrees_in_sql_and_python_or_is_refused(db, text):
    await _agree(db, "comments", text)
