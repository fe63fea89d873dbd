"""Whose share of the database pool a request uses, and how far its transaction's COMMIT got.

    Work     one request's database work: whom it counts against (its principal and its address), set per request
             by the dispatcher in a context variable, so every statement a request causes is counted without being
             passed around; and whether its COMMIT went out
    Gate     at most a few pool connections at once for one principal and for one client address, so one client
             cannot starve the pool (App.database.per_principal, per_address)
"""
from __future__ import annotations

import asyncio
import contextvars
import math
from dataclasses import dataclass
from typing import Callable

from ..protocol.errors import RATE_LIMITED, HaptaError
from .failures import RETRY_AFTER


@dataclass(slots=True)
class Work:
    """The database work of one request: whom it counts against, and how far its transaction's COMMIT got.

    The dispatcher sets one per request (`working`); the Database reads it from a context variable, so every
    statement a request causes (its op, its hooks' ctx.sql) is counted without being passed around. Whom it counts
    against is asked only when the work reaches the pool: a ping never does."""
    holders: Callable[[], tuple[str, ...]] | None = None   # (principal, address), e.g. ("user:42", "addr:10.0.0.1")
    commit: str = ""               # "" before any COMMIT, "sent" while one is under way, "done" once it returned
    named: tuple[str, ...] | None = None   # the Gate's keys for the holders, once worked out

    def keys(self) -> tuple[str, ...]:
        """The Gate's keys for the holders, worked out on the first statement of the request."""
        if self.named is None:
            self.named = Gate.keys(self.holders()) if self.holders is not None else ()
        return self.named


_work: contextvars.ContextVar[Work | None] = contextvars.ContextVar("hapta_work", default=None)


def current_work() -> Work | None:
    """The Work of the request this task serves, if any (the pool counts it; a COMMIT says how far it got)."""
    return _work.get()


def working(work: Work) -> contextvars.Token:
    """Count what follows, in this task and the tasks it starts, as `work` (until `done_working`)."""
    return _work.set(work)


def done_working(token: contextvars.Token) -> None:
    _work.reset(token)


class Gate:
    """At most `per_principal` connections at once for one principal, and `per_address` for one client address
    (whoever signed in there). A key's count lives only while it is above zero, so idle clients cost nothing.
    Work names its holders as (principal, address): "user:42" and "addr:10.0.0.1"; anon and guests are their
    address twice over, and then meet both caps. Entering when there is room is a few dict operations: it happens
    for every statement."""

    def __init__(self, per_principal: int | None = None, per_address: int | None = None):
        self.limits = (per_principal or math.inf, per_address or math.inf)
        self._held: dict[str, int] = {}
        self._waiters: dict[str, list[asyncio.Future]] = {}

    @staticmethod
    def keys(holders: tuple[str, ...]) -> tuple[str, ...]:
        """The gate's own names for (principal, address): the two counts never mix, even when both are one address."""
        return ("p|" + holders[0], "a|" + holders[1]) if holders else ()

    def try_enter(self, keys: tuple[str, ...]) -> bool:
        """Count the keys (Gate.keys of the holders) if both have room; False, counting nothing, if one has not."""
        if not keys:
            return True
        held, (principal, address) = self._held, keys
        if held.get(principal, 0) >= self.limits[0] or held.get(address, 0) >= self.limits[1]:
            return False
        held[principal] = held.get(principal, 0) + 1
        held[address] = held.get(address, 0) + 1
        return True

    async def enter(self, keys: tuple[str, ...], deadline: float) -> None:
        """Wait until both keys have room (principal first, then address: no two requests deadlock); past
        `deadline`, RATE_LIMITED."""
        if self.try_enter(keys):
            return
        entered: list[str] = []
        try:
            for key, limit in zip(keys, self.limits):
                while self._held.get(key, 0) >= limit:
                    waiter = asyncio.get_running_loop().create_future()
                    self._waiters.setdefault(key, []).append(waiter)
                    try:
                        await asyncio.wait_for(waiter, max(0.0, deadline - asyncio.get_running_loop().time()))
                    except asyncio.TimeoutError:
                        raise HaptaError(RATE_LIMITED, "too much database work at once from this client; "
                                         "wait for your other requests", retry_after=RETRY_AFTER) from None
                    finally:
                        waiting = self._waiters.get(key)
                        if waiting is not None and waiter in waiting:
                            waiting.remove(waiter)
                        if not waiting:
                            self._waiters.pop(key, None)
                self._held[key] = self._held.get(key, 0) + 1
                entered.append(key)
        except BaseException:
            self.leave(tuple(entered))
            raise

    def leave(self, keys: tuple[str, ...]) -> None:
        held = self._held
        for key in keys:
            count = held.get(key, 0) - 1
            if count > 0:
                held[key] = count
            else:
                held.pop(key, None)
            waiters = self._waiters.get(key)
            if waiters:
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(None)
                        break
