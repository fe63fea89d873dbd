"""One command, side-by-side numbers: `python -m bench.run [--duration 5] [--warmup 1]`.

Starts a fresh database, the gateway (demo app) and a bare echo server; seeds users and posts; runs each case in
its own load process (bench.load) with 1 and with 100 connections; prints a markdown table and writes it to
bench/results/latest.md. Servers are stopped and the database dropped at the end, also on failure.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import hooks as hook_apps
from hapta.client import Client
from tests.conftest import PASSWORD, gateway_env
from tests.services import ROOT, GatewayProcess, admin_dsn, create_database, drop_database, write_app

RESULTS = Path(__file__).resolve().parent / "results" / "latest.md"
CONNECTIONS = (1, 100)
POSTS = 200
# (case, server): echo is the yardstick; ping is the gateway without PostgreSQL; the rest go through rules and SQL.
CASES = [("echo", "echo"), ("ping", "gateway"), ("records.get", "gateway"), ("records.list", "gateway"),
         # creates without and with a before_create hook, limits off in both (bench/hooks.py): the demo app's
         # 10 creates per second per user would otherwise be what is measured
         ("records.create", "no-hook"), ("records.create", "hook")]


async def seed(url: str, users: int, posts: int) -> dict[str, Any]:
    """Register `users` users (one per load connection: per-user limits then never couple connections) and
    create `posts` public posts spread over them. Returns what the load processes need."""
    tag = secrets.token_hex(3)
    gate = asyncio.Semaphore(8)   # registration hashes a password (~20 ms of CPU): a few at a time is enough

    async def one(i: int) -> dict[str, Any]:
        # Each user from its own loopback address, as devices are: per-address limits (auth.register) apply.
        async with gate, await Client.connect(url, local_addr=(f"127.1.{i // 250}.{i % 250 + 1}", 0)) as client:
            name = f"bench_{tag}_{i}"
            session = await client.call("auth.register", {"email": f"{name}@example.com", "password": PASSWORD,
                                                          "username": name})
            user_id = session["user"]["id"]
            mine = range(i, posts, users)   # user i writes posts i, i+users, ...
            created = [await client.call("records.create", {"collection": "posts", "data": {
                "author": user_id, "text": f"seeded post {n}", "public": True}}) for n in mine]
            # The access token is valid 15 minutes, far longer than a run; each load connection resumes with it.
            return {"id": user_id, "token": session["token"], "posts": [post["id"] for post in created]}

    made = await asyncio.gather(*(one(i) for i in range(users)))
    return {"users": [{"id": u["id"], "token": u["token"], "posts": u["posts"]} for u in made],
            "posts": [post for u in made for post in u["posts"]]}


def run_case(case: str, server: GatewayProcess, connections: int, seed_file: str, database: str,
             args: argparse.Namespace) -> dict[str, Any]:
    """One case in a fresh load process; a crash or hang becomes a result with errors, not a failed run."""
    command = [sys.executable, "-m", "bench.load", "--url", server.url, "--case", case,
               "--connections", str(connections), "--seed", seed_file, "--warmup", str(args.warmup),
               "--duration", str(args.duration), "--server-pid", str(server.proc.pid), "--database", database]
    failed = {"case": case, "connections": connections, "ops": 0, "ops_per_s": 0.0, "p50_ms": None,
              "p99_ms": None, "errors": connections, "cpu": None}
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                              timeout=args.warmup + args.duration + 60)
    except subprocess.TimeoutExpired:
        return {**failed, "error_samples": ["load process timed out"]}
    if done.returncode != 0 or not done.stdout.strip():
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {**failed, "error_samples": [f"load process failed: {tail}"]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def render(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    echo = {r["connections"]: r["ops_per_s"] for r in results if r["case"] == "echo"}
    fmt = lambda value: "-" if value is None else f"{value:.2f}"  # noqa: E731
    lines = [f"# Hapta bench — {time.strftime('%Y-%m-%d %H:%M')}", "",
             f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {args.warmup:g} s warm-up then "
             f"{args.duration:g} s measured per row, each connection a closed loop (one request in flight).", "",
             "| case | connections | ops/s | p50 ms | p99 ms | ratio to echo | errors | CPU % load / server / pg |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    notes = []
    for r in results:
        base = echo.get(r["connections"])
        ratio = f"{r['ops_per_s'] / base:.2f}" if base else "-"
        name = r["case"] + (" **(errors!)**" if r["errors"] else "")
        cpu = r.get("cpu")
        server = f"{cpu['server']:.0f}" + (f"+{cpu['children']:.0f}" if cpu and cpu.get("children", 0) >= 1 else "") \
            if cpu else ""
        cpu_text = f"{cpu['load']:.0f} / {server} / {cpu['postgres']:.0f}" if cpu else "-"
        lines.append(f"| {name} | {r['connections']} | {r['ops_per_s']:.0f} | {fmt(r['p50_ms'])} | "
                     f"{fmt(r['p99_ms'])} | {ratio} | {r['errors']} | {cpu_text} |")
        for sample in r.get("error_samples") or ():
            notes.append(f"- {r['case']} × {r['connections']}: {sample}")
        if cpu and cpu["load"] >= 90:
            notes.append(f"- {r['case']} × {r['connections']}: the load process used {cpu['load']:.0f}% of a "
                         "core; it may be the bottleneck rather than the server.")
    lines += ["", "CPU % is of one core, over the measured window: the load process, the server process "
              "(gateway or echo; +N: its rule workers), and the bench database's PostgreSQL backends."]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description="benchmark the gateway against a bare echo server")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per case (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first (default 1)")
    parser.add_argument("--only", default="", help="run only the rows whose name contains this (e.g. hook)")
    args = parser.parse_args()

    admin = asyncio.run(admin_dsn())
    database_url = asyncio.run(create_database(admin))
    database = database_url.split("?")[0].rsplit("/", 1)[1]
    servers: dict[str, GatewayProcess] = {}
    seed_file = apps_dir = None
    try:
        apps_dir = tempfile.mkdtemp(prefix="hapta-bench-apps-")
        # The demo app, but a closed loop on one socket sends far more than a person's 500 messages a second
        # (App.connections.message_rate): that guard would be all the one-connection rows measure.
        demo = write_app(Path(apps_dir) / "demo", """
            import dataclasses, runpy, hapta.config
            app = dataclasses.replace(runpy.run_path(APP + "/config.py")["app"],
                                      connections=hapta.config.ConnectionBounds(message_rate=None))
        """, app=ROOT)
        servers["gateway"] = GatewayProcess(gateway_env(database_url), config=demo).start()
        servers["echo"] = GatewayProcess({}, config=ROOT / "config.py",   # cwd ROOT: bench/ importable
                                         command=[sys.executable, "-m", "bench.echo_server"]).start()
        servers.update(hook_apps.start(database_url, Path(apps_dir)))
        print(f"gateway {servers['gateway'].url}, echo {servers['echo'].url}, database {database}", flush=True)

        seeded = asyncio.run(seed(servers["gateway"].url, max(CONNECTIONS), POSTS))
        with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="hapta-bench-", delete=False) as file:
            json.dump(seeded, file)
            seed_file = file.name
        print(f"seeded {len(seeded['users'])} users, {len(seeded['posts'])} posts", flush=True)

        results = []
        for case, server in CASES:
            label = hook_apps.SERVERS.get(server, case)
            if args.only not in label:
                continue
            for connections in CONNECTIONS:
                result = {**run_case(case, servers[server], connections, seed_file, database, args), "case": label}
                print(f"  {label:15} x{connections:<4} {result['ops_per_s']:>9.0f} ops/s"
                      f"  errors {result['errors']}", flush=True)
                results.append(result)

        table = render(results, args) + hook_apps.cost_table(results)
        print("\n" + table)
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(table)
        print(f"written to {RESULTS.relative_to(ROOT)}")
    finally:
        for name, process in servers.items():
            process.stop()
            if "Traceback" in process.log_text():
                print(f"\n{name} log had a traceback:\n{process.log_text()[-3000:]}", file=sys.stderr)
        if seed_file:
            os.unlink(seed_file)
        if apps_dir:
            shutil.rmtree(apps_dir)
        asyncio.run(drop_database(admin, database_url))


if __name__ == "__main__":
    main()
