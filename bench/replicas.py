"""Read replicas (DATABASE_REPLICA_URLS): records.list cache misses with 0, 1 and 2 streaming standbys, side by
side in one run, and what proving a standby fresh costs.

    .venv/bin/python -m bench.replicas [--connections 16] [--seconds 8] [--posts 20000]

A throwaway primary and two asynchronous standbys of it (tests.services.PrivatePostgres; removed at the end, also
on failure), all on this machine. For each setup a gateway (one process, the demo app with its limits off) with
DATABASE_URL=primary and DATABASE_REPLICA_URLS naming 0, 1 or 2 standbys:
  1. `--connections` signed-in clients each send records.list one after the other, every one with a filter never
     asked before (a cache miss: a sequential scan of `--posts` posts), for `--seconds`; one more client creates
     posts as fast as it is answered all along, so that the primary's WAL position keeps moving and every read
     must wait for a standby to replay it; then again without the writer (the position stands still: the
     standbys' last samples prove them fresh at once);
  2. reads/s, p50/p99 latency, where the reads went and why (hapta_replica_reads_total) and the position queries
     the samplers ran per second (hapta_replica_samples_total), from the gateway's /metrics.
Then, without a gateway, the check alone: `Replicas.reader()` called by `--connections` tasks one after the other
for `--seconds` against the primary and one standby, under the same writes: its p50/p99 latency (what a read
waits before it runs) and the samplers' queries per second. Prints a markdown table and writes it to
bench/results/replicas.md.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import secrets
import shutil
import tempfile
import time
import urllib.request
from pathlib import Path

import asyncpg

from hapta.client import Client, HaptaError
from hapta.store.postgres import Database, create_pool
from hapta.store.replicas import PRIMARY_POSITION, REPLICA_POSITION, Position, Replica, Replicas, Sampler
from tests.conftest import ADMIN_KEY, PASSWORD, gateway_env
from tests.services import ROOT, GatewayProcess, PrivatePostgres, write_app

RESULTS = Path(__file__).resolve().parent / "results" / "replicas.md"

BENCH_APP = """
    import dataclasses, runpy
    from hapta.config import DEFAULT_LIMITS
    app = dataclasses.replace(runpy.run_path(APP + "/config.py")["app"], limits=dict.fromkeys(DEFAULT_LIMITS))
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def metric(process: GatewayProcess, name: str) -> dict[str, float]:
    """One counter of the gateway's /metrics, by its labels as written."""
    with urllib.request.urlopen(f"{process.http}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {labels: float(value) for labels, value in re.findall(rf"^{name}_total\{{(.*?)\}} (\S+)$", text, re.M)}


def difference(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {key: value - before.get(key, 0.0) for key, value in after.items() if value - before.get(key, 0.0)}


async def writer(client: Client, author: str, stop: asyncio.Event) -> int:
    n = 0
    while not stop.is_set():
        await client.call("records.create", {"collection": "posts", "data": {"author": author, "text": f"w{n}"}})
        n += 1
    return n


async def reader(client: Client, number: int, stop: asyncio.Event, latencies: list[float], errors: list[str]):
    n = 0
    while not stop.is_set():
        n += 1
        started = time.perf_counter()
        try:
            await client.call("records.list", {"collection": "posts", "per_page": 10,
                                               "filter": f'text = "miss {number} {n}"'})
        except HaptaError as error:
            errors.append(error.code)
            continue
        latencies.append(time.perf_counter() - started)


async def setup_run(process: GatewayProcess, connections: int, seconds: float, writing: bool) -> dict:
    admin = await Client.connect(process.url)
    await admin.call("auth.admin", {"key": ADMIN_KEY})
    clients = []
    for _ in range(connections):
        client = await Client.connect(process.url)
        name = "b" + secrets.token_hex(5)
        await client.call("auth.register", {"email": f"{name}@example.com", "password": PASSWORD,
                                            "username": name})
        clients.append(client)
    sql = await asyncpg.connect(process.env["DATABASE_URL"])
    try:
        author = await sql.fetchval("SELECT id FROM users LIMIT 1")
    finally:
        await sql.close()
    reads_before = await asyncio.to_thread(metric, process, "hapta_replica_reads")
    samples_before = await asyncio.to_thread(metric, process, "hapta_replica_samples")
    stop = asyncio.Event()
    latencies: list[float] = []
    errors: list[str] = []
    started = time.perf_counter()
    tasks = [asyncio.ensure_future(reader(client, i, stop, latencies, errors)) for i, client in enumerate(clients)]
    writes = asyncio.ensure_future(writer(admin, author, stop) if writing else asyncio.sleep(0, 0))
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks)
    written = await writes
    elapsed = time.perf_counter() - started
    reads = difference(await asyncio.to_thread(metric, process, "hapta_replica_reads"), reads_before)
    samples = difference(await asyncio.to_thread(metric, process, "hapta_replica_samples"), samples_before)
    for client in (admin, *clients):
        await client.close()
    return {"reads/s": len(latencies) / elapsed, "p50": percentile(latencies, 0.5) * 1000,
            "p99": percentile(latencies, 0.99) * 1000, "errors": len(errors), "writes/s": written / elapsed,
            "where": {re.sub(r'target="(\w+)",why="([\w ]+)"', r"\1: \2", k): v / elapsed for k, v in reads.items()},
            "samples/s": sum(samples.values()) / elapsed}


async def seed(dsn: str, posts: int) -> None:
    sql = await asyncpg.connect(dsn)
    try:
        author = await sql.fetchval("SELECT id FROM users LIMIT 1")
        await sql.execute("INSERT INTO posts (author, text, public) SELECT $1, 'seed ' || n, true "
                          "FROM generate_series(1, $2) AS n", author, posts)
    finally:
        await sql.close()


async def check_alone(primary: PrivatePostgres, standby: PrivatePostgres, connections: int,
                      seconds: float) -> dict:
    """Replicas.reader() alone, as each read calls it, under writes that keep the WAL moving."""
    pool = await create_pool(primary.dsn, min_size=1, max_size=2)
    replica_sampler = Sampler("replica", Position(standby.dsn, REPLICA_POSITION))
    primary_sampler = Sampler("primary", Position(primary.dsn, PRIMARY_POSITION))
    choice = Replicas(Database(pool), primary_sampler, [Replica("replica", None, replica_sampler)])
    writes = await asyncpg.connect(primary.dsn)
    await writes.execute("CREATE TABLE IF NOT EXISTS bench_replicas (n int)")
    stop = asyncio.Event()
    waits: list[float] = []
    fresh = [0]

    async def write() -> None:
        while not stop.is_set():
            await writes.execute("INSERT INTO bench_replicas VALUES (1)")

    async def ask() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            chosen = await choice.reader()
            waits.append(time.perf_counter() - started)
            fresh[0] += chosen is not None

    started = time.perf_counter()
    tasks = [asyncio.ensure_future(ask()) for _ in range(connections)] + [asyncio.ensure_future(write())]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    await writes.close()
    await choice.close()
    await pool.close()
    return {"checks/s": len(waits) / elapsed, "p50": percentile(waits, 0.5) * 1000,
            "p99": percentile(waits, 0.99) * 1000, "fresh": fresh[0] / max(1, len(waits)),
            "primary samples/s": primary_sampler.samples / elapsed,
            "replica samples/s": replica_sampler.samples / elapsed}


async def main(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="repl-bench-"))
    primary = PrivatePostgres().start()
    standbys: list[PrivatePostgres] = []
    rows = []
    try:
        standbys = [primary.standby() for _ in range(2)]
        config = write_app(folder / "app", BENCH_APP, app=ROOT)
        seeded = False
        for count in (0, 1, 2):
            env = gateway_env(primary.dsn, DATABASE_REPLICA_URLS=",".join(s.dsn for s in standbys[:count]))
            process = GatewayProcess(env, config=config).start()
            try:
                if not seeded:   # the tables exist once a gateway has migrated; an author exists once one registered
                    client = await Client.connect(process.url)
                    await client.call("auth.register", {"email": "seed@example.com", "password": PASSWORD,
                                                        "username": "seed"})
                    await client.close()
                    await seed(primary.dsn, args.posts)
                    seeded = True
                for writing in (True, False):
                    rows.append((count, writing, await setup_run(process, args.connections, args.seconds, writing)))
                    print(count, writing, rows[-1][2], flush=True)
            finally:
                process.stop()
        alone = await check_alone(primary, standbys[0], args.connections, args.seconds)
    finally:
        for server in (*standbys, primary):
            server.remove()
        shutil.rmtree(folder, ignore_errors=True)

    lines = [f"records.list cache misses (a sequential scan of {args.posts} posts each), {args.connections} "
             f"connections, {args.seconds:g} s per setup, with one writer beside and without; {os.cpu_count()} cores "
             f"({platform.processor() or platform.machine()}), the gateway, the primary, the standbys and the "
             f"clients all on them.", "",
             "| replicas | reads/s | p50 ms | p99 ms | errors | writes/s | where the reads went (/s) | "
             "position samples/s |", "|---|---|---|---|---|---|---|---|"]
    for count, _, row in rows:
        where = ", ".join(f"{key} {value:.0f}" for key, value in sorted(row["where"].items())) or "primary (no check)"
        lines.append(f"| {count} | {row['reads/s']:.0f} | {row['p50']:.1f} | {row['p99']:.1f} | {row['errors']} | "
                     f"{row['writes/s']:.0f} | {where} | {row['samples/s']:.0f} |")
    lines += ["", f"The position check alone (`Replicas.reader()`, {args.connections} tasks one after the other, "
              "one standby, a writer committing all along):", "",
              "| checks/s | p50 ms | p99 ms | proven fresh | primary samples/s | replica samples/s |",
              "|---|---|---|---|---|---|",
              f"| {alone['checks/s']:.0f} | {alone['p50']:.2f} | {alone['p99']:.2f} | {alone['fresh']:.0%} | "
              f"{alone['primary samples/s']:.0f} | {alone['replica samples/s']:.0f} |"]
    table = "\n".join(lines)
    print(table)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(table + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--posts", type=int, default=20000)
    asyncio.run(main(parser.parse_args()))
