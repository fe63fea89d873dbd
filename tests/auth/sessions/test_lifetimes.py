"""Sessions end by time: an absolute lifetime and an inactivity timeout (Sessions on the real database)."""
from __future__ import annotations

import asyncio
import secrets

import asyncpg
import pytest

from hapta.auth.sessions import Policy, Sessions
from hapta.protocol.errors import HaptaError


@pytest.fixture
async def pool(pair, database):   # `pair` has migrated the database
    pool = await asyncpg.create_pool(database, min_size=1, max_size=2)
    yield pool
    await pool.close()


async def new_user(pool) -> str:
    name = "t" + secrets.token_hex(5)
    return await pool.fetchval("INSERT INTO users (email) VALUES ($1) RETURNING id", f"{name}@example.com")


async def code_of(coroutine) -> str:
    with pytest.raises(HaptaError) as refused:
        await coroutine
    return refused.value.code


async def test_a_session_ends_at_its_absolute_lifetime(pool):
    sessions = Sessions(pool, Policy(lifetime=1.0, idle_timeout=3600, reuse_interval=10))
    user = await new_user(pool)
    session_id, token = await sessions.start(user)
    token = (await sessions.refresh(token)).refresh_token   # in use, and still it ends
    assert await sessions.alive(session_id, user)
    await asyncio.sleep(1.2)   # the configured lifetime must pass: that is what is tested
    assert await code_of(sessions.refresh(token)) == "TOKEN_EXPIRED"
    assert await sessions.alive(session_id, user) is None


async def test_an_unused_session_ends_after_the_idle_timeout_and_use_keeps_it(pool):
    sessions = Sessions(pool, Policy(lifetime=3600, idle_timeout=1.0, reuse_interval=10))
    user = await new_user(pool)
    _, idle_token = await sessions.start(user)
    busy_id, busy_token = await sessions.start(user)
    for _ in range(3):   # refreshed every 0.5 s: never idle for a whole second
        await asyncio.sleep(0.5)
        busy_token = (await sessions.refresh(busy_token)).refresh_token
    assert await code_of(sessions.refresh(idle_token)) == "TOKEN_EXPIRED"
    assert (await sessions.refresh(busy_token)).session_id == busy_id


async def test_sweep_forgets_long_dead_sessions(pool):
    sessions = Sessions(pool, Policy(lifetime=3600, idle_timeout=3600, reuse_interval=10))
    user = await new_user(pool)
    dead, token = await sessions.start(user)
    await pool.execute("UPDATE hapta.sessions SET expires_at = now() - interval '2 days' WHERE id = $1", dead)
    assert await sessions.sweep() >= 1
    assert await pool.fetchval("SELECT count(*) FROM hapta.sessions WHERE id = $1", dead) == 0
    assert await code_of(sessions.refresh(token)) == "TOKEN_INVALID"
