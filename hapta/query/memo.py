"""A memo bounded by bytes: the caches of parsed and bound filters hold what clients wrote, so they are bounded by
what it weighs (keys included), not by a count of entries that could each be 4 KB of filter."""
from __future__ import annotations

from typing import Any, Hashable

from cachetools import LRUCache

# What a filter costs in memory per character of its text, parsed or bound, keys and all (measured: a 4 KB filter
# of 200 comparisons parses to about 70 KB and binds to about 40 KB): an estimate on the safe side.
BYTES_PER_CHAR = 24
ENTRY_OVERHEAD = 512


def filter_bytes(text: str) -> int:
    return ENTRY_OVERHEAD + BYTES_PER_CHAR * len(text)


class SizedMemo:
    """Least recently used first out, once the entries' sizes add up to more than `max_bytes`."""

    def __init__(self, max_bytes: int):
        self._entries: LRUCache = LRUCache(max_bytes, getsizeof=lambda entry: entry[1])

    def get(self, key: Hashable) -> Any:
        entry = self._entries.get(key)
        return None if entry is None else entry[0]

    def put(self, key: Hashable, value: Any, size: int) -> None:
        try:
            self._entries[key] = (value, size)
        except ValueError:   # larger than the whole memo: not kept
            pass

    @property
    def bytes(self) -> int:
        return self._entries.currsize

    def __len__(self) -> int:
        return len(self._entries)
