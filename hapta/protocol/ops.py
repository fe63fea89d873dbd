"""What a client does with a live query's diff (realtime.diff, docs/protocol.md "Live queries"): the reference the
JS client (clients/js/src/queries.ts) and the Python one (hapta/reconnect.py) follow and the tests use. Pure, and
light to import: the Python client needs it without the gateway's modules. The ops are made by
hapta/live/window.py's diff:

    {"op": "delete", "id": id}                            gone from the items
    {"op": "insert", "index": i, "record": r}            put at index i
    {"op": "move", "id": id, "index": i, "record": r}    taken out, then put at index i (of the list without it)
    {"op": "update", "id": id, "record": r}              changed where it is
"""
from __future__ import annotations

from typing import Any

__all__ = ["apply"]


def apply(items: list[dict[str, Any]], ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items after `ops`, applied in order: a new list; ValueError for an op it cannot apply (a record the
    items do not hold, an op it does not know)."""
    items = list(items)
    for op in ops:
        kind = op["op"]
        if kind == "insert":
            items.insert(op["index"], op["record"])
            continue
        place = next((n for n, item in enumerate(items) if item["id"] == op["id"]), None)
        if place is None:   # the items are not what the gateway thinks they are
            raise ValueError(f"{kind} of {op['id']!r}, which the items do not hold")
        if kind == "delete":
            del items[place]
        elif kind == "update":
            items[place] = op["record"]
        elif kind == "move":
            del items[place]
            items.insert(op["index"], op["record"])
        else:
            raise ValueError(f"unknown op {kind!r}")
    return items
