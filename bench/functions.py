"""The cost of a server function's round trip: `python -m bench.functions [--rounds 3] [--duration 5]`.

One gateway (the tests' app with a functions/ folder holding `echo`, which returns its args; limits off; commits
without waiting for fsync) on a fresh database; 100 users signed in. For 1 and 50 connections, in alternating
rounds: `ping` (the request path alone) and `functions.call {name: "echo"}` (the same path plus the trip to a
function worker process: encode, a socket write, the worker's decode and call, and back). Medians; writes
bench/results/functions.md.
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
from tests.services import GatewayProcess, admin_dsn, create_database, drop_database, write_app

RESULTS = Path(__file__).resolve().parent / "results" / "functions.md"
ECHO = '''
from hapta.functions import call

@call(allow="")
def echo(ctx, args):
    return args
'''
APP = """
    import dataclasses, runpy, hapta.config
    app = dataclasses.replace(runpy.run_path(APP + "/config.py")["app"], connections=hapta.config.ConnectionBounds(message_rate=None),
                              limits=dict.fromkeys(hapta.config.DEFAULT_LIMITS))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description="functions.call beside ping")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args()
    admin = asyncio.run(admin_dsn())
    database = asyncio.run(create_database(admin))
    folder = Path(tempfile.mkdtemp(prefix="hapta-bench-functions-"))
    server = None
    try:
        config = write_app(folder / "app", APP)
        (folder / "app" / "functions").mkdir()
        (folder / "app" / "functions" / "echo.py").write_text(ECHO)
        dsn = database + ("&" if "?" in database else "?") + "synchronous_commit=off"
        server = GatewayProcess(gateway_env(dsn), config=config).start()
        seed_file = str(folder / "seed.json")
        Path(seed_file).write_text(json.dumps(asyncio.run(seed(server.url, 100, 1))))
        cases = ("ping", "functions.call")
        rates: dict[tuple[str, int], list[dict]] = {}
        for connections in (1, 50):
            for round_ in range(args.rounds):
                for case in (cases if round_ % 2 == 0 else cases[::-1]):
                    result = run_case(case, server, connections, seed_file, database, args)
                    rates.setdefault((case, connections), []).append(result)
                    print(f"  {case:15} x{connections:<3} round {round_ + 1}: {result['ops_per_s']:8.0f} ops/s "
                          f"p50 {result['p50_ms']} ms, errors {result['errors']}", flush=True)
        median = lambda key, field: statistics.median(r[field] or 0 for r in rates[key])  # noqa: E731
        lines = [f"# functions.call beside ping — {time.strftime('%Y-%m-%d %H:%M')}", "",
                 f"One gateway, 2 function workers' default (one per core); {args.rounds} alternating rounds of "
                 f"{args.duration:g} s; medians.", "",
                 "| connections | ping ops/s | functions.call ops/s | kept | ping p50 ms | call p50 ms | added p50 ms |",
                 "|---:|---:|---:|---:|---:|---:|---:|"]
        for connections in (1, 50):
            ping, fn = median(("ping", connections), "ops_per_s"), median(("functions.call", connections), "ops_per_s")
            p50, c50 = median(("ping", connections), "p50_ms"), median(("functions.call", connections), "p50_ms")
            lines.append(f"| {connections} | {ping:.0f} | {fn:.0f} | {fn / ping:.0%} | {p50:.3f} | {c50:.3f} | "
                         f"{c50 - p50:.3f} |")
        errors = sum(r["errors"] for runs in rates.values() for r in runs)
        if errors:
            lines += ["", f"Errors: {errors} (samples: {[r['error_samples'] for runs in rates.values() for r in runs if r['errors']][:3]})"]
        write_results(RESULTS, "\n".join(lines) + "\n")
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)
        asyncio.run(drop_database(admin, database))


if __name__ == "__main__":
    main()
