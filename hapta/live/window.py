"""A live query's window and the ordered diffs that keep a client's copy of it. Pure: no I/O, no awaits.

A live query (realtime.query) is the first `limit` records of a sorted, filtered, rule-checked list. The gateway
keeps, per subscription, a Window: the first `limit + margin` records of the result in order, each under its sort
key. A change either puts a record (it matches now: it enters, moves or changes) or drops one (it no longer
matches, or is gone); both are decided in Python (plan.py's checks), without a database read. Records beyond the
window are not known: a record whose key falls after the last one held is left out unless the window holds the
whole result (`complete`). Only when drops eat the margin, so that fewer than `limit` are held of a result that
goes on, must the window be read again (`short`).

What the client is sent is `diff(before, after)`: ops that turn the items it holds into the new ones, applied in
order (docs/protocol.md, "Live queries"):

    {"op": "delete", "id": id}                            gone from the items
    {"op": "insert", "index": i, "record": r}            put at index i
    {"op": "move", "id": id, "index": i, "record": r}    taken out, then put at index i (of the list without it)
    {"op": "update", "id": id, "record": r}              changed where it is

Records that keep their relative order (the longest run of them: a longest increasing subsequence) stay where they
are; every other one is inserted or moved right after the record that precedes it in the new items, so that a
record that enters at the top is one op, not one per record below it.

Sort keys compare as PostgreSQL orders the same values (`Order`): ascending puts nulls last, descending first;
NaN is above every number; text compares by the database's collation (`text_key`: code points under C and
C.UTF-8, or the C library's transform for the same locale, ties broken by bytes as PostgreSQL does).
"""
from __future__ import annotations

import bisect
import math
from typing import Any, Callable, Iterable, NamedTuple

from ..protocol.ops import apply  # noqa: F401  (what a client does with a diff: the reference, beside diff)
from ..query import schema as kinds

TextKey = Callable[[str], Any]


class Desc:
    """A sort key value in descending order: compares the other way round."""
    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Desc) and self.value == other.value

    def __lt__(self, other: "Desc") -> bool:
        return other.value < self.value

    def __repr__(self) -> str:
        return f"Desc({self.value!r})"


class Order:
    """Sort terms [(field, descending)] (ending with id, as records.list's do) as a key function for records."""

    def __init__(self, terms: list[tuple[str, bool]], kinds_of: dict[str, str], text_key: TextKey = str):
        self.terms = terms
        self.fields = tuple(name for name, _ in terms)
        self._parts = [(name, descending, kinds_of[name]) for name, descending in terms]
        self._text_key = text_key

    def key(self, record: dict[str, Any]) -> tuple:
        out = []
        for name, descending, kind in self._parts:
            value = record.get(name)
            if value is None:
                part: tuple = (1,)                      # nulls after every value (ascending)
            elif kind == kinds.TEXT:
                part = (0, self._text_key(value))
            elif kind == kinds.FLOAT and isinstance(value, float) and math.isnan(value):
                part = (0, 1, 0.0)                       # NaN after every number
            elif kind == kinds.FLOAT:
                part = (0, 0, value)
            else:
                part = (0, value)
            out.append(Desc(part) if descending else part)
        return tuple(out)


class Entry(NamedTuple):
    key: tuple
    id: str
    version: int
    record: dict[str, Any]   # as the reader is sent it


class Window:
    """The first records of a query's result, in order: at most `limit + margin` of them.

    `frontier` is the sort key up to which the window knows the result: every matching record with a key at or
    before it is held; beyond it nothing is known (None: the window holds the whole result). Records leave without
    moving it; a record that falls out of a full window moves it back to the last one held."""

    def __init__(self, limit: int, margin: int):
        self.limit = limit
        self.size = limit + margin
        self.keys: list[tuple] = []          # sort keys, ascending (the result's order)
        self.entries: list[Entry] = []       # in the same order
        self.where: dict[Any, tuple] = {}    # id -> its key
        self.frontier: tuple | None = None

    @property
    def complete(self) -> bool:
        return self.frontier is None

    def fill(self, entries: Iterable[Entry], complete: bool) -> None:
        """Start over from a read of the result's first records (in order, at most `size`; `complete`: that is
        all of it)."""
        self.entries = list(entries)[:self.size]
        self.keys = [e.key for e in self.entries]
        self.where = {e.id: e.key for e in self.entries}
        self.frontier = None if complete else (self.keys[-1] if self.keys else ())

    def put(self, entry: Entry) -> None:
        """A record that matches now, with its key: entered, moved or changed. One whose key falls beyond the
        frontier is not held (what lies between is not known)."""
        self.drop(entry.id)
        if self.frontier is not None and entry.key > self.frontier:
            return
        place = bisect.bisect_left(self.keys, entry.key)
        self.keys.insert(place, entry.key)
        self.entries.insert(place, entry)
        self.where[entry.id] = entry.key
        if len(self.entries) > self.size:   # the last one falls out: the window knows up to the one before it
            last = self.entries.pop()
            self.keys.pop()
            del self.where[last.id]
            self.frontier = self.keys[-1]

    def drop(self, record_id: Any) -> None:
        """A record that does not match now (or is gone)."""
        key = self.where.pop(record_id, None)
        if key is None:
            return
        place = bisect.bisect_left(self.keys, key)   # keys are distinct: the id ends every one
        del self.keys[place]
        del self.entries[place]

    def holds(self, record_id: Any) -> bool:
        return record_id in self.where

    def takes(self, record_id: Any, entry: Entry | None) -> bool:
        """Would `put(entry)` (or, None, `drop(record_id)`) change the window? Not for a record it does not hold
        that does not match now, nor for one whose key falls beyond the frontier: most changes, for most of a
        collection's queries."""
        return record_id in self.where or (entry is not None and (self.frontier is None
                                                                  or not entry.key > self.frontier))

    @property
    def short(self) -> bool:
        """Fewer than `limit` held of a result that goes on: it must be read again."""
        return self.frontier is not None and len(self.entries) < self.limit

    def items(self) -> list[Entry]:
        return self.entries[:self.limit]


def diff(before: list[tuple[str, int, Any]], after: list[tuple[str, int, Any]]) -> list[dict[str, Any]]:
    """Ops turning the items `before` into `after`, each item (id, version, record). An item whose version differs
    (or, with the same version, whose record differs: a guard or hook shows it otherwise now) is updated; a record of
    `before` that is None stands for one the client holds but the gateway has not seen (a resume's `have`)."""
    after_ids = {item[0] for item in after}
    ops: list[dict[str, Any]] = [{"op": "delete", "id": item[0]} for item in before if item[0] not in after_ids]
    kept = [item for item in before if item[0] in after_ids]
    old_place = {item[0]: n for n, item in enumerate(kept)}
    old_item = {item[0]: item for item in kept}
    staying = _longest_rising([old_place[item[0]] for item in after if item[0] in old_place])
    stay_ids = {kept[n][0] for n in staying}
    current = [item[0] for item in kept]
    updates = []
    for n, (record_id, version, record) in enumerate(after):
        if record_id in stay_ids:
            _, old_version, old_record = old_item[record_id]
            if old_version != version or (old_record is not None and old_record != record):
                updates.append({"op": "update", "id": record_id, "record": record})
            continue
        if record_id in old_place:
            current.remove(record_id)
        index = 0 if n == 0 else current.index(after[n - 1][0]) + 1
        current.insert(index, record_id)
        if record_id in old_place:
            ops.append({"op": "move", "id": record_id, "index": index, "record": record})
        else:
            ops.append({"op": "insert", "index": index, "record": record})
    return ops + updates


def _longest_rising(values: list[int]) -> list[int]:
    """The values of a longest strictly increasing subsequence (patience sorting, O(n log n))."""
    if not values:
        return []
    tails: list[int] = []        # the smallest tail value of a rising run of each length
    tail_at: list[int] = []      # where in `values` that tail is
    before: list[int] = [-1] * len(values)
    for n, value in enumerate(values):
        length = bisect.bisect_left(tails, value)
        if length == len(tails):
            tails.append(value)
            tail_at.append(n)
        else:
            tails[length] = value
            tail_at[length] = n
        before[n] = tail_at[length - 1] if length else -1
    out = []
    n = tail_at[-1]
    while n != -1:
        out.append(values[n])
        n = before[n]
    return out[::-1]


def collation_key(collate: str, provider: str = "c") -> TextKey | None:
    """How text compares under the database's collation: str itself under C (code points), else the C library's
    transform for the same locale with ties broken by code points (PostgreSQL's deterministic collations break
    them by bytes); None when this process cannot reproduce it (an ICU collation, a locale it lacks)."""
    if provider == "b" or (provider == "c" and collate.split(".")[0] in ("C", "POSIX")):
        return str   # (PostgreSQL 17's builtin provider: C and C.UTF-8, code points)
    if provider != "c":
        return None
    import locale
    try:
        locale.setlocale(locale.LC_COLLATE, collate)
    except locale.Error:
        return None
    transform = locale.strxfrm
    return lambda text: (transform(text), text)
