"""What the change log costs a write, and how long a resume takes: `python -m bench.changelog [--rounds 3]`.

Two gateways serve the demo app (limits off), each on a database of its own, with PostgreSQL's default durability
(every commit waits for its fsync): one as shipped, whose change trigger puts each change in the inbox that the
gateways number into the log (hapta/store/sql/0006_change_log.sql); one whose trigger is put back to what it was
before the log (0003_live.sql: a NOTIFY with the change, nothing stored). records.create runs on both in rounds,
alternating which goes first, at 1 and 50 connections; medians over the rounds.

Then the resume: a subscriber drops, N posts are written straight in SQL, and it subscribes again with `since`:
the time from sending that request to holding all N events (N = 1,000 and 10,000, the most a resume replays).
Writes bench/results/changelog.md.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import secrets
import statistics
import time
from pathlib import Path

import asyncpg

from bench.hooks import own_databases, write_app, write_results
from hapta.client import Client
from tests.conftest import PASSWORD
from tests.services import ROOT

RESULTS = Path(__file__).resolve().parent / "results" / "changelog.md"
SERVERS = {"log": "records.create, with the change log", "notify": "records.create, NOTIFY only (before)"}
OLD_TRIGGER = ROOT / "hapta" / "store" / "sql" / "0003_live.sql"


async def notify_only(dsn: str) -> None:
    """Put the change trigger back to its body before the log (a NOTIFY of the change, nothing stored)."""
    body = OLD_TRIGGER.read_text()
    function = re.search(r"CREATE OR REPLACE FUNCTION hapta\.notify_change\(\).*?\n\$\$;", body, re.S).group(0)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(function)
    finally:
        await conn.close()


async def resume_time(url: str, dsn: str, missed: int) -> float:
    """Seconds from a resuming realtime.subscribe to holding the `missed` events it replays."""
    async with await Client.connect(url) as client:
        name = f"resume{missed}_{secrets.token_hex(6)}"
        session = await client.call("auth.register", {"email": f"{name}@example.com", "password": PASSWORD,
                                                      "username": name})
        watch = {"collection": "posts", "filter": f'text ~ "{name}"'}
        since = (await client.call("realtime.subscribe", watch))["pos"]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("INSERT INTO posts (author, text, public) SELECT $1, $2 || ' ' || g, true "
                           "FROM generate_series(1, $3) g", session["user"]["id"], name, missed)
    finally:
        await conn.close()
    async with await Client.connect(url) as client:
        await client.call("auth.resume", {"token": session["token"]})
        started = time.perf_counter()
        await client.call("realtime.subscribe", {**watch, "since": since})
        for _ in range(missed):
            event = await client.next_event(timeout=60)
            assert event["event"] == "records.change", event
        return time.perf_counter() - started


def main() -> None:
    from bench.run import run_case   # bench.run imports bench.hooks: import it late

    parser = argparse.ArgumentParser(description="the change log's cost per write, and resume time")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--connections", default="1,50")
    args = parser.parse_args()
    connections = [int(c) for c in args.connections.split(",")]

    with own_databases(list(SERVERS), lambda name, folder: write_app(folder, False), max(connections)) as run:
        asyncio.run(notify_only(run["databases"]["notify"]))
        results: dict[tuple[str, int], list[dict]] = {}
        for count in connections:
            for round_ in range(args.rounds):
                for name in (SERVERS if round_ % 2 == 0 else reversed(list(SERVERS))):
                    result = run_case("records.create", run["servers"][name], count, run["seeds"][name],
                                      run["names"][name], args)
                    print(f"  {name:6} x{count:<3} round {round_ + 1}: {result['ops_per_s']:>7.0f} ops/s  "
                          f"p50 {result['p50_ms']} ms  errors {result['errors']}", flush=True)
                    results.setdefault((name, count), []).append(result)
        resumes = {missed: [asyncio.run(resume_time(run["servers"]["log"].url, run["databases"]["log"], missed))
                            for _ in range(args.rounds)] for missed in (1_000, 10_000)}

    median = lambda rows, key: statistics.median(r[key] for r in rows)  # noqa: E731
    lines = [f"# Hapta bench: the change log — {time.strftime('%Y-%m-%d %H:%M')}", "",
             f"{os.cpu_count()} CPUs, Python {platform.python_version()}; default durability (synchronous "
             f"commits); {args.rounds} rounds of {args.warmup:g} s warm-up + {args.duration:g} s per row, "
             "alternating; medians.", "",
             "| connections | NOTIFY only ops/s | with the log ops/s | rate kept | p50 ms (NOTIFY only → log) "
             "| p99 ms (NOTIFY only → log) |", "|---:|---:|---:|---:|---|---|"]
    for count in connections:
        before, after = results[("notify", count)], results[("log", count)]
        rate = (median(before, "ops_per_s"), median(after, "ops_per_s"))
        lines.append(f"| {count} | {rate[0]:.0f} | {rate[1]:.0f} | {100 * rate[1] / rate[0]:.0f}% | "
                     f"{median(before, 'p50_ms'):.2f} → {median(after, 'p50_ms'):.2f} | "
                     f"{median(before, 'p99_ms'):.2f} → {median(after, 'p99_ms'):.2f} |")
    lines += ["", "| missed events | resume: subscribe sent → last event held, median s | events/s |",
              "|---:|---:|---:|"]
    for missed, times in resumes.items():
        lines.append(f"| {missed:,} | {statistics.median(times):.3f} | {missed / statistics.median(times):,.0f} |")
    write_results(RESULTS, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
