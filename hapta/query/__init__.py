"""The filter language shared by client filters and access rules.

Text is parsed once (`parse`, cached) to an AST, bound to a table (`bind`) and then either compiled
to parameterised SQL (`to_sql`) or evaluated on a record in Python (`evaluate`); the two agree,
including SQL's three-valued logic.
"""
from __future__ import annotations

from .ast import Node, cost, fields_used, relations_used, vars_used
from .check import bind, bind_guards
from .errors import FilterError
from .evaluate import evaluate, evaluate_for_anyone
from .lexer import WHITESPACE
from .parser import parse
from .schema import Schema, Table
from .sql import to_sql

__all__ = [
    "FilterError", "Node", "bind", "bind_guards", "compile_rule", "cost", "evaluate", "evaluate_for_anyone", "fields_used",
    "parse", "relations_used", "to_sql", "vars_used",
]


def compile_rule(text: str, table: Table, schema: Schema) -> Node | None:
    """Parse and bind a filter or rule; None for an empty one, which means "no condition"."""
    if not text.strip(WHITESPACE):  # only the whitespace the lexer skips: "\u3000" is an error, not "no rule"
        return None
    return bind(parse(text), table, schema)
