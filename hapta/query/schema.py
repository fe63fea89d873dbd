"""What the filter language may refer to: the collections the app exposes, their client-visible fields.

Built by the store from the introspected database and the app's config; the query package only reads it.
Hidden fields are simply absent, so no filter, sort or `fields` list can name them.
"""
from __future__ import annotations

from dataclasses import dataclass, field as _field

from .ast import Node
# The value kinds a column can hold, as the filter language sees them (each one's row: kinds.py).
from .kinds import BOOL, FLOAT, INT, JSON, TEXT, TIMESTAMP, UUID  # noqa: F401


@dataclass(frozen=True)
class Field:
    name: str
    kind: str                    # one of the kinds above
    nullable: bool = True
    relation: str | None = None  # name of the related collection when this column holds its id
    guard: Node | None = None    # the field reads as null unless this rule holds for the record (e.g. email)
    search: str | None = None    # the text-search configuration `@@` searches it with (Collection.search), or None


@dataclass(frozen=True)
class Table:
    name: str                    # the collection name; also the SQL table name
    fields: dict[str, Field] = _field(default_factory=dict)


@dataclass(frozen=True)
class Schema:
    tables: dict[str, Table] = _field(default_factory=dict)
    # What a client's filter may read through a relation (`post.text`): for each collection it may follow, the
    # condition the related record must meet to be read at all (its view rule, None for "no condition"); a
    # collection missing here cannot be followed. None: no such limit (the app's own rules and guards, admins).
    views: dict[str, Node | None] | None = None
