"""Redis dies under two gateway processes and comes back: every request is still answered, limits hold per
process meanwhile, and the processes share one budget again by themselves. (A module of its own, so that the
processes of test_gateway.py are gone before these start: a full test run must stay within PostgreSQL's
connection limit.)"""
from __future__ import annotations

import asyncio
import time

from tests.conftest import gateway_env
from tests.limits.wire import N, SCARCE_POSTS, new_post, outcomes, register, sample, scrape, start_all, stop_all
from tests.services import GatewayProcess, write_app


async def test_redis_outage_over_the_wire(tmp_path, database, clients, own_redis):
    redis = own_redis
    config = write_app(tmp_path / "app", SCARCE_POSTS)
    env = gateway_env(database, REDIS_URL=redis.url, HAPTA_REDIS_PREFIX="hapta-test-outage:")
    processes = [GatewayProcess(env, config=config) for _ in range(2)]
    try:
        start_all(processes)
        a, b = await clients(processes[0]), await clients(processes[1])
        session = await register(a)
        await b.call("auth.resume", {"token": session["token"]})
        assert all(isinstance(r, dict) for r in await outcomes(a, [new_post(session) for _ in range(3)]))
        assert (await b.call("limits.status", {"op": "records.create:posts"}))["remaining"] == N - 3

        await asyncio.to_thread(redis.stop)
        # every request still gets its answer; each process now counts on its own, from a fresh budget
        on_a = await outcomes(a, [new_post(session) for _ in range(N + 2)] + [("ping", None)])
        assert sum(isinstance(r, dict) for r in on_a[:-1]) == N and on_a.count("RATE_LIMITED") == 2, on_a
        assert "time" in on_a[-1]
        on_b = await outcomes(b, [new_post(session) for _ in range(N + 1)])
        assert sum(isinstance(r, dict) for r in on_b) == N and on_b.count("RATE_LIMITED") == 1
        for process in processes:
            status, _, text = await asyncio.to_thread(scrape, process)
            assert sample(text, "hapta_limiter_redis_down") == 1
            assert sample(text, "hapta_upstream_errors_total", upstream="redis") >= 1

        await asyncio.to_thread(redis.start)      # back, and empty
        deadline = time.monotonic() + 30
        while True:   # each status call lets a process try Redis again once its backoff has passed
            for client in (a, b):
                await client.call("limits.status", {"op": "records.create:posts"})
            scraped = [await asyncio.to_thread(scrape, process) for process in processes]
            if all(sample(text, "hapta_limiter_redis_down") == 0 for _, _, text in scraped):
                break
            assert time.monotonic() < deadline, "the gateways did not go back to Redis"
            await asyncio.sleep(0.2)
        fresh = await register(a)
        await b.call("auth.resume", {"token": fresh["token"]})
        burst = await asyncio.gather(outcomes(a, [new_post(fresh) for _ in range(8)]),
                                     outcomes(b, [new_post(fresh) for _ in range(7)]))
        assert sum(isinstance(r, dict) for side in burst for r in side) == N   # shared again, exactly
    finally:
        stop_all(processes)
    for process in processes:
        log = process.log_text()
        assert log.count("Redis is unavailable") == 1 and log.count("Redis answers again") == 1, log
        assert redis.url not in log
