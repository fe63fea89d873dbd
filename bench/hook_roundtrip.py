"""The hook round trip alone: `python -m bench.hook_roundtrip [--calls 5000] [--duration 3]`.

The demo's posts.before_create through a real WorkerPool (2 workers, as on this machine), with no gateway,
network or database around it: what one call costs in latency, and in the gateway process's own CPU (the part
that competes with serving requests). bench.run measures the same hook inside records.create, where PostgreSQL
and the shared cores blur it; this isolates it.
"""
from __future__ import annotations

import argparse
import asyncio
import math
import time
from pathlib import Path

import uvloop

from hapta.hooks.service import HOOK_WORKERS
from hapta.workers.messages import Who
from hapta.workers.pool import WorkerPool

ROOT = Path(__file__).resolve().parent.parent
WHO = Who("u1", "user", "records.create", "posts", "127.0.0.1")
DATA = {"author": "u1", "text": "  bench post  ", "public": False}


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


async def no_database(query: str, *params):   # posts.before_create runs no SQL
    raise RuntimeError("unused")


async def run(args: argparse.Namespace) -> None:
    pool = WorkerPool(HOOK_WORKERS, ROOT / "rules", {"posts", "likes", "comments", "messages", "users"}, size=2,
                      timeout=1.0, queue_limit=1024)
    await pool.start()
    try:
        async def call() -> None:
            await pool.call("posts", "before_create", WHO, [dict(DATA)], no_database)

        for _ in range(500):   # warm-up: both workers hot
            await call()

        latencies = []
        cpu = time.process_time()
        for _ in range(args.calls):
            start = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - start)
        cpu = time.process_time() - cpu
        print(f"1 caller:    p50 {1e6 * percentile(latencies, 0.5):.0f} µs, p99 {1e6 * percentile(latencies, 0.99):.0f} µs,"
              f" gateway CPU {1e6 * cpu / args.calls:.0f} µs a call")

        done, latencies, end = 0, [], time.perf_counter() + args.duration

        async def caller() -> None:
            nonlocal done
            while time.perf_counter() < end:
                start = time.perf_counter()
                await call()
                latencies.append(time.perf_counter() - start)
                done += 1

        cpu = time.process_time()
        await asyncio.gather(*(caller() for _ in range(100)))
        cpu = time.process_time() - cpu
        print(f"100 callers: {done / args.duration:.0f} calls/s, p50 {1e3 * percentile(latencies, 0.5):.2f} ms, "
              f"p99 {1e3 * percentile(latencies, 0.99):.2f} ms, gateway CPU {1e6 * cpu / done:.0f} µs a call")
    finally:
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="time the rule hook round trip alone")
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--duration", type=float, default=3.0)
    uvloop.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
