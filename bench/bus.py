"""How worker processes should hear the change feed: each LISTENing, or one listener fanning out through Redis.

    .venv/bin/python -m bench.bus            # ~20 s; needs the PostgreSQL and Redis of this machine

Both ways are measured from a committed NOTIFY to its arrival at K workers (K = 2, 8, 32 listeners, each its own
connection, all in this process so that one clock times them):
- "each LISTENs": every worker holds a LISTEN connection (what hapta does).
- "one + Redis": one listener receives the NOTIFY and PUBLISHes it to a Redis channel that the K workers SUBSCRIBE to.
Rows: p50/p99 latency of single notifications (one at a time), and the time for a burst of 2,000 to reach every
listener (throughput).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from bench.fanout import percentile
from tests.services import admin_dsn, create_database, drop_database

CHANNEL = "hapta_bench_bus"


async def each_listens(dsn: str, k: int, singles: int, burst: int) -> dict[str, Any]:
    arrivals: list[list[float]] = [[] for _ in range(k)]
    listeners = [await asyncpg.connect(dsn) for _ in range(k)]
    for i, conn in enumerate(listeners):
        await conn.add_listener(CHANNEL, lambda *_a, i=i: arrivals[i].append(time.perf_counter()))
    sender = await asyncpg.connect(dsn)
    try:
        return await _measure(lambda payload: sender.execute("SELECT pg_notify($1, $2)", CHANNEL, payload),
                              arrivals, singles, burst)
    finally:
        for conn in [sender, *listeners]:
            await conn.close()


async def one_plus_redis(dsn: str, redis_url: str, k: int, singles: int, burst: int) -> dict[str, Any]:
    arrivals: list[list[float]] = [[] for _ in range(k)]
    publisher = aioredis.from_url(redis_url)
    subscribers = []
    readers = []
    for i in range(k):
        pubsub = aioredis.from_url(redis_url).pubsub()
        await pubsub.subscribe(CHANNEL)
        subscribers.append(pubsub)

        async def read(pubsub=pubsub, i=i) -> None:
            async for message in pubsub.listen():
                if message["type"] == "message":
                    arrivals[i].append(time.perf_counter())
        readers.append(asyncio.ensure_future(read()))
    forwarding: set[asyncio.Task] = set()

    def forward(_conn, _pid, _channel, payload) -> None:
        task = asyncio.ensure_future(publisher.publish(CHANNEL, payload))
        forwarding.add(task)
        task.add_done_callback(forwarding.discard)
    listener = await asyncpg.connect(dsn)
    await listener.add_listener(CHANNEL, forward)
    sender = await asyncpg.connect(dsn)
    try:
        return await _measure(lambda payload: sender.execute("SELECT pg_notify($1, $2)", CHANNEL, payload),
                              arrivals, singles, burst)
    finally:
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        for pubsub in subscribers:
            await pubsub.aclose()
        await publisher.aclose()
        await sender.close()
        await listener.close()


async def _measure(send, arrivals: list[list[float]], singles: int, burst: int) -> dict[str, Any]:
    latencies = []
    payload = json.dumps({"t": "posts", "a": "update", "id": "abcdefghijklmno", "v": 2})
    for _ in range(singles):
        counts = [len(a) for a in arrivals]
        sent = time.perf_counter()
        await send(payload)
        deadline = sent + 5
        while any(len(a) == c for a, c in zip(arrivals, counts)) and time.perf_counter() < deadline:
            await asyncio.sleep(0)
        latencies += [a[-1] - sent for a in arrivals]
    counts = [len(a) for a in arrivals]
    started = time.perf_counter()
    for _ in range(burst):
        await send(payload)
    deadline = started + 30
    while any(len(a) < c + burst for a, c in zip(arrivals, counts)) and time.perf_counter() < deadline:
        await asyncio.sleep(0.001)
    drained = time.perf_counter() - started
    return {"p50_ms": round(1000 * percentile(latencies, 0.5), 3), "p99_ms": round(1000 * percentile(latencies, 0.99), 3),
            "burst_s": round(drained, 3), "burst_per_s": round(burst / drained)}


async def main(args: argparse.Namespace) -> None:
    admin = await admin_dsn()
    dsn = await create_database(admin)
    rows = []
    try:
        for k in args.listeners:
            rows.append(("each LISTENs", k, await each_listens(dsn, k, args.singles, args.burst)))
            rows.append(("one + Redis", k, await one_plus_redis(dsn, args.redis, k, args.singles, args.burst)))
            print(rows[-2], rows[-1], flush=True)
    finally:
        await drop_database(admin, dsn)
    print("| workers | way | p50 ms | p99 ms | burst of %d: s to reach all | notifications/s |" % args.burst)
    print("|---|---|---|---|---|---|")
    for way, k, r in rows:
        print(f"| {k} | {way} | {r['p50_ms']} | {r['p99_ms']} | {r['burst_s']} | {r['burst_per_s']:,} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--listeners", type=int, nargs="+", default=[2, 8, 32])
    parser.add_argument("--singles", type=int, default=200)
    parser.add_argument("--burst", type=int, default=2000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    import uvloop
    uvloop.run(main(parser.parse_args()))
