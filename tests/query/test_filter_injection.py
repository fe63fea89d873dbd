"""Injection corpus: every attack is either rejected or compiles to SQL built only from fixed words,
schema identifiers and $N placeholders, with the attacker's strings confined to the parameters."""
from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

from hapta.query import FilterError, compile_rule, to_sql
from hapta.query.ast import Literal, comparisons

from query_testdata import COMMENTS, POSTS, SCHEMA

VARS = {"user.id": "'; DROP TABLE posts; --", "user.role": '" OR 1=1 --', "now": datetime(2024, 1, 1, tzinfo=timezone.utc)}

ATTACKS = [
    "text = \"x'; DROP TABLE posts; --\"",
    'text = "x\\" OR 1=1 --"',
    "text ~ \"%' OR '1'='1\"",
    'text = "$1"',
    'text = "$1::text); DELETE FROM posts; --"',
    'text = "\\u0027 OR \\u00271\\u0027=\\u00271"',
    'text = "\\"posts\\".\\"id\\""',
    'text = "posts"',
    'text ~ "\\\\"); DROP TABLE x; --"',
    "text ~ \"`rm -rf`\"",
    'text = "ｘ＂ OR ＂1＂=＂1"',
    'text = "\\u202e-- hidden"',
    'text = "a" || 1=1',
    'text in ["a\'); DROP TABLE x; --", "b", null]',
    '@user.id = "\'; --" || author = @user.id',
    '"posts"."id" = 1',
    'id = 1; DROP TABLE posts',
    'id = "1"; DROP TABLE posts',
    'id = 1 -- comment',
    'id = "1" -- comment',
    'id = 1 /* comment */',
    'id = "a" OR 1=1',
    'id" = 1',
    'te"xt = 1',
    'text = E\'\\x27\'',
    "text = $$x$$",
    'text = "\\u0000"',
    'text = "a" && pg_sleep(10) = 1',
    'pg_sleep(10) = 1',
    'text = "x" COLLATE "C"',
    'score = 1::text',
    'score = 0x10',
    'score = 1e999',
    'score = 99999999999999999999',
    'text = "x" UNION SELECT * FROM users',
    'internal = "x"',
    'author.password = "x"',
    'author.email = "x"',
    'post.author.email = "x"',
    'created > "2024-01-01\'; DROP TABLE posts; --"',
    'ref = "\'; --"',
    '(((((text = "x"))))) || !(text ~ "\\n\\t")',
    'text = "\\ud83d\\ude00\\" OR \\"\\"=\\""',
    'text ~ "\\u0022; --"',
    "\u202etext = \"x\"",
    "text\u200b = \"x\"",
    "text ＝ \"x\"",
    "text = ＂x＂",
    "@user.id = author || @user.role = \"admin\"",
    'text in ["posts", "comments", "r_post", "id", "SELECT", "NULL", "$1"]',
    # single-quoted strings: SQL's own quoting, so the obvious place to try to break out
    "text = 'x'; DROP TABLE posts; --'",
    "text = 'x'' OR ''1''=''1'",
    "text = 'x\\' OR 1=1 --'",
    "text = 'it\\'s'' OR 1=1 --'",
    "text ~ '%\\' OR \\'1\\'=\\'1'",
    "text = '\\'); DELETE FROM posts; --'",
    "text in ['a\\'); DROP TABLE x; --', \"b\", null]",
    "text = '\\u0027 OR 1=1'",
    "text = 'x\\\\' || 1=1 --'",
    "'text' = 'x'",
    "text = E'\\x27'",
    "text = '$1'",
]

# Everything the compiler itself may write; anything else in the SQL would have come from the user.
_WORDS = {
    "SELECT", "FROM", "AS", "WHERE", "AND", "OR", "NOT", "IS", "NULL", "CASE", "WHEN", "THEN", "END",
    "ANY", "COLLATE", "lower", "LIKE", "replace", "text", "int8", "float8", "bool", "timestamptz", "uuid", "jsonb",
    "to_tsvector", "websearch_to_tsquery", "regconfig",
}
# The string constants it may write: the LIKE pattern's pieces for `~`, the text-search configuration for `@@`.
_CONSTANTS = {"'%'", "'\\'", "'\\\\'", "'\\%'", "'_'", "'\\_'", "'english'"}
_IDENTIFIERS = (
    {name for name in SCHEMA.tables}
    | {field for table in SCHEMA.tables.values() for field in table.fields}
    | {f"r_{field}" for table in SCHEMA.tables.values() for field in table.fields}
    | {"C"}
)
_TOKEN = re.compile(r'\s+|\$[0-9]+|::|[A-Za-z_][A-Za-z0-9_]*|"[^"]*"|\'[^\']*\'|<>|<=|>=|\|\||@@|[()\[\],.=<>]|0')


def sql_vocabulary_violations(sql: str) -> list[str]:
    """Pieces of `sql` that are not fixed compiler vocabulary, a schema identifier or a placeholder."""
    bad, pos = [], 0
    while pos < len(sql):
        match = _TOKEN.match(sql, pos)
        if not match:
            return bad + [sql[pos:]]
        token, pos = match.group(), match.end()
        if token.startswith('"') and token[1:-1] not in _IDENTIFIERS:
            bad.append(token)
        elif token.startswith("'") and token not in _CONSTANTS:
            bad.append(token)
        elif token[0].isalpha() and token not in _WORDS:
            bad.append(token)
    return bad


def user_strings(node) -> list[str]:
    values = []
    for compare in comparisons(node):
        for operand in (compare.left, compare.right):
            if isinstance(operand, Literal):
                items = operand.value if isinstance(operand.value, tuple) else (operand.value,)
                values += [item for item in items if isinstance(item, str)]
    return values


@pytest.mark.parametrize("table", [POSTS, COMMENTS], ids=["posts", "comments"])
@pytest.mark.parametrize("attack", ATTACKS)
def test_attack_is_rejected_or_confined_to_params(attack, table):
    try:
        node = compile_rule(attack, table, SCHEMA)
    except FilterError as error:
        assert error.message  # rejected, with a message for the client
        return
    params: list = []
    sql = to_sql(node, table, SCHEMA, VARS, params)
    assert sql_vocabulary_violations(sql) == []
    flat_params = [item for param in params for item in (param if isinstance(param, list) else [param])]
    for value in user_strings(node):
        assert value in flat_params
        if len(value) > 3 and value not in _IDENTIFIERS | _WORDS:
            assert value not in sql
    for value in VARS.values():
        assert str(value) not in sql


def test_the_corpus_exercises_both_outcomes():
    outcomes = set()
    for attack in ATTACKS:
        try:
            compile_rule(attack, POSTS, SCHEMA)
            outcomes.add("compiled")
        except FilterError:
            outcomes.add("rejected")
    assert outcomes == {"compiled", "rejected"}


def test_the_vocabulary_check_catches_injected_text():
    assert sql_vocabulary_violations("(\"posts\".\"id\" = 'x') OR 1=1; --") != []
    assert sql_vocabulary_violations('("posts"."id" = $1::text)') == []
    assert sql_vocabulary_violations('("evil"."id" = $1::text)') == ['"evil"']


def test_a_single_quoted_breakout_is_one_parameter():
    node = compile_rule("text = 'x\\' OR 1=1 --' || text = 'a'", POSTS, SCHEMA)
    params: list = []
    sql = to_sql(node, POSTS, SCHEMA, VARS, params)
    assert "x' OR 1=1 --" in params and "a" in params
    assert sql_vocabulary_violations(sql) == [] and "OR 1=1" not in sql
