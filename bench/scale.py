"""Connection scale: how many idle, signed-in connections one gateway process and two workers hold, what each
one costs in server memory, and how fast a `ping` still is while they are all open.

    .venv/bin/python -m bench.scale [--connections 20000] [--holders 4] [--pings 1000]

One fresh database; the demo app with its connection caps raised and its limits off (what is measured is holding
connections, not refusing them). For each setup, one process and then `--workers 2`:
  1. a probe connection signs in and pings `--pings` times, one after the other (the idle baseline);
  2. `--holders` processes (`python -m bench.scale hold ...`, each from its own loopback address, so that no
     address runs out of ports) open their share of `--connections`, sign each in with `auth.resume`, and keep it
     open and silent; the server still pings each one every 20 s (keepalive);
  3. with all of them open: the server's RSS (all its processes) and the probe's ping latencies again;
  4. the holders count the connections still open; then SIGTERM, timed until the server has exited (it drains and
     closes every socket with 1001).
Every phase has a deadline, so a setup that cannot hold its target ends with what it held. Prints a markdown table
and writes it to bench/results/scale.md. Servers are stopped and the database dropped at the end, also on failure.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

from hapta.client import Client
from tests.conftest import PASSWORD, gateway_env
from tests.services import ROOT, GatewayProcess, admin_dsn, create_database, drop_database, write_app

RESULTS = Path(__file__).resolve().parent / "results" / "scale.md"
USERS = 20
SESSIONS_PER_USER = 5      # holders' connections spread over USERS * SESSIONS_PER_USER sessions
OPEN_CONCURRENCY = 64      # handshakes in flight per holder
KEEPALIVE = 20.0           # seconds between the server's pings of a connection (websockets' default)

SCALE_APP = """
    import dataclasses, runpy
    from hapta.config import DEFAULT_LIMITS, ConnectionBounds
    # The demo app, able to hold many connections: the caps raised, rate limits and the per-connection message
    # rate off. What is left in force is what every connection costs anyway (keepalive pings, session timers).
    app = dataclasses.replace(runpy.run_path(APP + "/config.py")["app"], limits=dict.fromkeys(DEFAULT_LIMITS),
                              connections=ConnectionBounds(message_rate=None, total=100_000, per_address=100_000))
"""


def raise_open_files_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def percentile(values: list[float], q: float) -> float | None:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None


# ---- the holder process ---------------------------------------------------------------------------------------

async def hold(args: argparse.Namespace) -> None:
    """Open `count` connections from `source`, sign each in, report; then keep them open, answering each line on
    stdin with how many are still open, until stdin ends."""
    raise_open_files_limit()
    loop = asyncio.get_running_loop()

    def quiet_refusals(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # A refused connection (1013) leaves the future of its auth.resume unawaited; it is counted below.
        if not isinstance(context.get("exception"), ConnectionError):
            loop.default_exception_handler(context)
    loop.set_exception_handler(quiet_refusals)
    tokens = json.loads(Path(args.tokens).read_text())
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)
    clients: list[Client] = []
    failures: Counter[str] = Counter()

    async def one(i: int) -> None:
        async with gate:
            client = None
            try:
                # No client-side keepalive: the server's pings (and these clients' pongs) are the cost measured.
                client = await Client.connect(args.url, local_addr=(args.source, 0), ping_interval=None,
                                              open_timeout=30)
                await client.call("auth.resume", {"token": tokens[i % len(tokens)]})
                clients.append(client)
            except Exception as exc:   # a refused or failed connection is a result, not a crash
                code = client.close_code if client is not None else None
                failures[f"close {code}" if code else type(exc).__name__] += 1
                if client is not None:
                    client.ws.transport.abort()

    started = time.monotonic()
    tasks = [asyncio.ensure_future(one(i)) for i in range(args.count)]
    done, late = await asyncio.wait(tasks, timeout=args.deadline)
    for task in late:
        task.cancel()
    failures["still opening at the deadline"] += len(late)
    print(json.dumps({"opened": len(clients), "failed": sum(failures.values()),
                      "failures": dict(failures.most_common(4)), "seconds": round(time.monotonic() - started, 1)}),
          flush=True)
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    while await stdin.readline():
        print(json.dumps({"open": sum(1 for c in clients if c.close_code is None)}), flush=True)
    os._exit(0)   # closing thousands of sockets politely would take longer than the kernel takes to reset them


# ---- the orchestrator -----------------------------------------------------------------------------------------

async def sign_in_sessions(url: str) -> list[str]:
    """USERS users, each signed in SESSIONS_PER_USER times: access tokens for the holders' auth.resume."""
    tag = secrets.token_hex(3)
    gate = asyncio.Semaphore(4)   # argon2 is CPU-bound: a few at a time

    async def user(i: int) -> list[str]:
        async with gate, await Client.connect(url, local_addr=(f"127.3.0.{i + 1}", 0)) as client:
            name = f"scale_{tag}_{i}"
            tokens = [(await client.call("auth.register", {"email": f"{name}@example.com", "password": PASSWORD,
                                                           "username": name}))["token"]]
            for _ in range(SESSIONS_PER_USER - 1):
                tokens.append((await client.call("auth.login", {"identity": name, "password": PASSWORD}))["token"])
            return tokens
    return [token for tokens in await asyncio.gather(*(user(i) for i in range(USERS))) for token in tokens]


def server_cpu(pid: int) -> float:
    """CPU seconds (user + system) of the server: the process and its children."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            continue
    return total


def server_rss(pid: int) -> int:
    """Resident memory of the server: the process and its children (workers, rule workers)."""
    root = psutil.Process(pid)
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total


async def pings(client: Client, count: int) -> list[float]:
    latencies = []
    for _ in range(count):
        sent = time.perf_counter()
        await client.call("ping")
        latencies.append(time.perf_counter() - sent)
    return latencies


async def measure(server: GatewayProcess, workers: int, tokens_file: str, tokens: list[str],
                  args: argparse.Namespace) -> dict[str, Any]:
    row: dict[str, Any] = {"setup": "1 process" if workers == 1 else f"{workers} workers", "target": args.connections}
    probe = await Client.connect(server.url, local_addr=("127.4.0.1", 0))
    await probe.call("auth.resume", {"token": tokens[0]})
    idle = await pings(probe, args.pings)
    row["idle_p50_ms"], row["idle_p99_ms"] = percentile(idle, 0.5) * 1000, percentile(idle, 0.99) * 1000
    before = server_rss(server.proc.pid)

    share = [args.connections // args.holders + (i < args.connections % args.holders) for i in range(args.holders)]
    holders = [await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.scale", "hold", "--url", server.url, "--count", str(count),
        "--tokens", tokens_file, "--source", f"127.2.{workers}.{i + 1}", "--deadline", str(args.open_seconds),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=ROOT) for i, count in enumerate(share)]
    try:
        started = time.monotonic()
        reports = []
        for holder in holders:
            line = await asyncio.wait_for(holder.stdout.readline(), args.open_seconds + 60)
            reports.append(json.loads(line or b'{"opened": 0, "failed": 0, "failures": {"holder died": 1}}'))
        row["open_seconds"] = time.monotonic() - started
        row["opened"] = sum(r["opened"] for r in reports)
        failures: Counter[str] = Counter()
        for report in reports:
            failures.update(report["failures"])
        row["failures"] = dict(failures.most_common(4))
        await asyncio.sleep(2)   # let the server settle (handshake buffers freed, first timers armed)
        row["rss_mib"] = server_rss(server.proc.pid) / 2**20
        row["rss_before_mib"] = before / 2**20
        # What holding them costs while they are silent: the server's CPU over one keepalive interval (each
        # connection is pinged once in it), as a share of one core.
        cpu_before, idle_started = server_cpu(server.proc.pid), time.monotonic()
        await asyncio.sleep(KEEPALIVE)
        row["idle_cpu_pct"] = (server_cpu(server.proc.pid) - cpu_before) / (time.monotonic() - idle_started) * 100
        loaded = await pings(probe, args.pings)
        row["p50_ms"], row["p99_ms"] = percentile(loaded, 0.5) * 1000, percentile(loaded, 0.99) * 1000
        held = 0
        for holder in holders:   # still open after the measurement: those are the ones held
            holder.stdin.write(b"count\n")
            await holder.stdin.drain()
            held += json.loads(await asyncio.wait_for(holder.stdout.readline(), 60))["open"]
        row["held"] = held
        row["kib_per_connection"] = (row["rss_mib"] - row["rss_before_mib"]) * 1024 / held if held else None
        # SIGTERM with all of them open: drain, 1001 to each, exit (docs/operations.md promises 10 s).
        signalled = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        row["exit_code"] = await asyncio.to_thread(server.proc.wait, 60)
        row["shutdown_seconds"] = time.monotonic() - signalled
    finally:
        for holder in holders:
            if holder.returncode is None:
                holder.stdin.close()
        await asyncio.wait([asyncio.ensure_future(h.wait()) for h in holders], timeout=30)
        for holder in holders:
            if holder.returncode is None:
                holder.kill()
        await probe.close()
    return row


def render(rows: list[dict[str, Any]], args: argparse.Namespace, open_files: int) -> str:
    fmt = lambda value, spec=".2f": "-" if value is None else format(value, spec)  # noqa: E731
    lines = [f"# Hapta connection scale — {time.strftime('%Y-%m-%d %H:%M')}", "",
             f"{os.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB, Python "
             f"{platform.python_version()}; open files limit {open_files} per process (hard); {args.holders} holder "
             f"processes; ping latency over {args.pings} sequential pings from one probe connection.", "",
             "| setup | target | held | time to open s | server RSS MiB (before → with) | KiB per connection "
             "| CPU % of a core, all open and silent | ping p50 / p99 ms, idle | ping p50 / p99 ms, all open "
             "| SIGTERM to exit s |",
             "|---|---:|---:|---:|---|---:|---:|---|---|---:|"]
    notes = []
    for r in rows:
        lines.append(f"| {r['setup']} | {r['target']} | {r.get('held', 0)} | {fmt(r.get('open_seconds'), '.0f')} | "
                     f"{fmt(r.get('rss_before_mib'), '.0f')} → {fmt(r.get('rss_mib'), '.0f')} | "
                     f"{fmt(r.get('kib_per_connection'), '.1f')} | {fmt(r.get('idle_cpu_pct'), '.1f')} | "
                     f"{fmt(r.get('idle_p50_ms'))} / "
                     f"{fmt(r.get('idle_p99_ms'))} | {fmt(r.get('p50_ms'))} / {fmt(r.get('p99_ms'))} | "
                     f"{fmt(r.get('shutdown_seconds'), '.1f')} |")
        if r.get("exit_code"):
            notes.append(f"- {r['setup']}: the server exited with status {r['exit_code']} after SIGTERM")
        if r.get("failures"):
            notes.append(f"- {r['setup']}: not held: " + ", ".join(f"{k} × {v}" for k, v in r["failures"].items()))
        if r.get("error"):
            notes.append(f"- {r['setup']}: {r['error']}")
    lines += ["", "RSS is of all the server's processes (supervisor, workers, rule workers); KiB per connection is "
              "the growth divided by the connections held. Every connection is signed in (auth.resume) and silent; "
              "the server pings each every 20 s."]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description="how many idle signed-in connections the gateway holds")
    sub = parser.add_subparsers(dest="command")
    holder = sub.add_parser("hold", help="(internal) one holder process")
    holder.add_argument("--url", required=True)
    holder.add_argument("--count", type=int, required=True)
    holder.add_argument("--tokens", required=True)
    holder.add_argument("--source", required=True)
    holder.add_argument("--deadline", type=float, default=180)
    parser.add_argument("--connections", type=int, default=20_000, help="target per setup (default 20000)")
    parser.add_argument("--holders", type=int, default=4, help="client processes sharing the load (default 4)")
    parser.add_argument("--pings", type=int, default=1000, help="probe pings per measurement (default 1000)")
    parser.add_argument("--open-seconds", type=float, default=180, help="deadline to open them (default 180)")
    parser.add_argument("--setups", default="1,2", help="worker counts to measure (default 1,2)")
    args = parser.parse_args()
    if args.command == "hold":
        import uvloop
        uvloop.run(hold(args))
        return

    open_files = raise_open_files_limit()   # the gateway inherits it
    admin = asyncio.run(admin_dsn())
    database_url = asyncio.run(create_database(admin))
    # Sessions touched by 20,000 auth.resume calls: commits need not wait for fsync here (as in bench/hook_apps).
    dsn = database_url + ("&" if "?" in database_url else "?") + "synchronous_commit=off"
    folder = Path(tempfile.mkdtemp(prefix="hapta-bench-scale-"))
    rows: list[dict[str, Any]] = []
    try:
        config = write_app(folder / "app", SCALE_APP, app=ROOT)
        tokens_file = str(folder / "tokens.json")
        tokens: list[str] = []
        for workers in (int(w) for w in args.setups.split(",")):
            server = GatewayProcess(gateway_env(dsn), config=config, workers=workers).start()
            try:
                if not tokens:
                    tokens = asyncio.run(sign_in_sessions(server.url))
                    Path(tokens_file).write_text(json.dumps(tokens))
                print(f"{workers} worker(s) on {server.url}: opening {args.connections} connections", flush=True)
                row = asyncio.run(measure(server, workers, tokens_file, tokens, args))
                print(f"  held {row['held']} in {row['open_seconds']:.0f} s; "
                      f"{row['kib_per_connection'] or 0:.1f} KiB each; ping p99 {row['p99_ms']:.2f} ms", flush=True)
            except Exception as exc:   # a setup that falls over is reported, and the next one still runs
                row = {"setup": f"{workers} worker(s)", "target": args.connections, "error": repr(exc)}
            finally:
                server.stop()
                if "Traceback" in server.log_text():
                    print(f"\nserver log had a traceback:\n{server.log_text()[-3000:]}", file=sys.stderr)
            rows.append(row)
        table = render(rows, args, open_files)
        print("\n" + table)
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(table)
        print(f"written to {RESULTS.relative_to(ROOT)}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        asyncio.run(drop_database(admin, database_url))


if __name__ == "__main__":
    main()
