"""Binding: resolve fields against the schema and give every comparison one value kind.

After binding, both back ends see exactly the same typed values (e.g. a timestamp literal is an
aware datetime, not a string that PostgreSQL and Python might each parse differently), and every
comparison that one back end could not express the same way as the other has been rejected.
"""
from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from . import operators, schema as s
from .ast import SEARCH, VAR_KINDS, And, Compare, Field, Literal, Node, Not, Operand, Or, Var, is_null, relations_used
from .errors import FilterError
from .kinds import KINDS
from .values import parse_timestamp

ORDERING_OPS = operators.of(operators.ORDER)
CONTAINS_OPS = operators.of(operators.CONTAINS)
# Kinds that may be compared with `<` and friends, and those `~` accepts (their text form is what a user would
# expect to search in): kinds.py says which.
ORDERED_KINDS = tuple(name for name, kind in KINDS.items() if kind.ordered)
TEXTUAL_KINDS = tuple(name for name, kind in KINDS.items() if kind.textual)

# Natural kinds of unbound literals, before coercion. "string" may still become text, uuid or timestamp.
STRING, NULL, LIST = "string", "null", "list"
_VALUE_NAMES = {
    STRING: "a string", NULL: "null", LIST: "a list", s.INT: "an integer", s.FLOAT: "a number", s.BOOL: "true/false",
}


def bind(node: Node, table: s.Table, schema: s.Schema) -> Node:
    """Return a copy of `node` with fields resolved on `table` and literals coerced, or raise FilterError."""
    if isinstance(node, Compare):
        return _bind_compare(node, table, schema)
    if isinstance(node, Not):
        return Not(bind(node.item, table, schema))
    items = tuple(bind(item, table, schema) for item in node.items)
    return And(items) if isinstance(node, And) else Or(items)


def bind_guards(schema: s.Schema) -> s.Schema:
    """Return `schema` with every Field.guard (parsed, unbound) bound against the field's own table.

    Guards are bound against the schema without guards, so a guard reads the plain column values;
    that also rules out guards that depend on each other.
    """
    plain = without_guards(schema)
    tables = {}
    for name, table in schema.tables.items():
        fields = {
            fname: replace(field, guard=bind(field.guard, plain.tables[name], plain)) if field.guard else field
            for fname, field in table.fields.items()
        }
        tables[name] = s.Table(table.name, fields)
    return s.Schema(tables)


def without_guards(schema: s.Schema) -> s.Schema:
    """The schema as admins see it: every readable column plainly (guards never hide anything from them)."""
    return s.Schema({name: _without_guards(table) for name, table in schema.tables.items()})


def _without_guards(table: s.Table) -> s.Table:
    return s.Table(table.name, {name: replace(field, guard=None) for name, field in table.fields.items()})


def resolve(path: tuple[str, ...], table: s.Table, schema: s.Schema) -> s.Field:
    """The schema field a path names. Hidden fields are absent from the schema, so they are "unknown"."""
    name = ".".join(path)
    if len(path) > 2:
        raise FilterError(f"field '{name}' goes through more than one relation; use at most one dot")
    first = table.fields.get(path[0])
    if first is None:
        raise FilterError(f"unknown field '{path[0]}'")
    if len(path) == 1:
        return first
    target = schema.tables.get(first.relation) if first.relation else None
    if target is None:
        raise FilterError(f"field '{path[0]}' is not a relation, so '{name}' is not allowed")
    field = target.fields.get(path[1])
    if field is None:
        raise FilterError(f"unknown field '{name}'")
    # A guarded relation column must not be followed: the related record would reveal what the guard
    # hides. A related field whose guard itself uses relations would need the related record's own
    # related records to be evaluated in Python.
    if first.guard is not None or (field.guard is not None and relations_used(field.guard)):
        raise FilterError(f"field '{name}' cannot be used through a relation")
    return field


def view_through(path: tuple[str, ...], table: s.Table, schema: s.Schema) -> Node | None:
    """For a relation path in a client's filter: the view condition the related record must meet (None: none).

    A reader sees through a relation only what it could read of the related record itself, so that a filter can
    never test what the rules hide (`post.text ~ "a"` on a private post's like). A collection the reader may not
    view at all cannot be followed; nor can one whose view rule itself reads relations, which the Python side
    (realtime, the cache) could not evaluate on the related record alone."""
    if len(path) < 2 or schema.views is None:
        return None
    target = table.fields[path[0]].relation
    if target not in schema.views:
        raise FilterError(f"field '{'.'.join(path)}' cannot be used through a relation: "
                          f"{target} is not readable here")
    view = schema.views[target]
    if view is not None and relations_used(view):
        raise FilterError(f"field '{'.'.join(path)}' cannot be used through a relation")
    return view


def _bind_operand(operand: Operand, table: s.Table, schema: s.Schema) -> Operand:
    if isinstance(operand, Field):
        field = resolve(operand.path, table, schema)
        return Field(operand.path, field.kind, field.guard, view_through(operand.path, table, schema))
    return operand


def _natural_kind(operand: Operand) -> str:
    """The kind an operand has before the comparison decides how to read it."""
    if isinstance(operand, Field):
        return operand.kind
    if isinstance(operand, Var):
        return VAR_KINDS[operand.name]
    value = operand.value
    if value is None:
        return NULL
    if isinstance(value, bool):
        return s.BOOL
    if isinstance(value, int):
        return s.INT
    if isinstance(value, float):
        return s.FLOAT
    if isinstance(value, tuple):
        return LIST
    return STRING


def _show(operand: Operand, kind: str) -> str:
    """How an operand is named in an error: fields by name, values only by their kind."""
    if isinstance(operand, Field):
        return f"field '{'.'.join(operand.path)}' ({kind})"
    if isinstance(operand, Var):
        return f"@{operand.name} ({kind})"
    return _VALUE_NAMES.get(kind, f"a {kind} value")


def _bind_compare(node: Compare, table: s.Table, schema: s.Schema) -> Compare:
    left = _bind_operand(node.left, table, schema)
    right = _bind_operand(node.right, table, schema)
    op = node.op
    if op == SEARCH:
        return _bind_search(left, right, table)
    if op == "in":
        return _bind_in(left, right)
    if is_null(left) or is_null(right):
        return _bind_null_check(left, op, right)
    kinds = (_natural_kind(left), _natural_kind(right))
    if op in CONTAINS_OPS:
        if not all(kind in (*TEXTUAL_KINDS, STRING) for kind in kinds):
            raise FilterError(f"'{op}' needs text on both sides, not {_show(left, kinds[0])} and {_show(right, kinds[1])}")
        kind = s.TEXT
    else:
        kind = _common_kind(left, kinds[0], right, kinds[1])
        if kind == s.JSON:
            raise FilterError(f"{_show(left, kinds[0])} can only be compared with '= null' or '!= null'")
        if op in ORDERING_OPS and kind not in ORDERED_KINDS:
            raise FilterError(f"'{op}' cannot compare {kind} values")
    return Compare(_coerce(left, kind), op, _coerce(right, kind), kind)


def _bind_search(left: Field, right: Literal, table: s.Table) -> Compare:
    """`field @@ "words"` on a field of the record itself that the app declared searchable: only there does the SQL
    match the expression of the index the app declared for it."""
    name = ".".join(left.path)
    if len(left.path) > 1:
        raise FilterError(f"'@@' searches a field of the record itself, not '{name}' through a relation")
    if table.fields[left.path[0]].search is None:
        searchable = ", ".join(sorted(f.name for f in table.fields.values() if f.search is not None))
        where = f"searchable here: {searchable}" if searchable else f"{table.name} has no searchable fields"
        raise FilterError(f"field '{name}' is not searchable with '@@' ({where})")
    return Compare(left, SEARCH, Literal(right.value, s.TEXT), s.TEXT)


def _bind_null_check(left: Operand, op: str, right: Operand) -> Compare:
    """`x = null` / `x != null` become IS [NOT] NULL; null with any other operator is an error."""
    if op not in ("=", "!="):
        raise FilterError(f"null can only be compared with '=' or '!=', not '{op}'")
    other = right if is_null(left) else left
    kind = _natural_kind(other)
    kind = s.TEXT if kind in (STRING, NULL) else kind
    return Compare(_coerce(left, kind), op, _coerce(right, kind), kind)


def _bind_in(left: Operand, right: Operand) -> Compare:
    """`x in [a, b]`: every item is coerced to the kind `x` is compared in."""
    if not isinstance(right, Literal):
        raise FilterError(f"'in' needs a list on the right; field '{'.'.join(right.path)}' is not a list")
    left_kind = _natural_kind(left)
    if left_kind == NULL:
        raise FilterError("'in' cannot test null; use '= null'")
    kind = s.TEXT if left_kind == STRING else left_kind
    for item in right.value:
        if item is not None:
            item_operand = Literal(item)
            kind = _common_kind(left, kind, item_operand, _natural_kind(item_operand))
    if kind == s.JSON:
        raise FilterError(f"{_show(left, left_kind)} can only be compared with '= null' or '!= null'")
    items = tuple(_coerce_value(item, kind) for item in right.value)
    return Compare(_coerce(left, kind), "in", Literal(items, kind), kind)


def _common_kind(left: Operand, left_kind: str, right: Operand, right_kind: str) -> str:
    """The kind two operands are compared in; strings only ever adopt the other side's kind."""
    pair = {left_kind, right_kind}
    if pair <= {STRING, s.TEXT}:
        return s.TEXT
    if STRING in pair:
        other = (pair - {STRING}).pop()
        if other in (s.UUID, s.TIMESTAMP):
            return other
    elif len(pair) == 1:
        return left_kind
    elif pair == {s.INT, s.FLOAT}:
        return s.FLOAT
    elif pair == {s.TEXT, s.UUID}:
        return s.TEXT
    raise FilterError(f"cannot compare {_show(left, left_kind)} with {_show(right, right_kind)}")


def _coerce(operand: Operand, kind: str) -> Operand:
    if isinstance(operand, Literal):
        return Literal(_coerce_value(operand.value, kind), kind)
    return operand


def _coerce_value(value: Any, kind: str) -> Any:
    """Convert an already type-checked literal value to the Python type of `kind`."""
    if value is None:
        return None
    if kind == s.FLOAT:
        return float(value)
    if kind == s.UUID and isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            raise FilterError("invalid uuid value") from None
    if kind == s.TIMESTAMP and isinstance(value, str):
        return parse_timestamp(value)
    return value
