"""The Bus contract (hapta/live/bus.py), held against each implementation on its real engine: PostgreSQL's
NOTIFY through a Listener, and Redis pub/sub. Two buses stand for two gateway processes."""
from __future__ import annotations

import asyncio
import secrets
from typing import Awaitable, Callable

import pytest

from hapta.live.bus import Bus, PostgresBus, RedisBus
from hapta.store.listener import Listener
from hapta.store.postgres import Database, create_pool
from tests.services import LOCAL_REDIS, RedisServer, redis_answers

Make = Callable[[], Awaitable[Bus]]


@pytest.fixture(params=["postgres", "redis"])
async def make_bus(request, database):
    """make_bus() -> a started-able bus on the engine under test; everything made is closed after the test."""
    closing: list[Callable[[], Awaitable[None]]] = []
    server = None
    if request.param == "redis":
        if redis_answers(*LOCAL_REDIS):
            url = f"redis://{LOCAL_REDIS[0]}:{LOCAL_REDIS[1]}/0"
        else:
            server = RedisServer().start()
            url = server.url
        prefix = f"hapta-test-{secrets.token_hex(4)}:"

    async def make() -> Bus:
        if request.param == "redis":
            bus: Bus = RedisBus(url, prefix)
        else:
            pool = await create_pool(database, min_size=1, max_size=2)
            listener = Listener(database)
            bus = PostgresBus(Database(pool), listener)   # before the listener starts, as the gateway builds it
            await listener.start()
            closing.extend([listener.close, pool.close])
        closing.insert(0, bus.close)
        return bus

    yield make
    for close in closing:
        await close()
    if server is not None:
        server.stop()


async def _heard(payloads: list[str], count: int, timeout: float = 10.0) -> list[str]:
    deadline = asyncio.get_running_loop().time() + timeout
    while len(payloads) < count:
        assert asyncio.get_running_loop().time() < deadline, f"heard {payloads!r}, waited for {count}"
        await asyncio.sleep(0.01)
    return payloads


async def test_every_process_hears_what_one_sends_in_its_order(make_bus):
    one, other = await make_bus(), await make_bus()
    heard_one: list[str] = []
    heard_other: list[str] = []
    await one.start(heard_one.append, lambda: None)
    await other.start(heard_other.append, lambda: None)
    sent = [f"notice {n} {secrets.token_hex(2)}" for n in range(50)]
    await one.send(sent[:25])
    await one.send(sent[25:])
    assert await _heard(heard_other, 50) == sent   # another process, in order
    assert await _heard(heard_one, 50) == sent     # and the sender's own


async def test_a_payload_of_the_stated_limit_passes(make_bus):
    bus = await make_bus()
    heard: list[str] = []
    await bus.start(heard.append, lambda: None)
    assert bus.limit >= 7900
    largest = "x" * bus.limit
    await bus.send([largest])
    assert await _heard(heard, 1) == [largest]


async def test_nothing_is_heard_after_close(make_bus):
    closing, staying = await make_bus(), await make_bus()
    gone: list[str] = []
    kept: list[str] = []
    await closing.start(gone.append, lambda: None)
    await staying.start(kept.append, lambda: None)
    await closing.close()
    await staying.send(["after the close"])
    assert await _heard(kept, 1) == ["after the close"]
    assert gone == []
