"""Clients' filters and the read cache's keys: bound once, bounded in cost, keyed by exactly what the rules read
of the principal. Pure.

A cached answer is keyed by the normalised query (the bound filter's digest, not its text) and by exactly what the
rules read about the principal: the values of the `@user.*` variables that the collection's rule, the filter
(through the guards and view rules it touches) and the guards of the returned or sorted fields refer to, and
whether the principal is an admin. Two principals with the same key get the same SQL result, so no one is ever
served what another's rules allowed. A rule that the filter already implies reads nothing (`public = true`
implies `public = true || author = @user.id`), which lets every reader of a public feed share one entry. Queries
that read `@now` are never cached.

A record read by id has a second key, `anyone_key`, where the rule alone tells readers apart: the record is loaded
once without the rule and kept with what the rule says of it for anyone (`anyone_sees`: shown to every non-admin,
to none, or it depends on who asks). The first two are answers every reader of a public post shares; only a record
whose visibility depends on the reader (a private post: its author) falls back to the per-principal key.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from cachetools import LRUCache

from ..models import EVERYONE, Model
from ..principal import Principal
from ..protocol.errors import BAD_REQUEST, TOO_LARGE, HaptaError
from ..query import FilterError, bind, cost, evaluate_for_anyone, fields_used, parse, relations_used, vars_used
from ..query.ast import CONTAINS_COST, RELATION_COST, SEARCH_COST, And, Node, Or, searches
from ..query.memo import SizedMemo, filter_bytes
from ..query.schema import Schema
from .rules import reads, variable_key


def _conjuncts(node: Node) -> tuple[Node, ...]:
    return node.items if isinstance(node, And) else (node,)


def _disjuncts(node: Node) -> tuple[Node, ...]:
    return node.items if isinstance(node, Or) else (node,)


def implied(filter_node: Node | None, rule: Node) -> bool:
    """True when every record the filter matches also satisfies the rule, by the plain shape
    `A && ...` against `A || ...` (absorption, which holds in SQL's three-valued logic too)."""
    if filter_node is None:
        return False
    return any(c == d for c in _conjuncts(filter_node) for d in _disjuncts(rule))


@dataclass(frozen=True, slots=True)
class BoundFilter:
    """A client's filter bound to a collection, with what cache keys need of it, worked out once."""
    node: Node
    digest: str                   # stands for the filter in keys: cheaper to hash and to hold than the tree
    names: frozenset[str]         # the variables it reads (through the guards and view rules it touches too)
    relations: frozenset[str]     # the relation fields it follows
    cost: int                     # what it asks of the database (hapta.query.cost)
    searches: int = 0             # its full-text searches (`@@`), which only the database can answer


# Bound filters by (schema, collection, text): a hot page is bound once, not at every read. Bounded by bytes.
BOUND_CACHE_BYTES = 8 << 20
_bound = SizedMemo(BOUND_CACHE_BYTES)


def _implied(model: Model, rule_op: str, found: BoundFilter | None, rule: Node) -> bool:
    key = (id(rule), model.name, rule_op, found.digest if found else "")   # rules live as long as their gateway
    implication = _implications.get(key)
    if implication is None:
        implication = _implications[key] = implied(found.node if found else None, rule)
    return implication


_implications: LRUCache = LRUCache(4096)


def bound_filter(model: Model, schema: Schema, text: str | None) -> BoundFilter | None:
    """A client's filter bound to `model` in `schema`, or None for no filter; FilterError when invalid. Parsed and
    bound once per (schema, collection, text), for every read and subscription that uses it."""
    if text is None or not text.strip():
        return None
    key = (id(schema), model.name, text)
    found = _bound.get(key)
    if found is None:
        node = bind(parse(text), schema.tables[model.name], schema)
        digest = hashlib.blake2b(repr(node).encode(), digest_size=16).hexdigest()
        found = BoundFilter(node, digest, frozenset(vars_used(node)), frozenset(relations_used(node)), cost(node),
                            len(searches(node)))
        _bound.put(key, found, filter_bytes(text))
    return found


def query_key(model: Model, rule_op: str, principal: Principal, found: BoundFilter | None, read_fields: Iterable[str],
              rest: tuple) -> tuple[tuple | None, tuple[str, ...]]:
    """(key, tables) for a read, or (None, ...) when it must not be cached. `found` is the client's filter (from
    bound_filter); `read_fields` are the fields whose guards shape the answer (returned and sorted fields); `rest`
    is the rest of the normalised query."""
    rule = model.rules[rule_op]
    nodes: list[Node] = []
    if not principal.is_admin:
        if rule is None:
            return None, ()   # admin only: the query answers FORBIDDEN
        if rule is not EVERYONE and not _implied(model, rule_op, found, rule):
            nodes.append(rule)
        nodes += [model.table.fields[f].guard for f in read_fields
                  if f in model.table.fields and model.table.fields[f].guard is not None]
    names, relations = reads(tuple(nodes))
    if found is not None:
        names, relations = names | found.names, relations | found.relations
    if "now" in names:
        return None, ()
    tables = (model.name, *sorted({model.table.fields[r].relation for r in relations} - {model.name}))
    return (model.name, rule_op, found.digest if found else "", variable_key(names, principal), rest), tables


def anyone_key(model: Model, principal: Principal, read_fields: Iterable[str], rest: tuple) -> tuple | None:
    """The key under which a record read by id (`rest`) is kept for every non-admin alike, with what the view rule
    says of it for anyone; None where that cannot be decided from the record alone: for admins (their own key),
    where the rule is admin-only or open to all (query_key already shares those), reads a relation or `@now`, or
    where a read field is guarded (its value differs by reader)."""
    rule = model.rules["view"]
    if principal.is_admin or rule is None or rule is EVERYONE:
        return None
    names, relations = reads((rule,))
    if relations or "now" in names:
        return None
    if any(model.table.fields[f].guard is not None for f in read_fields if f in model.table.fields):
        return None
    return (model.name, "view", "anyone", rest)


def rule_fields(model: Model) -> frozenset[str]:
    """The record's own fields its view rule reads (what anyone_sees needs loaded)."""
    rule = model.rules["view"]
    return frozenset(path[0] for path in fields_used(rule)) if rule is not None and rule is not EVERYONE \
        else frozenset()


def anyone_sees(model: Model, record: Mapping[str, Any] | None) -> bool | None:
    """For a record loaded under anyone_key (None: there is none): True when the view rule shows it to every
    non-admin, False when to none, None when it depends on who asks. The same evaluation realtime delivery uses
    (hapta.query.evaluate agrees with the rule's SQL)."""
    if record is None:
        return False
    return evaluate_for_anyone(model.rules["view"], record)


def client_filter(model: Model, schema: Schema, text: str | None, max_cost: int) -> BoundFilter | None:
    """A client's filter on `model`, bound once (for admins against the schema as they see it: no guards, every
    relation open), and held to `max_cost` (App.database.max_filter_cost) before it can reach SQL."""
    try:
        found = bound_filter(model, schema, text)
    except FilterError as exc:
        raise HaptaError(BAD_REQUEST, f"filter: {exc}") from None
    if found is not None and found.cost > max_cost:
        raise HaptaError(TOO_LARGE, f"filter costs {found.cost} units, more than the {max_cost} allowed (a comparison "
                         f"is 1, a relation step {RELATION_COST} more, '~' {CONTAINS_COST} more, '@@' {SEARCH_COST} more)",
                         details={"cost": found.cost, "limit": max_cost})
    return found


def realtime_filter(found: BoundFilter | None) -> BoundFilter | None:
    """A client's filter as a realtime subscription may hold it: every change is matched against it in Python
    (access.live), which cannot answer a full-text search, so a filter with `@@` is refused rather than guessed."""
    if found is not None and found.searches:
        raise HaptaError(BAD_REQUEST, "filter: '@@' (full-text search) cannot be used in a realtime subscription; "
                         "search with records.list, or subscribe with a filter without '@@'")
    return found
