"""The limiter on a real Redis: the Lua script computes what gcra.py computes, limiters in different workers share
one budget exactly, and a Redis that dies and comes back costs no request and heals by itself."""
from __future__ import annotations

import asyncio
import logging
import random
import time

import pytest

from hapta.config import Limit
from hapta.limits import Limiter
from hapta.limits.gcra import Rate, decide
from hapta.limits.stores import RedisStore
from hapta.protocol.errors import HaptaError

SCARCE = {"records.create": Limit(5, per=3600)}   # refills once in 12 minutes: counts are exact within a test


async def test_the_lua_script_computes_what_python_computes(redis_url, prefix):
    store = RedisStore(redis_url, prefix)
    rng = random.Random(42)
    try:
        for rate in (Rate.of(5, per=60), Rate.of(10, per=1, burst=20), Rate.of(7, per=3.3, burst=3)):
            key, tat, now = f"lua|{rate}", None, time.time_ns() // 1000
            for _ in range(300):
                now += rng.choice((0, 0, 1, rng.randrange(rate.interval), rng.randrange(3 * rate.interval)))
                cost = rng.choice((1, 1, 1, 0, min(2, rate.burst)))
                new_tat, expected = decide(tat, now, rate, cost)
                tat = new_tat if new_tat is not None else tat
                assert await store.decide(key, rate, cost, now=now) == expected
    finally:
        await store.close()


async def test_limiters_in_two_workers_share_one_budget_exactly(redis_url, prefix):
    workers = [Limiter(SCARCE, redis_url, prefix=prefix) for _ in range(2)]
    try:
        async def attempt(i: int) -> bool:
            try:
                await workers[i % 2].enforce("records.create", "user:shared")
                return True
            except HaptaError as error:
                assert error.code == "RATE_LIMITED" and 0 < error.retry_after <= 720
                return False
        passed = await asyncio.gather(*(attempt(i) for i in range(5 + 5)))
        assert sum(passed) == 5
        for worker in workers:
            assert (await worker.status("records.create", "user:shared")).remaining == 0
    finally:
        for worker in workers:
            await worker.close()


async def spend(limiter: Limiter, who: str, times: int) -> list[str]:
    """Each attempt's outcome: OK or the error code."""
    outcomes = []
    for _ in range(times):
        try:
            await limiter.enforce("records.create", who)
            outcomes.append("OK")
        except HaptaError as error:
            outcomes.append(error.code)
    return outcomes


async def until_shared(a: Limiter, b: Limiter, deadline: float = 30) -> None:
    """Poll (bounded) until a key spent through `a` shows through `b`: both talk to Redis again."""
    end = time.monotonic() + deadline
    probe = 0
    while time.monotonic() < end:
        probe += 1
        key = f"probe|{probe}"
        try:
            await a.check(key, Limit(5, per=3600))
            if (await b.check(key, Limit(5, per=3600), cost=0)).remaining == 4 and \
                    (await a.check(key, Limit(5, per=3600), cost=0)).remaining == 4:
                return
        except HaptaError as error:   # fallback="refuse" answers UNAVAILABLE until its next try succeeds
            assert error.code == "UNAVAILABLE"
        await asyncio.sleep(0.2)
    raise AssertionError("the limiters did not share Redis again in time")


async def test_redis_outage_falls_back_to_local_limits_and_heals(own_redis, prefix, caplog):
    caplog.set_level(logging.WARNING, logger="hapta.limits")
    a, b = (Limiter(SCARCE, own_redis.url, prefix=prefix) for _ in range(2))
    try:
        assert await spend(a, "user:1", 3) == ["OK"] * 3
        assert (await b.status("records.create", "user:1")).remaining == 2            # shared

        await asyncio.to_thread(own_redis.stop)
        # every request is answered, and limits still hold: each process counts on its own
        assert await spend(a, "user:1", 7) == ["OK"] * 5 + ["RATE_LIMITED"] * 2
        assert await spend(b, "user:1", 7) == ["OK"] * 5 + ["RATE_LIMITED"] * 2
        down = [r for r in caplog.records if "Redis is unavailable" in r.getMessage()]
        assert len(down) == 2 and "kept in this process" in down[0].getMessage()    # once per limiter
        assert own_redis.url not in caplog.text

        await asyncio.to_thread(own_redis.start)                                     # comes back empty
        await until_shared(a, b)
        assert await spend(a, "user:2", 4) == ["OK"] * 4
        assert await spend(b, "user:2", 3) == ["OK", "RATE_LIMITED", "RATE_LIMITED"]  # one budget again
        assert len([r for r in caplog.records if "Redis answers again" in r.getMessage()]) == 2
        assert len([r for r in caplog.records if "Redis is unavailable" in r.getMessage()]) == 2
    finally:
        await a.close()
        await b.close()


async def test_redis_outage_refuses_when_configured(own_redis, prefix, caplog):
    caplog.set_level(logging.WARNING, logger="hapta.limits")
    limiter = Limiter(SCARCE, own_redis.url, prefix=prefix, fallback="refuse")
    other = Limiter(SCARCE, own_redis.url, prefix=prefix)
    try:
        assert await spend(limiter, "user:1", 1) == ["OK"]
        await asyncio.to_thread(own_redis.stop)
        with pytest.raises(HaptaError) as refused:
            await limiter.enforce("records.create", "user:1")
        assert refused.value.code == "UNAVAILABLE" and refused.value.retry_after > 0
        assert await spend(limiter, "user:1", 3) == ["UNAVAILABLE"] * 3
        assert await Limiter({}, own_redis.url, fallback="refuse").enforce("ping", "addr:x") is None  # unlimited
        assert "refuse requests" in caplog.text
        await asyncio.to_thread(own_redis.start)
        await until_shared(limiter, other)
        assert await spend(limiter, "user:1", 1) == ["OK"]
    finally:
        await limiter.close()
        await other.close()
