"""The filter language's comparison operators, each in one row: how it is written, what it compares, its SQL and
Python forms, and what it costs. Pure. The lexer, the parser, the binder, both back ends, the cost bound and the
fuzz tests all read this table, so a new operator is a new row (and the code of its group, where it has a new one).
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, Callable

# What an operator compares, and so how the binder and both back ends treat it.
EQUALITY = "equality"      # any kind but json; `= null`, `!= null` are IS [NOT] NULL
ORDER = "order"            # ordered kinds only (kinds.py)
CONTAINS = "contains"      # text on both sides, case-insensitive
MEMBERSHIP = "membership"  # a field against a list of values
SEARCH = "search"          # full-text search, answered by the database only


@dataclass(frozen=True)
class Operator:
    text: str                                      # as a filter writes it
    group: str                                     # one of the groups above
    sql: str | None = None                         # the SQL operator of an equality or order comparison
    python: Callable[[Any, Any], bool] | None = None   # its Python form (realtime, the read cache)
    cost: int = 0                                  # units a comparison with it costs beyond the first
    negated: bool = False                          # the negation of another operator of its group

    @property
    def word(self) -> bool:
        """Written as a word (`in`) rather than punctuation."""
        return self.text.isalpha()


OPERATORS: dict[str, Operator] = {op.text: op for op in (
    Operator("=", EQUALITY, "=", operator.eq),
    Operator("!=", EQUALITY, "<>", operator.ne, negated=True),
    Operator(">", ORDER, ">", operator.gt),
    Operator(">=", ORDER, ">=", operator.ge),
    Operator("<", ORDER, "<", operator.lt),
    Operator("<=", ORDER, "<=", operator.le),
    Operator("~", CONTAINS, cost=1),
    Operator("!~", CONTAINS, cost=1, negated=True),
    Operator("in", MEMBERSHIP),
    Operator("@@", SEARCH, cost=2),
)}

# Punctuation operators, longest first: `!=` before `!`, `<=` before `<`, `@@` before `@` (a variable).
SYMBOLS = tuple(sorted((op.text for op in OPERATORS.values() if not op.word), key=len, reverse=True))


def of(group: str) -> tuple[str, ...]:
    return tuple(text for text, op in OPERATORS.items() if op.group == group)
