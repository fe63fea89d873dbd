"""Realtime fan-out: one write, N subscribers across 2 gateway processes; commit-to-delivery latency.

    .venv/bin/python -m bench.fanout                      # 1,000 and 10,000 subscribers, ~2 minutes
    .venv/bin/python -m bench.fanout --subscribers 1000 --writes 10

A fresh database; two `hapta serve` processes on it (each LISTENs for itself, as `--workers 2` does); N signed-in
users (distinct ids, so the view rule `public = true || author = @user.id` has N different principals to
answer for), half connected to each gateway, each subscribed to the whole `posts` collection. Then one public post
is updated `--writes` times straight in SQL, one write at a time; each subscriber stamps the arrival of every event.
Latency is arrival minus the moment the write's COMMIT returned to this process, so it includes the trigger,
NOTIFY, the row fetch, rule checks, encoding and the socket. "events/s" is N divided by the time from the commit
to the last subscriber's event: how fast one fan-out drains.

Subscribers run in two separate load processes (one per gateway) with a minimal WebSocket client (an asyncio
Protocol that parses frames by hand) so that the client's cost stays small next to the server's: on a 2-core
machine, everyone (gateways, PostgreSQL, load) shares the same cores, which the CPU column shows.
Users and sessions are made in SQL and tokens signed with the run's JWT secret: registering 10,000 users through
argon2 would take minutes and measure nothing of interest here.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from hapta.auth.tokens import TokenSigner
from tests.conftest import gateway_env
from tests.services import ROOT, GatewayProcess, admin_dsn, create_database, drop_database, write_app

RESULTS = Path(__file__).resolve().parent / "results" / "fanout.md"
PER_ADDRESS = 200    # connections per loopback source address (the gateway bounds connections per address)


def raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# ---- the subscriber side (a load process) ------------------------------------------------------------------

def _frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A client frame: masked (with a zero key, which leaves the bytes as they are)."""
    n = len(payload)
    if n < 126:
        header = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        header = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        header = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    return header + b"\0\0\0\0" + payload


def _whole(data: bytes) -> bool:
    """Is `data` exactly one server frame (unmasked), with nothing before or after it?"""
    length = data[1]
    if length < 126:
        return len(data) == 2 + length
    if length == 126:
        return len(data) == 4 + int.from_bytes(data[2:4], "big")
    return len(data) == 10 + int.from_bytes(data[2:10], "big")


def _payload(frame: bytes) -> bytes:
    """The message of a whole unmasked frame kept by `Subscriber` (its length byte 0: a message parsed already,
    after a two-byte stand-in header)."""
    length = frame[1]
    return frame[2:] if length < 126 else frame[4:] if length == 126 else frame[10:]


class Subscriber(asyncio.Protocol):
    """One WebSocket client that signs in, subscribes, then only stamps what arrives (and answers pings).

    What it does per event is kept small (a whole text frame is kept as it came, parsed after the run): the load
    processes share the cores with the gateways, and every µs they spend is one the gateways do not get."""

    def __init__(self, host: str, port: int, token: str, ready: asyncio.Future):
        self.request = (f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                        ).encode()
        self.hello = json.dumps({"id": 1, "op": "auth.resume", "args": {"token": token}}).encode()
        self.subscribe = json.dumps({"id": 2, "op": "realtime.subscribe", "args": {"collection": "posts"}}).encode()
        self.ready = ready
        self.buffer = b""
        self.upgraded = False
        self.subscribed = False
        self.arrivals: list[tuple[float, bytes]] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("connection lost before subscribing"))

    def data_received(self, data: bytes) -> None:
        now = time.time()
        if self.subscribed and not self.buffer and data[0] == 0x81 and _whole(data):
            self.arrivals.append((now, data))   # one whole text frame, as events come: its header is cut later
            return
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if b" 101 " not in self.buffer[:end].split(b"\r\n", 1)[0]:
                self.transport.abort()
                self.ready.done() or self.ready.set_exception(ConnectionError(self.buffer[:end].decode(errors="replace")))
                return
            self.upgraded, self.buffer = True, self.buffer[end + 4:]
            self.transport.write(_frame(self.hello))
        while len(self.buffer) >= 2:
            opcode, length, start = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F, 2
            if length == 126:
                length, start = int.from_bytes(self.buffer[2:4], "big"), 4
            elif length == 127:
                length, start = int.from_bytes(self.buffer[2:10], "big"), 10
            if len(self.buffer) < start + length:
                return
            payload, self.buffer = self.buffer[start:start + length], self.buffer[start + length:]
            if opcode == 0x9:
                self.transport.write(_frame(payload, 0xA))
            elif opcode == 0x1:
                if self.subscribed:
                    self.arrivals.append((now, bytes([0x81, 0]) + payload))   # as if whole (see _payload)
                elif payload.startswith(b'{"id":1,"ok":true'):
                    self.transport.write(_frame(self.subscribe))
                elif b'"sub"' in payload:
                    self.subscribed = True
                    self.ready.done() or self.ready.set_result(None)
                elif b'"RATE_LIMITED"' in payload:   # setup on a busy machine: the gateway's share per address
                    again = self.hello if payload.startswith(b'{"id":1,') else self.subscribe
                    asyncio.get_running_loop().call_later(1.0, self.transport.write, _frame(again))
                elif b'"ok":false' in payload and not self.ready.done():
                    self.ready.set_exception(RuntimeError(payload.decode()))


async def subscribers(args: argparse.Namespace) -> None:
    """A load process: connect every token in the slice, say READY, wait for STOP, print the arrivals."""
    raise_file_limit()
    with open(args.tokens) as file:
        tokens = json.load(file)[args.first:args.first + args.count]
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(200)   # handshakes in flight at once
    protocols: list[Subscriber] = []

    retries = 0

    async def one(i: int, token: str) -> None:
        nonlocal retries
        address = f"127.{3 + args.slice}.{i // PER_ADDRESS // 250}.{i // PER_ADDRESS % 250 + 1}"
        for attempt in range(3):   # setup is not measured: a connection lost while 5,000 open may try again
            ready = loop.create_future()
            async with gate:
                _, protocol = await loop.create_connection(
                    lambda: Subscriber("127.0.0.1", args.port, token, ready), "127.0.0.1", args.port,
                    local_addr=(address, 0))
                try:
                    await asyncio.wait_for(ready, 60)
                except ConnectionError:
                    retries += 1
                    if attempt == 2:
                        raise
                    continue
                protocols.append(protocol)
                return
    await asyncio.gather(*(one(i, token) for i, token in enumerate(tokens)))
    if retries:
        print(f"(setup: {retries} connections were lost while connecting and retried)", file=sys.stderr)
    print("READY", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    versions: dict[int, list[float]] = {}
    for protocol in protocols:
        for arrived, frame in protocol.arrivals:
            message = json.loads(_payload(frame))
            for item in message if isinstance(message, list) else [message]:
                if item.get("event") == "records.change":
                    versions.setdefault(item["data"]["record"]["version"], []).append(arrived)
    print(json.dumps({"arrivals": versions}), flush=True)
    for protocol in protocols:
        protocol.transport.abort()


# ---- the orchestrator ---------------------------------------------------------------------------------------

async def make_users(dsn: str, secret: str, count: int) -> list[str]:
    """`count` users with one session each, in SQL; their access tokens."""
    conn = await asyncpg.connect(dsn)
    try:
        tag = secrets.token_hex(3)
        rows = await conn.fetch(
            "WITH u AS (INSERT INTO users (email) SELECT 'fan_' || $1 || '_' || g || '@example.com' "
            "FROM generate_series(1, $2) g RETURNING id) "
            "INSERT INTO hapta.sessions (user_id, expires_at) SELECT id, now() + interval '1 day' FROM u "
            "RETURNING id, user_id", tag, count)
    finally:
        await conn.close()
    signer = TokenSigner(secret, 3600)
    return [signer.issue(r["user_id"], r["id"])[0] for r in rows]


def _cpu(process: psutil.Process) -> float:
    """CPU seconds of a process and its children (a gateway's rule workers)."""
    total = 0.0
    for proc in [process, *process.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))]


async def run_scale(dsn: str, gateways: list[GatewayProcess], secret: str, count: int, writes: int,
                    interval: float, tokens_file: Path, profile: Path | None = None) -> dict[str, Any]:
    tokens = await make_users(dsn, secret, count)
    tokens_file.write_text(json.dumps(tokens))
    half = count // len(gateways)
    loads = []
    for slice_, gateway in enumerate(gateways):
        loads.append(subprocess.Popen(
            [sys.executable, "-m", "bench.fanout", "--role", "subscribers", "--tokens", str(tokens_file),
             "--first", str(slice_ * half), "--count", str(half if slice_ < len(gateways) - 1 else count - slice_ * half),
             "--port", str(gateway.port), "--slice", str(slice_)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
    try:
        connect_started = time.monotonic()
        for load in loads:
            line = await asyncio.wait_for(asyncio.to_thread(load.stdout.readline), 300)
            if line.strip() != "READY":
                raise RuntimeError(f"a load process failed: {line!r}")
        connect_seconds = time.monotonic() - connect_started
        conn = await asyncpg.connect(dsn)
        commits: dict[int, float] = {}
        servers = [psutil.Process(g.proc.pid) for g in gateways]
        clients = [psutil.Process(load.pid) for load in loads]
        # what every process spends idle (keepalive pings of thousands of sockets, timers): measured over the same
        # span as the writes will take, before them, so that the CPU per event can be given above it
        await asyncio.sleep(1)
        idle_before, idle_started = [_cpu(p) for p in servers + clients], time.monotonic()
        await asyncio.sleep(interval * writes)
        idle = [(_cpu(p) - before) / (time.monotonic() - idle_started)
                for p, before in zip(servers + clients, idle_before)]
        spies = []
        if profile is not None:   # py-spy (pip install py-spy) on every gateway and load process while writing
            profile.mkdir(parents=True, exist_ok=True)
            seconds = str(int(interval * (writes + 1)) + 1)
            for name, proc in [*((f"gateway{i}", p) for i, p in enumerate(servers)),
                               *((f"load{i}", p) for i, p in enumerate(clients))]:
                spies.append(subprocess.Popen(
                    [str(Path(sys.executable).with_name("py-spy")), "record", "-p", str(proc.pid), "-d", seconds,
                     "-r", "200", "-f", "raw", "-o", str(profile / f"{name}-{count}.txt")],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        cpu_before, started = [_cpu(p) for p in servers + clients], time.monotonic()
        try:
            author = await conn.fetchval("SELECT id FROM users LIMIT 1")
            post_id = await conn.fetchval("INSERT INTO posts (author, text, public) VALUES ($1, 'v', true) "
                                          "RETURNING id", author)
            await asyncio.sleep(interval)
            for _ in range(writes):
                version = await conn.fetchval("UPDATE posts SET text = md5(random()::text) WHERE id = $1 "
                                              "RETURNING version", post_id)
                commits[version] = time.time()   # autocommit: the statement returned, so did its COMMIT
                await asyncio.sleep(interval)
        finally:
            await conn.close()
        cpu = [_cpu(p) - before for p, before in zip(servers + clients, cpu_before)]
        above_idle = [spent - rate * (time.monotonic() - started) for spent, rate in zip(cpu, idle)]
        for spy in spies:
            await asyncio.to_thread(spy.wait)
        arrivals: dict[int, list[float]] = {}
        for load in loads:
            load.stdin.write("STOP\n")
            load.stdin.flush()
        for load in loads:
            line = await asyncio.wait_for(asyncio.to_thread(load.stdout.readline), 120)
            for version, stamps in json.loads(line)["arrivals"].items():
                arrivals.setdefault(int(version), []).extend(stamps)
    finally:
        for load in loads:
            load.kill()
            load.wait()
    latencies, rates, delivered = [], [], 0
    for version, committed in commits.items():
        stamps = arrivals.get(version, [])
        delivered += len(stamps)
        latencies += [stamp - committed for stamp in stamps]
        if stamps:
            rates.append(len(stamps) / max(max(stamps) - committed, 1e-6))
    expected = count * len(commits)
    ms = lambda s: round(s * 1000, 1)  # noqa: E731
    return {"subscribers": count, "writes": len(commits), "delivered": f"{delivered}/{expected}",
            "p50_ms": ms(percentile(latencies, 0.5)), "p99_ms": ms(percentile(latencies, 0.99)),
            "max_ms": ms(max(latencies)), "events_per_s": round(percentile(rates, 0.5)),
            "connect_s": round(connect_seconds, 1),
            # CPU per write, each gateway and each load process (includes their idle keepalive, which is tiny)
            "gateway_cpu_ms": round(1000 * max(cpu[:len(servers)]) / len(commits), 1),
            "load_cpu_ms": round(1000 * max(cpu[len(servers):]) / len(commits), 1),
            # the gateways' (and the load processes') CPU over the writes above what they spend idle, per event
            "gateway_us_per_event": round(1e6 * sum(above_idle[:len(servers)]) / max(delivered, 1), 1),
            "load_us_per_event": round(1e6 * sum(above_idle[len(servers):]) / max(delivered, 1), 1),
            "gateway_idle_pct": round(100 * max(idle[:len(servers)]), 1)}


DEMO = """
    import runpy
    app = runpy.run_path(APP + "/config.py")["app"]
"""


async def one_tree(admin: str, tree: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every --subscribers row against fresh gateways that import `tree`'s hapta (and serve its demo app)."""
    dsn = await create_database(admin)
    env = {**gateway_env(dsn), "PYTHONPATH": str(tree)}
    folder = Path(tempfile.mkdtemp(prefix="hapta-fanout-"))
    config = write_app(folder / "demo", DEMO, app=tree)
    gateways = [GatewayProcess(env, config=config) for _ in range(args.workers)]
    tokens_file = folder / "tokens.json"
    rows = []
    try:
        for gateway in gateways:
            await asyncio.to_thread(gateway.start)
        for count in args.subscribers:
            row = await run_scale(dsn, gateways, env["HAPTA_JWT_SECRET"], count, args.writes,
                                  args.interval * max(1, count / 2000), tokens_file,
                                  args.profile and Path(args.profile) / tree.name)
            rows.append({"tree": str(tree), **row})
            print(json.dumps(rows[-1]), flush=True)
    finally:
        for gateway in gateways:
            await asyncio.to_thread(gateway.stop)
            problems = [line for line in gateway.log_text().splitlines() if " WARNING " in line or " ERROR " in line]
            if problems:   # what the gateway had to say about the run (e.g. a guard that closed connections)
                print(f"gateway on port {gateway.port}: {len(problems)} warnings, e.g.:", *problems[:5], sep="\n  ")
        shutil.rmtree(folder, ignore_errors=True)
        await drop_database(admin, dsn)
    return rows


async def orchestrate(args: argparse.Namespace) -> None:
    raise_file_limit()
    admin = await admin_dsn()
    trees = [Path(t).resolve() for t in args.trees.split(",")]
    rows = []
    for round_ in range(args.rounds):
        for tree in (trees if round_ % 2 == 0 else trees[::-1]):
            rows += await one_tree(admin, tree, args)
    table = summary(rows, trees, args)
    print(table)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(table + "\n")


def summary(rows: list[dict[str, Any]], trees: list[Path], args: argparse.Namespace) -> str:
    """One line per tree and subscriber count: medians over the rounds (with the runs' range when there are
    several)."""
    def cell(values: list[float], fmt: str = "{:,.1f}") -> str:
        if len(values) == 1:
            return fmt.format(values[0])
        return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"
    several = len(trees) > 1
    header = ("| " + ("tree | " if several else "") + f"subscribers ({args.workers} workers) | runs | writes | delivered "
              "| p50 ms | p99 ms | max ms | events/s | CPU ms per write: each gateway / each load process "
              "| CPU µs per event above idle: gateways / loads | idle CPU % of each gateway |\n|" + "---|" * (11 + several))
    lines = [header]
    for tree in trees:
        for count in args.subscribers:
            mine = [r for r in rows if r["tree"] == str(tree) and r["subscribers"] == count]
            if not mine:
                continue
            pick = lambda key: [r[key] for r in mine]  # noqa: E731
            lines.append("| " + (f"{tree.name or tree} | " if several else "") + f"{count:,} | {len(mine)} | "
                         f"{mine[0]['writes']} | {', '.join(r['delivered'] for r in mine)} | {cell(pick('p50_ms'))} | "
                         f"{cell(pick('p99_ms'))} | {cell(pick('max_ms'))} | {cell(pick('events_per_s'), '{:,.0f}')} | "
                         f"{cell(pick('gateway_cpu_ms'))} / {cell(pick('load_cpu_ms'))} | "
                         f"{cell(pick('gateway_us_per_event'))} / {cell(pick('load_us_per_event'))} | "
                         f"{cell(pick('gateway_idle_pct'))} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--role", choices=("orchestrator", "subscribers"), default="orchestrator")
    parser.add_argument("--subscribers", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--writes", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between writes (per 2,000 subs)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--trees", default=str(ROOT),
                        help="checkouts of Hapta to compare, comma-separated (each gateway imports its hapta)")
    parser.add_argument("--profile", help="a folder for py-spy's raw stacks of every gateway and load process "
                        "while the writes go on (one file each, per tree and subscriber count)")
    parser.add_argument("--rounds", type=int, default=1, help="runs of every tree, in alternating order")
    # for --role subscribers
    parser.add_argument("--tokens")
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--slice", type=int, default=0)
    args = parser.parse_args()
    import uvloop
    uvloop.run(subscribers(args) if args.role == "subscribers" else orchestrate(args))


if __name__ == "__main__":
    main()
