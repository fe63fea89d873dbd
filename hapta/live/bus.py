"""How channel notices (joins, leaves, messages) travel between gateway processes and nodes: the Bus protocol and
one implementation per engine (as centrifuge's Broker has), each held to the same contract by
tests/live/test_bus.py.

PostgresBus: NOTIFY on the database every process already LISTENs to (the default; payloads under 8000 bytes).
RedisBus: Redis pub/sub when REDIS_URL is set: chatty channel traffic (typing indicators) stays off the database's
notification queue, and a message may be as large as a client message. Membership itself stays in PostgreSQL
(hapta.presence) either way; only the notices move.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Callable, Protocol


from ..store.listener import Listener
from ..store.postgres import Database
from ..store.redis import ERRORS as REDIS_ERRORS, Breaker, client as redis_client, close as close_redis

log = logging.getLogger("hapta.channels")

CHANNEL = "hapta_channels"


class BusDown(Exception):
    """The bus cannot take a notice right now."""


class Bus(Protocol):
    """Carries payloads (text) from any process to every process, this one included, in the order one process sent
    them. What it may lose while an engine is away it reports with on_missed once it is back."""
    limit: int   # the largest payload it carries, in bytes

    async def start(self, on_message: Callable[[str], None], on_missed: Callable[[], None]) -> None:
        """From now on every payload sent anywhere reaches on_message; on_missed() after notices may have been
        lost."""

    async def send(self, payloads: list[str]) -> None:
        """Send these, in order; BusDown when the engine cannot take them now."""

    async def close(self) -> None:
        """Stop listening and let go of the engine."""


class PostgresBus:
    limit = 7900   # bytes: PostgreSQL refuses NOTIFY payloads of 8000 or more

    def __init__(self, db: Database, listener: Listener):
        """Built before the process's Listener starts (it LISTENs to what was added by then)."""
        self.db = db
        self._on_message: Callable[[str], None] = _nothing
        self._on_missed: Callable[[], None] = _nothing
        listener.add(CHANNEL, lambda payload: self._on_message(payload))
        listener.on_reset(lambda: self._on_missed())   # the listener was away: its notices are gone

    async def start(self, on_message: Callable[[str], None], on_missed: Callable[[], None]) -> None:
        self._on_message, self._on_missed = on_message, on_missed

    async def send(self, payloads: list[str]) -> None:
        if payloads:
            await self.db.execute("SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS t(p, n) "
                                    "ORDER BY n", CHANNEL, payloads)

    async def close(self) -> None:
        self._on_message, self._on_missed = _nothing, _nothing


def _nothing(*_: object) -> None:
    pass


class RedisBus:
    limit = 1 << 20

    def __init__(self, url: str, prefix: str):
        self.errors = REDIS_ERRORS
        self.client = redis_client(url, timeout=1.0, max_connections=256)   # a publish waits on it: short
        self.breaker = Breaker()   # a Redis that hangs fails publishes at once, not after a timeout each
        self.channel = f"{prefix}channels"
        self.task: asyncio.Task | None = None

    async def start(self, on_message: Callable[[str], None], on_missed: Callable[[], None]) -> None:
        subscribed = asyncio.get_running_loop().create_future()
        self.task = asyncio.ensure_future(self._listen(on_message, on_missed, subscribed))
        try:   # joins right after start must be heard; a Redis that is down is waited for in the background
            await asyncio.wait_for(asyncio.shield(subscribed), 2.0)
        except asyncio.TimeoutError:
            log.warning("channels: Redis does not answer yet; messages wait until it does")

    async def _listen(self, on_message: Callable[[str], None], on_missed: Callable[[], None],
                      subscribed: asyncio.Future) -> None:
        delay, lost = 0.1, False
        while True:
            pubsub = self.client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                if not subscribed.done():
                    subscribed.set_result(None)
                if lost:   # notices sent while we were away are gone
                    log.info("channels: Redis is back")
                    lost = False
                    self.breaker.succeeded()   # publishes need not wait for their next probe
                    on_missed()
                delay = 0.1
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        on_message(message["data"].decode())
            except self.errors as exc:
                if not lost:
                    log.warning("channels: lost Redis (%r); reconnecting", exc)
                lost = True
            finally:
                try:
                    await pubsub.aclose()
                except self.errors:
                    pass
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def send(self, payloads: list[str]) -> None:
        if not self.breaker.allows():
            raise BusDown("Redis did not answer a moment ago")
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for payload in payloads:
                    pipe.publish(self.channel, payload)
                await pipe.execute()
        except self.errors as exc:
            self.breaker.failed()
            raise BusDown(type(exc).__name__) from None
        self.breaker.succeeded()

    async def close(self) -> None:
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        await close_redis(self.client)
