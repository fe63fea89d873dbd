"""Giving memory back to the system after a burst of plain HTTP (request bodies, refused ones read and dropped).

CPython hands a freed body's bytes back to glibc's malloc, which keeps the pages for later: after a burst of
hundreds of socket reads of up to 256 KiB, the process's RSS stays at its peak (the heap is fragmented by the
small objects that live on between the reads, and glibc returns by itself only the top of its heap). Measured:
300 requests of one byte under 1 MiB each, refused or timed out, left +23 MiB (and +46 MiB after a second
burst); with malloc_trim(0) after them, a few MiB. malloc_trim walks the heap's free chunks (about a millisecond
per 100 MiB), so it runs only once connections that read at least `least` bytes between them have ended since the
last one, and at most once per `every` seconds. Without glibc (musl) it does nothing.
"""
from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging

log = logging.getLogger("hapta.http")


def _malloc_trim():
    trim = None
    for name in ("libc.so.6", None):   # glibc's own name first; else ask (find_library runs ldconfig)
        try:
            trim = ctypes.CDLL(name or ctypes.util.find_library("c")).malloc_trim
            break
        except (OSError, AttributeError, TypeError):
            continue
    if trim is None:
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


_TRIM = _malloc_trim()
AFTER = 0.5   # seconds from a connection's end to the trim


class Trim:
    """`ended(read)`: a connection that read `read` bytes ended (its buffers are free); trims when the connections
    ended since the last trim read `least` bytes, at most once per `every` seconds (later, when it is too soon)."""

    def __init__(self, least: int = 8 * 1024 * 1024, every: float = 1.0):
        self.least = least
        self.every = every
        self.freed = 0
        self.last = float("-inf")
        self.pending: asyncio.TimerHandle | None = None

    def ended(self, read: int) -> None:
        self.freed += read
        if _TRIM is None or self.freed < self.least or self.pending is not None:
            return
        loop = asyncio.get_running_loop()
        # a little later: the connection's transport, and what it holds, are freed after it closes
        self.pending = loop.call_at(max(loop.time() + AFTER, self.last + self.every), self._trim)

    def _trim(self) -> None:
        loop = asyncio.get_running_loop()
        self.pending, self.last, self.freed = None, loop.time(), 0
        assert _TRIM is not None
        _TRIM(0)
