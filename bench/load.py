"""One benchmark case in its own process: N connections, each a closed loop of `call` -> reply -> next call.

    python -m bench.load --url ws://127.0.0.1:PORT/ws --case records.get --connections 100 --seed seed.json

Prints one JSON line: ops/s and latency percentiles over the measured window, errors, and the CPU each side used
in that window (this process, the server process, and the PostgreSQL backends of the bench database), so that a
saturated load generator shows up instead of passing for a slow server.

It runs apart from bench.run so that the load generator never shares an event loop (or a GIL) with a server.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import time
from collections import Counter
from typing import Any, Callable

import psutil
import uvloop

from hapta.client import Client, HaptaError

CASES = ("echo", "ping", "records.get", "records.list", "records.list+expand", "records.create", "functions.call")


def request_maker(case: str, user: dict[str, str], posts: list[str]) -> Callable[[], tuple[str, dict[str, Any]]]:
    """What a connection sends, again and again. Each call draws anew, so reads are spread over the seeded posts."""
    if case == "echo":
        # The same shape and size as a records.get request: the echo server returns it as data.
        return lambda: ("echo", {"collection": "posts", "id": random.choice(posts)})
    if case == "ping":
        return lambda: ("ping", {})
    if case == "records.get":
        return lambda: ("records.get", {"collection": "posts", "id": random.choice(posts)})
    if case == "records.list":
        return lambda: ("records.list", {"collection": "posts", "filter": "public = true", "per_page": 20})
    if case == "records.list+expand":
        return lambda: ("records.list", {"collection": "posts", "filter": "public = true", "per_page": 20,
                                         "expand": ["author"]})
    if case == "records.create":
        # Private posts: the public feed that records.list reads stays the seeded one, whatever ran before.
        return lambda: ("records.create", {"collection": "posts",
                                           "data": {"author": user["id"], "text": "bench post", "public": False}})
    if case == "functions.call":
        # bench.functions' app: `echo` returns its args (a round trip to a function worker and back)
        return lambda: ("functions.call", {"name": "echo", "args": {"n": 1}})
    raise ValueError(case)


class Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []      # seconds, of calls that completed inside the measured window
        self.errors: Counter[str] = Counter()  # "CODE: message" -> count, over the whole run (warm-up included)

    def error(self, text: str) -> None:
        self.errors[text] += 1


async def worker(client: Client, make: Callable, window: tuple[float, float], stats: Stats) -> None:
    start, end = window
    while time.perf_counter() < end:
        op, args = make()
        sent = time.perf_counter()
        try:
            await client.call(op, args)
        except HaptaError as exc:
            stats.error(f"{exc.code}: {exc}")
            continue
        except ConnectionError as exc:   # this connection is gone; its loop ends, the error is reported
            stats.error(f"connection lost: {exc}")
            return
        done = time.perf_counter()
        if start <= done <= end:
            stats.latencies.append(done - sent)


class CpuMeter:
    """CPU seconds used by this process, the server process, its children (rule workers) and the bench
    database's PostgreSQL backends."""

    def __init__(self, server_pid: int | None, database: str | None):
        self.server = psutil.Process(server_pid) if server_pid else None
        self.database = database

    def _postgres(self) -> dict[int, float]:
        # A backend's process title names its database: "postgres: postgres hapta_test_ab12 127.0.0.1(5678) idle".
        found = {}
        if not self.database:
            return found
        for proc in psutil.process_iter(["name", "cmdline", "cpu_times"]):
            try:
                title = " ".join(proc.info["cmdline"] or ())
                if proc.info["name"] == "postgres" and f" {self.database} " in title:
                    found[proc.pid] = proc.info["cpu_times"].user + proc.info["cpu_times"].system
            except (psutil.Error, TypeError, AttributeError):
                continue
        return found

    def _children(self) -> dict[int, float]:
        # A gateway's rule workers do part of its work, in processes of their own.
        found: dict[int, float] = {}
        if self.server is None:
            return found
        for proc in self.server.children(recursive=True):
            try:
                times = proc.cpu_times()
            except psutil.Error:
                continue
            found[proc.pid] = times.user + times.system
        return found

    def snapshot(self) -> tuple[float, float, float, dict[int, float], dict[int, float]]:
        server = 0.0
        if self.server is not None:
            times = self.server.cpu_times()
            server = times.user + times.system
        return time.perf_counter(), time.process_time(), server, self._children(), self._postgres()

    @staticmethod
    def percent(first, last) -> dict[str, float]:
        """Percent of one core between two snapshots (200 = both cores of this machine)."""
        wall = last[0] - first[0]
        children = sum(last[3][pid] - first[3][pid] for pid in last[3] if pid in first[3])
        postgres = sum(last[4][pid] - first[4][pid] for pid in last[4] if pid in first[4])
        return {"load": round(100 * (last[1] - first[1]) / wall, 1),
                "server": round(100 * (last[2] - first[2]) / wall, 1),
                "children": round(100 * children / wall, 1),
                "postgres": round(100 * postgres / wall, 1)}


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))]


async def open_client(url: str, case: str, user: dict[str, str], number: int) -> Client:
    # Each connection from a loopback address of its own, as devices are: what the gateway bounds per client address
    # (its share of the database pool, rate limits of guests) then couples no two of them.
    client = await Client.connect(url, local_addr=(f"127.3.{number // 250}.{number % 250 + 1}", 0))
    if case != "echo":   # the echo server knows no auth; on the gateway each connection is its own signed-in user
        await client.call("auth.resume", {"token": user["token"]})
    return client


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with open(args.seed) as file:
        seed = json.load(file)
    users, posts = seed["users"], seed["posts"]
    stats = Stats()
    meter = CpuMeter(args.server_pid, args.database)

    # Connect and sign in everyone before the clock starts: setup is not what we measure.
    clients = await asyncio.gather(*(open_client(args.url, args.case, users[i % len(users)], i)
                                     for i in range(args.connections)))
    try:
        now = time.perf_counter()
        window = (now + args.warmup, now + args.warmup + args.duration)
        tasks = [asyncio.ensure_future(worker(client, request_maker(args.case, users[i % len(users)], posts),
                                              window, stats))
                 for i, client in enumerate(clients)]
        await asyncio.sleep(args.warmup)
        first = meter.snapshot()
        await asyncio.sleep(window[1] - time.perf_counter())
        last = meter.snapshot()
        # Each loop ends after its call in flight; one that never answers must not hold the run.
        _, stuck = await asyncio.wait(tasks, timeout=10)
        for task in stuck:
            task.cancel()
        if stuck:
            stats.error(f"no reply within 10 s after the end ({len(stuck)} connections)")
    finally:
        await asyncio.wait([asyncio.ensure_future(c.close()) for c in clients], timeout=10)

    latencies = sorted(stats.latencies)
    ms = lambda value: None if value is None else round(value * 1000, 3)  # noqa: E731
    return {"case": args.case, "connections": args.connections, "ops": len(latencies),
            "ops_per_s": round(len(latencies) / args.duration, 1),
            "p50_ms": ms(percentile(latencies, 0.50)), "p99_ms": ms(percentile(latencies, 0.99)),
            "errors": sum(stats.errors.values()), "error_samples": [e for e, _ in stats.errors.most_common(3)],
            "cpu": CpuMeter.percent(first, last)}


def main() -> None:
    parser = argparse.ArgumentParser(description="run one benchmark case and print one JSON line")
    parser.add_argument("--url", required=True)
    parser.add_argument("--case", required=True, choices=CASES)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--seed", required=True, help="JSON file from bench.run: users (id, token) and post ids")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--server-pid", type=int, help="the server process, to measure its CPU")
    parser.add_argument("--database", help="the bench database, to measure its PostgreSQL backends' CPU")
    args = parser.parse_args()
    print(json.dumps(uvloop.run(run(args))), flush=True)


if __name__ == "__main__":
    main()
