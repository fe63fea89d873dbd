"""The cost of a before_send hook: `python -m bench.send [--rounds 3] [--duration 5]`.

Two gateways on one fresh database (the tests' app; limits off; 100 users, 200 public posts): one without hooks,
one whose rules/posts.py has a before_send that masks a field for anon readers and returns the rest as it is. For
1 and 50 connections, alternating rounds: records.list of 20 public posts (answered from the read cache on both:
what differs is the hook, one worker round trip per page for the 20 records). Medians; writes
bench/results/send.md.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench.hooks import write_results
from bench.run import run_case, seed
from tests.conftest import gateway_env
from tests.services import APP, GatewayProcess, admin_dsn, create_database, drop_database

RESULTS = Path(__file__).resolve().parent / "results" / "send.md"
HOOK = '''
def before_send(ctx, record):
    if ctx.role == "anon":
        return {**record, "author": None}
    return record
'''
CONFIG = """
import dataclasses, runpy, hapta.config
app = dataclasses.replace(runpy.run_path({app!r})["app"], connections=hapta.config.ConnectionBounds(message_rate=None),
                          limits=dict.fromkeys(hapta.config.DEFAULT_LIMITS))
"""


def app_folder(folder: Path, hooked: bool) -> Path:
    folder.mkdir(parents=True)
    (folder / "migrations").symlink_to(APP / "migrations")
    (folder / "rules").mkdir()
    if hooked:
        (folder / "rules" / "posts.py").write_text(HOOK)
    (folder / "config.py").write_text(CONFIG.format(app=str(APP / "config.py")))
    return folder / "config.py"


def main() -> None:
    parser = argparse.ArgumentParser(description="records.list with and without a before_send hook")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args()
    admin = asyncio.run(admin_dsn())
    database = asyncio.run(create_database(admin))
    folder = Path(tempfile.mkdtemp(prefix="hapta-bench-send-"))
    servers: dict[str, GatewayProcess] = {}
    try:
        for name in ("plain", "before_send"):
            servers[name] = GatewayProcess(gateway_env(database), config=app_folder(folder / name,
                                                                                    name == "before_send")).start()
        seed_file = str(folder / "seed.json")
        Path(seed_file).write_text(json.dumps(asyncio.run(seed(servers["plain"].url, 100, 200))))
        results: dict[tuple[str, int], list[dict]] = {}
        for connections in (1, 50):
            for round_ in range(args.rounds):
                order = list(servers) if round_ % 2 == 0 else list(servers)[::-1]
                for name in order:
                    result = run_case("records.list", servers[name], connections, seed_file, database, args)
                    results.setdefault((name, connections), []).append(result)
                    print(f"  {name:12} x{connections:<3} round {round_ + 1}: {result['ops_per_s']:8.0f} ops/s "
                          f"p50 {result['p50_ms']} ms, errors {result['errors']}", flush=True)
        median = lambda key, field: statistics.median(r[field] or 0 for r in results[key])  # noqa: E731
        lines = [f"# records.list of 20 with and without before_send — {time.strftime('%Y-%m-%d %H:%M')}", "",
                 f"{args.rounds} alternating rounds of {args.duration:g} s; medians; both answered from the read "
                 "cache.", "",
                 "| connections | no hook ops/s | before_send ops/s | kept | no hook p50 ms | before_send p50 ms "
                 "| added p50 ms |", "|---:|---:|---:|---:|---:|---:|---:|"]
        for connections in (1, 50):
            plain, hooked = median(("plain", connections), "ops_per_s"), median(("before_send", connections), "ops_per_s")
            p50, h50 = median(("plain", connections), "p50_ms"), median(("before_send", connections), "p50_ms")
            lines.append(f"| {connections} | {plain:.0f} | {hooked:.0f} | {hooked / plain:.0%} | {p50:.3f} | "
                         f"{h50:.3f} | {h50 - p50:.3f} |")
        write_results(RESULTS, "\n".join(lines) + "\n")
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)
        asyncio.run(drop_database(admin, database))


if __name__ == "__main__":
    main()
