"""Sorting and keyset paging for records.list: the sort terms, the opaque cursor a page hands out, and the
condition that continues after it. Pure.

A sort term is a field or `@rank`: how well a record matches the filter's one full-text search (`@@`), by
PostgreSQL's ts_rank. A rank is computed, not stored, and ties are common, so a sort by it pages by `page` only.
"""
from __future__ import annotations

import base64
import binascii
from typing import Any

import msgspec

from ..access import BoundFilter, Sql
from ..models import Model
from ..protocol.errors import BAD_REQUEST, HaptaError
from ..query import schema as kinds
from ..query.ast import Compare, searches
from .values import coerce

MAX_SORT_TERMS = 8
RANK = "@rank"


def sort_terms(model: Model, text: str | None) -> list[tuple[str, bool]]:
    """[(field, descending)], always ending with id so that the order is total (keyset needs that)."""
    terms: list[tuple[str, bool]] = []
    for part in (text or "-created").split(","):
        part = part.strip()
        if not part:
            continue
        descending = part.startswith("-")
        name = part.lstrip("+-")
        field = model.table.fields.get(name)
        if name != RANK and (field is None or field.kind == kinds.JSON):
            raise HaptaError(BAD_REQUEST, f"cannot sort by {name!r}")
        if name in (t[0] for t in terms):
            raise HaptaError(BAD_REQUEST, f"{name!r} appears twice in sort")
        terms.append((name, descending))
    if len(terms) > MAX_SORT_TERMS:
        raise HaptaError(BAD_REQUEST, f"sort takes at most {MAX_SORT_TERMS} fields")
    if "id" not in (t[0] for t in terms):
        terms.append(("id", False))
    return terms


def keyset_ready(model: Model, terms: list[tuple[str, bool]]) -> bool:
    """Keyset paging compares tuples; it is exact only over columns that are never NULL (and a rank is no column)."""
    return all(n != RANK and not model.info.columns[n].nullable and model.table.fields[n].guard is None
               for n, _ in terms)


def ranked_search(terms: list[tuple[str, bool]], found: BoundFilter | None) -> Compare | None:
    """The filter's full-text search that a sort by @rank orders by; None when the sort has no @rank. Exactly one
    `@@` is needed: with none there is nothing to rank by, with several no one rank that says which match is best."""
    if all(name != RANK for name, _ in terms):
        return None
    found_searches = searches(found.node) if found is not None else []
    if len(found_searches) != 1:
        raise HaptaError(BAD_REQUEST, f"sort by {RANK} needs exactly one '@@' in the filter, which has "
                         f"{len(found_searches) or 'none'}")
    return found_searches[0]


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(values)).decode().rstrip("=")


def decode_cursor(model: Model, terms: list[tuple[str, bool]], cursor: str) -> list[Any]:
    try:
        values = msgspec.json.decode(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise HaptaError(BAD_REQUEST, "after is not a cursor from this query") from None
    if not isinstance(values, list) or len(values) != len(terms):
        raise HaptaError(BAD_REQUEST, "after is not a cursor from this query")
    try:
        return [coerce(model, name, value) for (name, _), value in zip(terms, values)]
    except HaptaError:
        raise HaptaError(BAD_REQUEST, "after is not a cursor from this query") from None


def after_condition(sql: Sql, terms: list[tuple[str, bool]], values: list[Any]) -> str:
    """(a, b, id) strictly after the cursor, each column in its own direction: an OR of prefixes."""
    alternatives = []
    for i, (name, descending) in enumerate(terms):
        parts = [f'"{sql.model.name}"."{n}" = {sql.param(v)}' for (n, _), v in zip(terms[:i], values[:i])]
        parts.append(f'"{sql.model.name}"."{name}" {"<" if descending else ">"} {sql.param(values[i])}')
        alternatives.append("(" + " AND ".join(parts) + ")")
    return "(" + " OR ".join(alternatives) + ")"
