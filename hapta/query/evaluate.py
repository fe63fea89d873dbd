"""Evaluates a bound filter on a record in Python, with the same answers PostgreSQL gives.

Truth values are True, False or None (SQL's "unknown"): a comparison with a NULL operand is
unknown (except `= null` / `!= null`), `!unknown` stays unknown, `&&`/`||` follow SQL, and a record
matches only when the result is True.

`@@` (full-text search) has no Python form: its words are PostgreSQL's (stemming, stop words, the text-search
configuration), so evaluating it raises Unevaluable rather than guess. Rules may not use it (hapta/models.py) and
realtime refuses filters with it (access.filters.realtime_filter), so this is a guard that should never trip.

Known difference: `~` lower-cases with Python's str.lower(); PostgreSQL's lower() depends on the
database locale and can differ outside ASCII (e.g. a final 'Σ' becomes 'ς' in Python, 'σ' in PostgreSQL).
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Any, Mapping

from .ast import SEARCH, Compare, Field, Literal, Node, Not, Operand, Or, Var, is_null
from .operators import CONTAINS, OPERATORS
from .values import comparable, var_value

class Unevaluable(ValueError):
    """The filter holds a comparison only the database can answer (`@@`)."""


_NO_RELATED: Mapping[str, Mapping | None] = MappingProxyType({})


def evaluate(
    node: Node,
    record: Mapping[str, Any],
    vars: Mapping[str, Any],
    related: Mapping[str, Mapping[str, Any] | None] = _NO_RELATED,
) -> bool:
    """True when `record` matches. `related[rel]` is the record `rel` points to, or None if there is none.

    Every field the filter reads must be present in `record` (and in the related records), and
    `related` must have an entry for every name in `relations_used(node)`; a missing one raises
    KeyError rather than silently reading as null.
    """
    return _Evaluator(record, vars, related).truth(node) is True


class _DependsOnVars(Exception):
    """A comparison's outcome depends on who asks (it reads a variable)."""


def evaluate_for_anyone(
    node: Node,
    record: Mapping[str, Any],
    related: Mapping[str, Mapping[str, Any] | None] = _NO_RELATED,
) -> bool | None:
    """True or False when `evaluate` gives that answer whatever the variables hold, None when it depends on them.

    Realtime fan-out asks this once per change, then evaluates per principal only where the answer is None.
    Sound because SQL's three-valued logic is monotone: a comparison that reads a variable is taken as
    "unknown", and an AND/OR/NOT whose result is decided despite an unknown part is decided for every value
    that part could take (a NULL's own "unknown" stays a third, separate answer: it never matches).
    """
    truth = _Evaluator(record, {}, related, symbolic=True).truth(node)
    if truth is _VARIES:
        return None
    return truth is True


_VARIES = object()   # in symbolic mode: "depends on the variables" (distinct from SQL's unknown, None)


class _Evaluator:
    def __init__(self, record: Mapping, variables: Mapping, related: Mapping, symbolic: bool = False) -> None:
        self.record = record
        self.variables = variables
        self.related = related
        self.symbolic = symbolic

    def truth(self, node: Node) -> Any:
        if isinstance(node, Compare):
            if self.symbolic:
                try:
                    return self.compare(node)
                except _DependsOnVars:
                    return _VARIES
            return self.compare(node)
        if isinstance(node, Not):
            value = self.truth(node.item)
            return value if value is None or value is _VARIES else not value
        # AND: any False wins, else any unknown makes it unknown. OR is the mirror image.
        # (Symbolic mode: a part that varies makes the whole vary unless another part decides it.)
        decisive = isinstance(node, Or)
        result: Any = not decisive
        for item in node.items:
            value = self.truth(item)
            if value is decisive:
                return decisive
            if value is _VARIES:
                result = _VARIES
            elif value is None and result is not _VARIES:
                result = None
        return result

    def compare(self, node: Compare) -> bool | None:
        kind, op = node.kind, node.op
        if kind is None:
            raise ValueError("bind() the filter before evaluating it")
        if op == SEARCH:
            raise Unevaluable("'@@' (full-text search) is answered by the database only")
        if is_null(node.left) or is_null(node.right):
            other = node.right if is_null(node.left) else node.left
            is_missing = self.operand(other, kind) is None
            return is_missing if op == "=" else not is_missing
        left = self.operand(node.left, kind)
        if op == "in":
            return _any_equal(left, [comparable(item, kind) for item in node.right.value])
        right = self.operand(node.right, kind)
        if left is None or right is None:
            return None
        found = OPERATORS[op]
        if found.group == CONTAINS:
            return (right.lower() in left.lower()) is not found.negated
        return found.python(left, right)

    def operand(self, operand: Operand, kind: str) -> Any:
        if isinstance(operand, Literal):
            value = operand.value
        elif isinstance(operand, Var):
            if self.symbolic:
                raise _DependsOnVars
            value = var_value(self.variables, operand.name)
        else:
            value = self.field(operand)
        return comparable(value, kind)

    def field(self, node: Field) -> Any:
        """A field's value, or None when it is null, the related record is missing or not viewable, or its guard is
        not true."""
        if len(node.path) == 1:
            owner, owner_related = self.record, self.related
        else:
            if node.path[0] not in self.related:
                raise KeyError(f"related record for {node.path[0]!r} was not provided")
            owner, owner_related = self.related[node.path[0]], _NO_RELATED
            if owner is None:
                return None
            if node.view is not None:   # a related record the reader may not view reads as missing
                visible = _Evaluator(owner, self.variables, _NO_RELATED, self.symbolic).truth(node.view)
                if visible is _VARIES:
                    raise _DependsOnVars
                if visible is not True:
                    return None
        name = node.path[-1]
        if name not in owner:
            raise KeyError(f"record has no field {name!r}")
        if node.guard is not None:
            allowed = _Evaluator(owner, self.variables, owner_related, self.symbolic).truth(node.guard)
            if allowed is _VARIES:
                raise _DependsOnVars
            if allowed is not True:
                return None
        return owner[name]


def _any_equal(value: Any, items: list) -> bool | None:
    """SQL `value = ANY(items)`: true if any item equals, else unknown if a null was involved."""
    if not items:
        return False
    if value is None:
        return None
    if any(item == value for item in items if item is not None):
        return True
    return None if None in items else False
