"""What PostgreSQL's faults, and the way to it, mean for the client: UNAVAILABLE or TIMEOUT with retry_after, an
unknown outcome for a write whose COMMIT got no answer, or None (not an upstream fault: a bug, or a constraint
the caller maps itself)."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

import asyncpg

from ..protocol.errors import TIMEOUT, UNAVAILABLE, HaptaError

RETRY_AFTER = 1.0   # what an UNAVAILABLE answer suggests, in seconds


def outcome_unknown() -> HaptaError:
    return HaptaError(UNAVAILABLE, "the database connection was lost while committing: the write may or may not "
                      "have happened; read it back before retrying", retry_after=RETRY_AFTER,
                      details={"outcome": "unknown"})


# ---- what an upstream error means ----------------------------------------------------------------------------

# What background work (sweepers, heartbeats, the listener) catches and logs in one line, then tries again later:
# anything the database or the way to it can raise, including the Database's own refusals (a busy pool).
UPSTREAM_ERRORS = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError,
                   asyncpg.InternalClientError, HaptaError)

# SQLSTATE classes of a database that is (for now) not there: connection exceptions, insufficient resources,
# operator intervention (shutdown, crash, cannot connect now), system errors. 57014 is a cancelled statement.
_DOWN_CLASSES = ("08", "53", "57", "58")
_TRANSIENT = {"40001", "40P01", "25006"}   # serialization failure, deadlock, read-only (a failover under way)
_TOO_SLOW = {"57014": "the query took too long and was cancelled",
             "55P03": "a record it needs is busy (locked by another write); try again"}


def failure(exc: BaseException) -> HaptaError | None:
    """The answer for an exception that came from PostgreSQL or the way to it; None when it is not an upstream
    fault (a bug of ours, or a constraint the caller maps itself)."""
    if isinstance(exc, HaptaError):
        return exc
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", None) or ""
        if state in _TOO_SLOW:
            return HaptaError(TIMEOUT, _TOO_SLOW[state], retry_after=RETRY_AFTER)
        if state[:2] in _DOWN_CLASSES or state in _TRANSIENT or isinstance(exc, asyncpg.PostgresConnectionError):
            return HaptaError(UNAVAILABLE, "the database is unavailable", retry_after=RETRY_AFTER)
        return None
    if isinstance(exc, asyncio.TimeoutError):
        return HaptaError(TIMEOUT, "the database did not answer in time", retry_after=RETRY_AFTER)
    if isinstance(exc, (OSError, asyncpg.InterfaceError, asyncpg.InternalClientError)):
        # InternalClientError: asyncpg's state machine after the server went away mid-statement ("cannot switch
        # to state ..."); InterfaceError: the connection is closed or was released under us.
        return HaptaError(UNAVAILABLE, "the database is unavailable", retry_after=RETRY_AFTER)
    return None


class OutageLog:
    """What requests met of an upstream's outage, in a few lines rather than one per request: the first failure per
    upstream is logged, the next ones within `window` seconds are counted, and the next line says how many it
    stands for. An outage of thirty seconds under load is a handful of lines."""

    def __init__(self, log: logging.Logger, window: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.log, self.window, self.clock = log, window, clock
        self.last: dict[str, tuple[float, int]] = {}   # upstream -> (when a line was written, failures since)

    def failed(self, upstream: str, op: str, reason: str) -> None:
        now = self.clock()
        when, since = self.last.get(upstream, (None, 0))
        if when is not None and now - when < self.window:
            self.last[upstream] = (when, since + 1)
            return
        more = f" (and {since} more since the last line)" if since else ""
        self.log.warning("upstream trouble (%s) during %s: %s%s", upstream, op, reason, more)
        self.last[upstream] = (now, 0)
