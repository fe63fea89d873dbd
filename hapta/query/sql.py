"""Compiles a bound filter to a parameterised PostgreSQL boolean expression.

Nothing the client typed reaches the SQL text: identifiers are taken from the schema (and checked
against a strict pattern before quoting), and every value, including variables, is sent as a
parameter with an explicit cast so PostgreSQL never has to guess a type.

Two comparisons are shaped for the indexes an app declares (docs/performance.md): `a ~ "x"` is
`lower(a) LIKE '%x%'` (the value lower-cased and LIKE-escaped in SQL, so it answers exactly as
`strpos(lower(a), lower(x)) > 0` did), which a pg_trgm index on `lower(a) gin_trgm_ops` serves; and
`a @@ "words"` is `to_tsvector('<config>'::regconfig, a) @@ websearch_to_tsquery(...)`, the very expression
of a GIN index on `to_tsvector('<config>', a)`. The configuration is a constant, not a parameter (else the
expression would not be the index's), taken from the app's config and checked as an identifier.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple

from . import schema as s
from .ast import SEARCH, And, Compare, Field, Literal, Node, Not, Operand, Var, is_null
from .kinds import PG_TYPES  # noqa: F401  (the SQL type of each kind, for casts; others import it from here)
from .operators import CONTAINS, OPERATORS
from .values import var_value

SQL_OPS = {text: op.sql for text, op in OPERATORS.items() if op.sql is not None}
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")


def quote(name: str) -> str:
    """Quote an identifier from the schema; refuse anything that is not a plain lowercase name."""
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"refusing to use {name!r} as an SQL identifier")
    return f'"{name}"'


def regconfig(name: str) -> str:
    """A text-search configuration as an SQL constant: only a plain lowercase name (Collection.search is checked
    at start to be one) ever becomes `'name'::regconfig`."""
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"refusing to use {name!r} as a text-search configuration")
    return f"'{name}'::regconfig"


# `lower(x)` as a LIKE pattern that matches it anywhere: the LIKE escape character (backslash) and the wildcards
# in x stand for themselves.
_CONTAINS_PATTERN = "('%' || replace(replace(replace(lower({}), '\\', '\\\\'), '%', '\\%'), '_', '\\_') || '%')"


def to_sql(node: Node, table: s.Table, schema: s.Schema, vars: Mapping[str, Any], params: list) -> str:
    """SQL for `node` on rows of `table`, appending values to `params` and using them as $N.

    N is the 1-based position in `params`, so a caller may pre-fill its own parameters. Columns are
    qualified with the table name, so the query must use `FROM "<table>"` without an alias.
    """
    return _Compiler(schema, vars, params).node(node, _Scope(table, table.name))


def rank_sql(search: Compare, table: s.Table, schema: s.Schema, vars: Mapping[str, Any], params: list) -> str:
    """`ts_rank` of a bound `@@` (one of the filter's, hapta.query.ast.searches): how well a row matches it, for a
    sort by `@rank`."""
    vector, query = _Compiler(schema, vars, params).search_parts(search, _Scope(table, table.name))
    return f"ts_rank({vector}, {query})"


class VarRef(NamedTuple):
    """A parameter standing for `@name` of row `row`'s writer, filled in when the statement runs (var_value)."""
    row: int
    name: str


class VarSlots(dict):
    """Variables not known yet: compiled with these, every `@name` becomes a parameter holding VarRef(row, name),
    so that one statement text serves every principal of the same shape (records/combine.py keeps such texts). The
    text never depends on a variable's value: variables are always parameters, compared as such."""

    def __init__(self, row: int) -> None:
        super().__init__()
        self.row = row


@dataclass(frozen=True)
class _Scope:
    table: s.Table        # whose fields single-part paths name
    qualifier: str        # how that table is referred to in SQL: its name, or a subquery alias


class _Compiler:
    def __init__(self, schema: s.Schema, variables: Mapping[str, Any], params: list) -> None:
        self.schema = schema
        self.variables = variables
        self.params = params

    def node(self, node: Node, scope: _Scope) -> str:
        if isinstance(node, Compare):
            return self.compare(node, scope)
        if isinstance(node, Not):
            return f"(NOT {self.node(node.item, scope)})"
        joiner = " AND " if isinstance(node, And) else " OR "
        return "(" + joiner.join(self.node(item, scope) for item in node.items) + ")"

    def compare(self, node: Compare, scope: _Scope) -> str:
        kind, op = node.kind, node.op
        if kind is None:
            raise ValueError("bind() the filter before compiling it")
        if is_null(node.left) or is_null(node.right):
            other = node.right if is_null(node.left) else node.left
            return f"({self.operand(other, kind, scope)} IS {'NOT ' if op == '!=' else ''}NULL)"
        if op == SEARCH:
            vector, query = self.search_parts(node, scope)
            return f"({vector} @@ {query})"
        left = self.operand(node.left, kind, scope)
        if op == "in":
            return f"({left} = ANY({self.param(list(node.right.value), PG_TYPES[kind] + '[]')}))"
        right = self.operand(node.right, kind, scope)
        if OPERATORS[op].group == CONTAINS:
            like = "NOT LIKE" if OPERATORS[op].negated else "LIKE"
            return f"(lower({left}) {like} {_CONTAINS_PATTERN.format(right)})"
        if kind == s.TEXT and op not in ("=", "!="):
            # Byte order, which is what Python's str comparison gives; the database collation may differ.
            left += ' COLLATE "C"'
        return f"({left} {SQL_OPS[op]} {right})"

    def search_parts(self, node: Compare, scope: _Scope) -> tuple[str, str]:
        """(the field's tsvector, the words' tsquery) of a bound `@@`. websearch_to_tsquery takes any text without
        error (quotes, `or`, `-` are its syntax; everything else is words)."""
        config = regconfig(scope.table.fields[node.left.path[0]].search)
        return (f"to_tsvector({config}, {self.field(node.left, scope)})",
                f"websearch_to_tsquery({config}, {self.param(node.right.value, 'text')})")

    def operand(self, operand: Operand, kind: str, scope: _Scope) -> str:
        """SQL for one side of a comparison, as a value of `kind`."""
        if isinstance(operand, Literal):
            return "NULL" if operand.value is None else self.param(operand.value, PG_TYPES[kind])
        if isinstance(operand, Var):
            value = VarRef(self.variables.row, operand.name) if isinstance(self.variables, VarSlots) \
                else var_value(self.variables, operand.name)
            return self.param(value, PG_TYPES[kind])
        sql = self.field(operand, scope)
        return sql if operand.kind == kind else f"{sql}::{PG_TYPES[kind]}"

    def param(self, value: Any, pg_type: str) -> str:
        self.params.append(value)
        return f"${len(self.params)}::{pg_type}"

    def field(self, node: Field, scope: _Scope) -> str:
        """A column, or for `rel.name` a scalar subquery reading `name` from the related row."""
        first = scope.table.fields[node.path[0]]
        if len(node.path) == 1:
            return self.guarded(_column(scope.qualifier, first.name), node.guard, scope)
        target = self.schema.tables[first.relation]
        alias = f"r_{first.name}"
        if alias == scope.qualifier:  # a table literally named like the alias would be shadowed
            alias += "_"
        inner = _Scope(target, alias)
        value = self.guarded(_column(alias, target.fields[node.path[1]].name), node.guard, inner)
        visible = "" if node.view is None else f" AND {self.node(node.view, inner)}"
        return (
            f"(SELECT {value} FROM {quote(target.name)} AS {quote(alias)}"
            f" WHERE {_column(alias, 'id')} = {_column(scope.qualifier, first.name)}{visible})"
        )

    def guarded(self, column: str, guard: Node | None, scope: _Scope) -> str:
        """A guarded column reads as NULL on rows where its guard is not true, exactly as in evaluate()."""
        if guard is None:
            return column
        return f"(CASE WHEN {self.node(guard, scope)} THEN {column} END)"


def _column(qualifier: str, name: str) -> str:
    return f"{quote(qualifier)}.{quote(name)}"
