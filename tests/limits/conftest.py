"""Redis for the limiter tests: the one on 127.0.0.1:6379 when it answers, else a private redis-server. Every test
gets its own key prefix, and what a run wrote is deleted at the end."""
from __future__ import annotations

import secrets

import pytest
import pytest_asyncio
import redis.asyncio

from hapta.client import Client
from tests.services import LOCAL_REDIS, GatewayProcess, RedisServer, next_loopback, redis_answers

RUN_PREFIX = f"hapta-test-{secrets.token_hex(4)}:"


@pytest_asyncio.fixture(scope="session")
async def redis_url():
    if redis_answers(*LOCAL_REDIS):
        url, server = f"redis://{LOCAL_REDIS[0]}:{LOCAL_REDIS[1]}/0", None
    else:
        server = RedisServer().start()
        url = server.url
    yield url
    client = redis.asyncio.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=RUN_PREFIX + "*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
        if server is not None:
            server.stop()


@pytest.fixture
def prefix() -> str:
    return f"{RUN_PREFIX}{secrets.token_hex(3)}:"


@pytest.fixture
def own_redis():
    """A redis-server of this test's own, which it may stop and start again (never the shared one)."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
async def clients():
    """clients(process) -> a Client from an address of its own; all closed after the test."""
    opened: list[Client] = []

    async def make(process: GatewayProcess, address: str | None = None) -> Client:
        client = await Client.connect(process.url, local_addr=(address or next_loopback(), 0))
        opened.append(client)
        return client
    yield make
    for client in opened:
        await client.close()
