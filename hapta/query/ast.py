"""The filter AST: frozen (hence hashable and cacheable) nodes shared by parser, binder, SQL and Python.

`parse` produces the nodes with their optional `kind`/`guard` left unset; `bind` returns a copy in
which every Field, Literal and Compare carries the value kind the comparison is made in, and guarded
fields carry their guard. `to_sql` and `evaluate` only accept bound trees.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Union

from .operators import OPERATORS

# Variables a filter may reference, with the value kind each one holds.
VAR_KINDS = {"user.id": "text", "user.role": "text", "user.verified": "bool", "user.anonymous": "bool",
             "now": "timestamp"}

COMPARE_OPS = tuple(OPERATORS)   # each one's row: operators.py
# `field @@ "words"`: PostgreSQL full-text search on a field the app declared searchable (Collection.search). Only
# the database can answer it (its stemming and stop words are PostgreSQL's), so evaluate() refuses it.
SEARCH = "@@"


@dataclass(frozen=True, slots=True)
class Field:
    path: tuple[str, ...]          # ("author",) or ("post", "author") through a relation
    kind: str | None = None        # set by bind: the schema kind of the referenced column
    guard: Node | None = None      # set by bind: rule (on the column's own table) that must hold to read it
    view: Node | None = None       # set by bind for a relation path in a client's filter: the related record's view
                                   # rule, which must hold for it to be read at all (else the field reads as null)


@dataclass(frozen=True, slots=True)
class Literal:
    value: Any                     # str, int, float, bool, None, or a tuple of those for `in` lists
    kind: str | None = None        # set by bind: the kind the value was coerced to


@dataclass(frozen=True, slots=True)
class Var:
    name: str                      # a key of VAR_KINDS, e.g. "user.id" for `@user.id`


@dataclass(frozen=True, slots=True)
class Compare:
    left: Operand
    op: str                        # one of COMPARE_OPS; for SEARCH, left is a Field and right a string Literal
    right: Operand
    kind: str | None = None        # set by bind: the kind both sides are compared as


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Node


Operand = Union[Field, Literal, Var]
Node = Union[Compare, And, Or, Not]


def is_null(operand: Operand) -> bool:
    """True for the literal `null`, which turns `=`/`!=` into IS NULL / IS NOT NULL.

    A variable that happens to be None is deliberately not treated this way: `author = @user.id`
    must never match rows without an author when nobody is logged in.
    """
    return isinstance(operand, Literal) and operand.value is None


def comparisons(node: Node) -> Iterator[Compare]:
    """Every comparison in the tree, iteratively (the tree depth is bounded, but cheap to be safe)."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, Compare):
            yield current
        elif isinstance(current, Not):
            stack.append(current.item)
        else:
            stack.extend(current.items)


def searches(node: Node) -> list[Compare]:
    """The full-text searches (`@@`) in the tree, in no particular order."""
    return [compare for compare in comparisons(node) if compare.op == SEARCH]


def fields_used(node: Node) -> set[tuple[str, ...]]:
    """Paths of every field the filter reads, including fields read by the guards (and view conditions) of bound
    fields.

    Guard fields are reported in the filter's own terms (a guard of `post.secret` reading `author`
    is reported as ("post", "author")), so a caller that fetches these fields can evaluate the filter.
    """
    used: set[tuple[str, ...]] = set()
    for compare in comparisons(node):
        for operand in (compare.left, compare.right):
            if isinstance(operand, Field):
                used.add(operand.path)
                prefix = operand.path[:-1]
                for condition in (operand.guard, operand.view):
                    if condition is not None:
                        used.update(prefix + path for path in fields_used(condition))
    return used


def relations_used(node: Node) -> set[str]:
    """Relation fields whose related record `evaluate` needs (in its `related` mapping)."""
    return {path[0] for path in fields_used(node) if len(path) == 2}


def vars_used(node: Node) -> set[str]:
    """Names of the variables (keys of VAR_KINDS) the filter, or the guards and views it touches, refer to."""
    used: set[str] = set()
    for compare in comparisons(node):
        for operand in (compare.left, compare.right):
            if isinstance(operand, Var):
                used.add(operand.name)
            elif isinstance(operand, Field):
                for condition in (operand.guard, operand.view):
                    if condition is not None:
                        used |= vars_used(condition)
    return used


# What a comparison costs the database, beyond the first unit: a relation step is a subquery per row (through the
# related view rule), `~` a scan of the whole text, `@@` parsing the text into words wherever the index does not
# answer (a guarded field, an OR with an unindexed condition), an `in` list a unit per LIST_ITEMS items.
RELATION_COST = 3
CONTAINS_COST = OPERATORS["~"].cost
SEARCH_COST = OPERATORS["@@"].cost
LIST_ITEMS = 32


def cost(node: Node) -> int:
    """A filter's cost in units (a plain comparison is 1): what a client may ask the database to do per row is
    bounded by it before any SQL runs (App.database.max_filter_cost)."""
    total = 0
    for compare in comparisons(node):
        total += 1
        for operand in (compare.left, compare.right):
            if isinstance(operand, Field) and len(operand.path) > 1:
                total += RELATION_COST
        total += OPERATORS[compare.op].cost
        if compare.op == "in" and isinstance(compare.right, Literal):
            total += len(compare.right.value) // LIST_ITEMS
    return total
