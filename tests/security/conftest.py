"""What the security suite shares: a gateway of its own on a database of its own, seeded large enough that an
expensive query really is expensive (the attacks here must be able to hurt, or their bounds prove nothing)."""
from __future__ import annotations

import asyncio
import secrets
import time
from typing import Awaitable, Callable

import asyncpg
import pytest
import pytest_asyncio

from tests.conftest import PASSWORD
from tests.gateway.guards.conftest import start_gateway, stop_gateway
from tests.services import GatewayProcess, create_database, drop_database

SEEDED_POSTS = 50_000


@pytest_asyncio.fixture(scope="package")
async def big_database(pg_admin):
    dsn = await create_database(pg_admin)
    yield dsn
    await drop_database(pg_admin, dsn)


async def seed(dsn: str) -> str:
    """SEEDED_POSTS public posts by one author (straight in SQL, as an import would); the author's id."""
    conn = await asyncpg.connect(dsn)
    try:
        author = await conn.fetchval("INSERT INTO users (email, username) VALUES ($1, $2) RETURNING id",
                                     f"seed-{secrets.token_hex(4)}@example.com", "seed" + secrets.token_hex(4))
        await conn.execute("ALTER TABLE posts DISABLE TRIGGER hapta_changes_insert")   # not 50,000 changes
        await conn.execute("""
            INSERT INTO posts (author, text, public)
            SELECT $1, 'seeded post number ' || n || ' ' || md5(n::text), true FROM generate_series(1, $2) AS n""",
                           author, SEEDED_POSTS)
        await conn.execute("ALTER TABLE posts ENABLE TRIGGER hapta_changes_insert")
        await conn.execute("ANALYZE posts")
        return author
    finally:
        await conn.close()


def start(tmp_path_factory, dsn: str, body: str | None = None) -> GatewayProcess:
    """A gateway of the demo app (or of `body`, a config.py as tests.services.write_app takes it)."""
    return start_gateway(tmp_path_factory, dsn, body)


stop = stop_gateway


# The demo app with realtime.subscribe's rate limit out of the way: what a test meets is the quota it is about
# (at the default 20 a second, 2,000 subscriptions take an attacker a minute and a half; the quota holds anyway).
OPEN_SUBSCRIBE = """
    import dataclasses, runpy
    from hapta.config import Limit
    demo = runpy.run_path(APP + "/config.py")["app"]
    app = dataclasses.replace(demo, limits={**demo.limits, "realtime.subscribe": Limit(100_000, per=1)})
"""


@pytest.fixture(scope="package")
def attacked(tmp_path_factory, big_database):
    """The demo app (subscriptions not rate-limited), on the big database."""
    process = start(tmp_path_factory, big_database, OPEN_SUBSCRIBE)
    yield process
    stop(process)


@pytest_asyncio.fixture(scope="package")
async def seeded(attacked, big_database) -> str:
    return await seed(big_database)


async def register(client) -> dict:
    name = "x" + secrets.token_hex(5)
    return await client.call("auth.register", {"email": f"{name}@example.com", "password": PASSWORD,
                                               "username": name})


async def worst_while(probe: Callable[[], Awaitable[object]], busy: Callable[[], bool], least: int = 20,
                      pace: float = 0.005) -> float:
    """The slowest of `probe`'s latencies, in seconds, timed one after another while `busy()` holds (and at least
    `least` times), starting one every `pace` seconds at most (a client, not a flood). The worst case, not a
    percentile: one stall of seconds among hundreds of quick answers is exactly what an attack achieves."""
    latencies: list[float] = []
    while busy() or len(latencies) < least:
        started = time.perf_counter()
        await probe()
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(max(0.0, pace - latencies[-1]))
    return max(latencies)
