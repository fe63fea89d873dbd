"""Time to first render after a reload, from the cache and without it: `python -m bench.first_render [--rounds 5]`.

A fresh database and the gateway (`hapta serve`, demo app); one user (registered over the socket) and 500 public
posts of theirs (inserted in SQL: the demo's create limit would make that a minute), all matching one live query
(`text ~ tag`, newest first, limit 500). Then bench/first_render.mjs drives Debian's Chromium (playwright-core from
clients/js): a page of its own loads the committed dist/hapta.js, connects with `persist: "indexeddb"` as soon as it
runs and makes the query. Each round loads it, in a new page of one browser context (a reload), three ways:

- **uncached**: the origin's IndexedDB deleted first (the session in localStorage kept): the first items are the
  gateway's answer;
- **cached**: the items the previous load kept in IndexedDB, the gateway up;
- **cached, socket blocked** (`--no-blocked` leaves it out): the page's WebSocket is answered with a close
  (playwright's routeWebSocket), so only the cache can show anything.

Rounds alternate the order (odd: uncached, cached, blocked; even: the reverse). Per load the page records
performance.now() (ms from the navigation's start, page and script load included) when its module script (which
imports dist/hapta.js) begins to run, when Hapta.connect resolved (the store opened, the outbox read), at
the first callback with all 500 items and whether it was stale, at the client's state "open" (the socket's first
answer: the session resumed), and at the first callback of the gateway's answer (stale false).
Medians and ranges; writes bench/results/first_render.md.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from hapta.client import Client
from tests.conftest import gateway_env
from tests.services import GatewayProcess, admin_dsn, create_database, drop_database

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "first_render.md"
PASSWORD = "first render bench password"
CASES = ("uncached", "cached", "cached, socket blocked")
FIELDS = ("first", "stale", "script", "connected", "open", "answer", "items", "error")


async def seed(url: str, dsn: str, posts: int) -> dict[str, str]:
    """One user, and `posts` public posts of theirs tagged with a word of their own."""
    import asyncpg
    tag = "fr" + secrets.token_hex(4)
    email = f"{tag}@example.com"
    async with await Client.connect(url) as client:
        session = await client.call("auth.register", {"email": email, "password": PASSWORD, "username": tag})
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO posts (author, text, public) SELECT $1, $2 || ' post ' || g, true "
            "FROM generate_series(1, $3) g", session["user"]["id"], tag, posts)
        await conn.execute("ANALYZE posts")
    finally:
        await conn.close()
    return {"email": email, "filter": f"text ~ {json.dumps(tag)}"}


def spread(values: list[float]) -> str:
    if not values:
        return "—"
    return f"{statistics.median(values):.0f} ({min(values):.0f}–{max(values):.0f})"


def summary(loads: list[dict], posts: int, rounds: int) -> str:
    """The markdown table of the loads (bench/first_render.mjs's lines): per case, median (range) of each time."""
    lines = [f"# Time to first render of {posts} items after a reload — {time.strftime('%Y-%m-%d %H:%M')}",
             "",
             f"{rounds} alternating rounds; ms from the navigation's start (performance.now() in the page: "
             "page and script load included); median (range). Chromium headless, the gateway on loopback.", "",
             f"| load | page script runs | connect resolved | first render with {posts} items | shown from "
             "| socket's first answer (state open) | gateway's answer shown | loads |",
             "|---|---:|---:|---:|---|---:|---:|---:|"]
    for case in CASES:
        mine = [load for load in loads if load["case"] == case]
        if not mine:
            continue
        def times(field: str) -> list[float]:
            return [load[field] for load in mine if load.get(field) is not None]

        first = times("first")
        stale = {load["stale"] for load in mine if load.get("first") is not None}
        source = ("cache (stale)" if stale == {True} else "gateway" if stale == {False}
                  else "mixed" if stale else "never shown")
        missed = len(mine) - len(first)
        lines.append(f"| {case} | {spread(times('script'))} | {spread(times('connected'))} | "
                     f"{spread(first)}{f', {missed} never' if missed else ''} | {source} | "
                     f"{spread(times('open'))} | {spread(times('answer'))} | {len(mine)} |")
    errors = sorted({load["error"] for load in loads if load.get("error")})
    if errors:
        lines += ["", "Errors: " + "; ".join(errors)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description="time to first render of 500 cached items, cached vs not")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--posts", type=int, default=500)
    parser.add_argument("--no-blocked", action="store_true", help="leave out the load with the socket blocked")
    args = parser.parse_args()
    node = shutil.which("node")
    if not node or not shutil.which("chromium"):
        raise SystemExit("needs node and chromium (bin/test sets both up; `npm ci` in clients/js)")
    if not (ROOT / "clients" / "js" / "node_modules" / "playwright-core").exists():
        raise SystemExit("run `npm ci` in clients/js first")
    admin = asyncio.run(admin_dsn())
    database = asyncio.run(create_database(admin))
    gateway = None
    try:
        gateway = GatewayProcess(gateway_env(database)).start()
        seeded = asyncio.run(seed(gateway.url, database, args.posts))
        options = {"url": gateway.url, "email": seeded["email"], "password": PASSWORD, "filter": seeded["filter"],
                   "limit": args.posts, "rounds": args.rounds, "blocked": not args.no_blocked}
        done = subprocess.run([node, str(ROOT / "bench" / "first_render.mjs"), json.dumps(options)], cwd=ROOT,
                              capture_output=True, text=True, timeout=120 + 60 * args.rounds)
        if done.stderr.strip():
            print(done.stderr.strip())
        loads = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0:
            raise SystemExit(f"the browser half failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        for load in loads:
            print(f"  round {load['round']} {load['case']:24} "
                  + " ".join(f"{field} {load.get(field)}" for field in FIELDS), flush=True)
        table = summary(loads, args.posts, args.rounds)
        print("\n" + table)
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(table)
        print(f"written to {RESULTS.relative_to(ROOT)}")
    finally:
        if gateway is not None:
            gateway.stop()
        asyncio.run(drop_database(admin, database))


if __name__ == "__main__":
    main()
