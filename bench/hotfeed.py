"""A hot feed: 1,000 clients reading the same public page; requests/s and the share of reads reaching PostgreSQL.

    .venv/bin/python -m bench.hotfeed                 # ~1 minute
    .venv/bin/python -m bench.hotfeed --clients 200 --duration 5

A fresh database, two `hapta serve` processes on it, 100 public posts, and 1,000 signed-in users (distinct ids),
half connected to each gateway, each in a closed loop of `records.list {collection: posts, filter: "public = true",
per_page: 20}` (every client its own user: the list rule reads @user.id, the filter implies it, so all share one
cache entry). Two rows: no writes, and a writer updating a post of the page 5 times a second (each update
invalidates the page in both workers). "reached PostgreSQL" counts the reads each gateway answered with a query
(its counter hapta_cache_reads_total{result="load"}); the barrier column counts the `SELECT 1` round trips of the
feed's barrier (hapta_feed_barriers_total: reads served from memory first make sure they heard every committed
change; many reads share one) per read. Both come from the gateways' /metrics.
Load runs in two processes of its own (bench.hotfeed --role load).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import asyncpg

from bench.fanout import make_users, percentile, raise_file_limit
from hapta.client import Client
from tests.conftest import gateway_env
from tests.services import ROOT, GatewayProcess, admin_dsn, create_database, drop_database

RESULTS = Path(__file__).resolve().parent / "results" / "hotfeed.md"
PAGE = {"collection": "posts", "filter": "public = true", "per_page": 20}
PER_ADDRESS = 200


async def load(args: argparse.Namespace) -> None:
    """A load process: `count` clients, each a closed loop of the page read; one JSON line out."""
    raise_file_limit()
    with open(args.tokens) as file:
        tokens = json.load(file)[args.first:args.first + args.count]
    gate = asyncio.Semaphore(100)

    async def open_one(i: int, token: str) -> Client:
        async with gate:
            address = f"127.{5 + args.slice}.{i // PER_ADDRESS // 250}.{i // PER_ADDRESS % 250 + 1}"
            client = await Client.connect(args.url, local_addr=(address, 0))
            await client.call("auth.resume", {"token": token})
            return client
    clients = await asyncio.gather(*(open_one(i, t) for i, t in enumerate(tokens)))
    print("READY", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)   # GO
    latencies: list[float] = []
    errors = 0
    end = time.perf_counter() + args.duration

    async def loop(client: Client) -> None:
        nonlocal errors
        while time.perf_counter() < end:
            sent = time.perf_counter()
            try:
                await client.call("records.list", PAGE)
            except Exception:
                errors += 1
                continue
            latencies.append(time.perf_counter() - sent)
    await asyncio.gather(*(loop(c) for c in clients))
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    latencies.sort()
    print(json.dumps({"reads": len(latencies), "errors": errors, "p50": percentile(latencies, 0.5),
                      "p99": percentile(latencies, 0.99)}), flush=True)


def counters(gateway: GatewayProcess) -> dict[str, float]:
    with urllib.request.urlopen(f"{gateway.http}/metrics", timeout=10) as response:
        text = response.read().decode()
    found = {key: float(value) for key, value in
             re.findall(r'^hapta_cache_reads_total\{result="(\w+)"\} (\S+)$', text, re.M)}
    barriers = re.search(r'^hapta_feed_barriers_total (\S+)$', text, re.M)
    found["barriers"] = float(barriers.group(1)) if barriers else 0.0
    return found


async def run_row(dsn: str, gateways: list[GatewayProcess], tokens_file: Path, clients: int, duration: float,
                  writes_per_s: float) -> dict[str, Any]:
    half = clients // len(gateways)
    loads = [subprocess.Popen(
        [sys.executable, "-m", "bench.hotfeed", "--role", "load", "--tokens", str(tokens_file),
         "--first", str(i * half), "--count", str(half), "--url", gateway.url, "--slice", str(i),
         "--duration", str(duration)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for i, gateway in enumerate(gateways)]
    writer = await asyncpg.connect(dsn)
    try:
        for process in loads:
            line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 300)
            if line.strip() != "READY":
                raise RuntimeError(f"a load process failed: {line!r}")
        before = [counters(g) for g in gateways]
        started = time.perf_counter()
        for process in loads:
            process.stdin.write("GO\n")
            process.stdin.flush()
        writes = 0
        target = await writer.fetchval("SELECT id FROM posts ORDER BY created DESC LIMIT 1")
        while time.perf_counter() - started < duration:
            if writes_per_s:
                await writer.execute("UPDATE posts SET likes = likes + 1 WHERE id = $1", target)
                writes += 1
                await asyncio.sleep(1 / writes_per_s)
            else:
                await asyncio.sleep(0.2)
        results = [json.loads(await asyncio.wait_for(asyncio.to_thread(p.stdout.readline), 120)) for p in loads]
        after = [counters(g) for g in gateways]
    finally:
        await writer.close()
        for process in loads:
            process.kill()
            process.wait()
    reads = sum(r["reads"] for r in results)
    loaded = sum(a.get("load", 0) - b.get("load", 0) for a, b in zip(after, before))
    served = sum(a.get("hit", 0) + a.get("load", 0) - b.get("hit", 0) - b.get("load", 0)
                 for a, b in zip(after, before))
    rounds = sum(a["barriers"] - b["barriers"] for a, b in zip(after, before))
    return {"clients": clients, "writes_per_s": writes_per_s, "writes": writes, "reads": reads,
            "reads_per_s": round(reads / duration), "errors": sum(r["errors"] for r in results),
            "p50_ms": round(1000 * max(r["p50"] for r in results), 2),
            "p99_ms": round(1000 * max(r["p99"] for r in results), 2),
            "reached_pg": f"{100 * loaded / max(served, 1):.3f}% ({int(loaded)})",
            "barrier_per_read": round(rounds / max(served, 1), 3)}


async def orchestrate(args: argparse.Namespace) -> None:
    raise_file_limit()
    admin = await admin_dsn()
    dsn = await create_database(admin)
    env = gateway_env(dsn)
    gateways = [GatewayProcess(env, config=ROOT / "config.py") for _ in range(2)]
    tokens_file = Path(f"/tmp/hapta-hotfeed-{id(args)}.json")
    rows = []
    try:
        for gateway in gateways:
            await asyncio.to_thread(gateway.start)
        tokens = await make_users(dsn, env["HAPTA_JWT_SECRET"], args.clients)
        tokens_file.write_text(json.dumps(tokens))
        conn = await asyncpg.connect(dsn)
        try:
            author = await conn.fetchval("SELECT id FROM users LIMIT 1")
            await conn.execute("INSERT INTO posts (author, text, public) SELECT $1, 'post ' || g, true "
                               "FROM generate_series(1, 100) g", author)
        finally:
            await conn.close()
        for writes_per_s in args.writes_per_s:
            rows.append(await run_row(dsn, gateways, tokens_file, args.clients, args.duration, writes_per_s))
            print(json.dumps(rows[-1]), flush=True)
    finally:
        for gateway in gateways:
            await asyncio.to_thread(gateway.stop)
        tokens_file.unlink(missing_ok=True)
        await drop_database(admin, dsn)
    table = ("| clients (2 workers) | writes/s | reads/s | p50 ms | p99 ms | errors | reads that reached PostgreSQL "
             "| barrier round trips per read |\n|---|---|---|---|---|---|---|---|\n" + "\n".join(
                 f"| {r['clients']:,} | {r['writes_per_s']:g} | {r['reads_per_s']:,} | {r['p50_ms']} | {r['p99_ms']} | "
                 f"{r['errors']} | {r['reached_pg']} | {r['barrier_per_read']} |"
                 for r in rows))
    print(table)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(table + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--role", choices=("orchestrator", "load"), default="orchestrator")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--writes-per-s", type=float, nargs="+", default=[0, 5])
    parser.add_argument("--tokens")
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--url")
    parser.add_argument("--slice", type=int, default=0)
    args = parser.parse_args()
    import uvloop
    uvloop.run(load(args) if args.role == "load" else orchestrate(args))


if __name__ == "__main__":
    main()
