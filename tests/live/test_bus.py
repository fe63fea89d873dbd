"""The Bus contract (hapta/live/bus.py), held against each implementation on its real engine: PostgreSQL's
NOTIFY through a Listener, and Redis pub/sub (one server, and a master found through Sentinel). Two buses stand for
two gateway processes."""
from __future__ import annotations

import asyncio
import secrets
import shutil
from typing import Awaitable, Callable

import pytest

from hapta.live.bus import Bus, BusDown, PostgresBus, RedisBus
from hapta.store.listener import Listener
from hapta.store.postgres import Database, create_pool
from tests.services import LOCAL_REDIS, RedisSentinels, RedisServer, redis_answers

Make = Callable[[], Awaitable[Bus]]


@pytest.fixture(scope="module")
def sentinels():
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server; it runs Sentinel too)")
    group = RedisSentinels().start()
    yield group
    group.stop()


@pytest.fixture(params=["postgres", "redis", "sentinel"])
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
    elif request.param == "sentinel":
        url = request.getfixturevalue("sentinels").url
    prefix = f"hapta-test-{secrets.token_hex(4)}:"

    async def make() -> Bus:
        if request.param in ("redis", "sentinel"):
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


async def test_a_redis_bus_follows_the_master_sentinel_promotes():
    """The master dies: sends are refused (BusDown) until the sentinels have promoted the replica, then both buses
    reach it by themselves, each subscribed again and telling its process that notices may have been lost."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server; it runs Sentinel too)")
    group = await asyncio.to_thread(RedisSentinels().start)
    prefix = f"hapta-test-{secrets.token_hex(4)}:"
    one, other = RedisBus(group.url, prefix), RedisBus(group.url, prefix)
    heard: list[str] = []
    missed = {"one": 0, "other": 0}
    try:
        await one.start(lambda _: None, lambda: missed.__setitem__("one", missed["one"] + 1))
        await other.start(heard.append, lambda: missed.__setitem__("other", missed["other"] + 1))
        await one.send(["before"])
        assert await _heard(heard, 1) == ["before"]
        old = await asyncio.to_thread(group.kill_master)
        await asyncio.to_thread(group.wait_for_failover, old, 30)
        deadline = asyncio.get_running_loop().time() + 20
        n = 0
        while not (any(payload.startswith("after") for payload in heard) and missed["one"]):
            assert asyncio.get_running_loop().time() < deadline, heard
            n += 1
            try:   # refused while the breaker waits; sent but unheard while the other is not subscribed yet
                await one.send([f"after {n}"])
            except BusDown:
                pass
            await asyncio.sleep(0.1)
        assert missed == {"one": 1, "other": 1}
    finally:
        await one.close()
        await other.close()
        group.stop()
