"""What one rate-limit check costs: the pure arithmetic, the in-process store, and Redis (one Lua call).

    .venv/bin/python -m bench.limits            # ~10 s; REDIS_URL (default redis://127.0.0.1:6379/0)

Prints a markdown table. Keys are spread over 10,000 principals, as a busy gateway would see them; the Redis keys
use a prefix of their own and are deleted at the end.
"""
from __future__ import annotations

import asyncio
import os
import secrets
import time

import redis.asyncio

from hapta.config import Limit
from hapta.limits import Limiter
from hapta.limits.gcra import Rate, decide
from hapta.limits.stores import LocalStore

LIMIT = Limit(10, per=1, burst=20)
PRINCIPALS = 10_000


def per_op(seconds: float, count: int) -> str:
    return f"{seconds / count * 1e6:.2f} µs"


def bench_pure(count: int = 200_000) -> tuple[str, str]:
    rate, now, tats = Rate.of(10, 1, 20), time.time_ns() // 1000, {}
    started = time.perf_counter()
    for i in range(count):
        key = i % PRINCIPALS
        new_tat, _ = decide(tats.get(key), now + i, rate)
        if new_tat is not None:
            tats[key] = new_tat
    elapsed = time.perf_counter() - started
    return per_op(elapsed, count), f"{count / elapsed:,.0f}"


def bench_local(count: int = 200_000) -> tuple[str, str]:
    store, rate = LocalStore(), Rate.of(10, 1, 20)
    started = time.perf_counter()
    for i in range(count):
        store.decide(f"records.create|user:{i % PRINCIPALS}", rate)
    elapsed = time.perf_counter() - started
    return per_op(elapsed, count), f"{count / elapsed:,.0f}"


async def bench_limiter_local(count: int = 100_000) -> tuple[str, str]:
    limiter = Limiter({"records.create": LIMIT})
    started = time.perf_counter()
    for i in range(count):
        await limiter.check(f"records.create|user:{i % PRINCIPALS}", LIMIT)
    elapsed = time.perf_counter() - started
    return per_op(elapsed, count), f"{count / elapsed:,.0f}"


async def bench_redis(url: str, prefix: str, concurrency: int, count: int) -> tuple[str, str]:
    limiter = Limiter({"records.create": LIMIT}, url, prefix=prefix)
    try:
        await limiter.check("warm|up", LIMIT)   # connect and load the script first

        async def worker(offset: int) -> list[float]:
            latencies = []
            for i in range(offset, count, concurrency):
                started = time.perf_counter()
                await limiter.check(f"records.create|user:{i % PRINCIPALS}", LIMIT)
                latencies.append(time.perf_counter() - started)
            return latencies
        started = time.perf_counter()
        latencies = sorted(x for part in await asyncio.gather(*(worker(k) for k in range(concurrency))) for x in part)
        elapsed = time.perf_counter() - started
        p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
        return f"{p50 * 1e6:.0f} µs (p99 {p99 * 1e6:.0f} µs)", f"{count / elapsed:,.0f}"
    finally:
        await limiter.close()


async def main() -> None:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    prefix = f"hapta-bench-{secrets.token_hex(4)}:"
    rows = [("gcra.decide (pure arithmetic)", *bench_pure()),
            ("LocalStore.decide (TLRU dict)", *bench_local()),
            ("Limiter.check, no REDIS_URL", *await bench_limiter_local())]
    try:
        for concurrency in (1, 64):
            rows.append((f"Limiter.check, Redis, {concurrency} in flight",
                         *await bench_redis(url, prefix, concurrency, 20_000)))
    finally:
        client = redis.asyncio.Redis.from_url(url)
        keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()
    print("| check | time per check | checks/s |\n|---|---|---|")
    for name, latency, rate in rows:
        print(f"| {name} | {latency} | {rate} |")


if __name__ == "__main__":
    try:
        import uvloop
        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
