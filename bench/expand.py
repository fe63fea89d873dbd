"""What `expand` costs: `python -m bench.expand [--rounds 3] [--duration 5]`.

One gateway on a fresh database (the tests' app; limits off; 100 users, 200 public posts). For 1 and 50
connections, alternating rounds of records.list of 20 public posts without and with `expand: ["author"]` (both
answered from the read cache once warm: the page under its key, the authors under theirs; what differs is the
second cache lookup and the larger reply). Medians; writes bench/results/expand.md.
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
from bench.send import app_folder
from tests.conftest import gateway_env
from tests.services import GatewayProcess, admin_dsn, create_database, drop_database

RESULTS = Path(__file__).resolve().parent / "results" / "expand.md"
CASES = ("records.list", "records.list+expand")


def main() -> None:
    parser = argparse.ArgumentParser(description="records.list with and without expand")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args()
    admin = asyncio.run(admin_dsn())
    database = asyncio.run(create_database(admin))
    folder = Path(tempfile.mkdtemp(prefix="hapta-bench-expand-"))
    server = None
    try:
        server = GatewayProcess(gateway_env(database), config=app_folder(folder / "app", hooked=False)).start()
        seed_file = str(folder / "seed.json")
        Path(seed_file).write_text(json.dumps(asyncio.run(seed(server.url, 100, 200))))
        results: dict[tuple[str, int], list[dict]] = {}
        for connections in (1, 50):
            for round_ in range(args.rounds):
                for case in CASES if round_ % 2 == 0 else CASES[::-1]:
                    result = run_case(case, server, connections, seed_file, database, args)
                    results.setdefault((case, connections), []).append(result)
                    print(f"  {case:20} x{connections:<3} round {round_ + 1}: {result['ops_per_s']:8.0f} ops/s "
                          f"p50 {result['p50_ms']} ms, errors {result['errors']}", flush=True)
        median = lambda key, field: statistics.median(r[field] or 0 for r in results[key])  # noqa: E731
        lines = [f"# records.list of 20 with and without expand — {time.strftime('%Y-%m-%d %H:%M')}", "",
                 f"{args.rounds} alternating rounds of {args.duration:g} s; medians.", "",
                 "| connections | plain ops/s | expand author ops/s | kept | plain p50 ms | expand p50 ms "
                 "| added p50 ms |", "|---:|---:|---:|---:|---:|---:|---:|"]
        for connections in (1, 50):
            plain, expanded = (median((case, connections), "ops_per_s") for case in CASES)
            p50, e50 = (median((case, connections), "p50_ms") for case in CASES)
            lines.append(f"| {connections} | {plain:.0f} | {expanded:.0f} | {expanded / plain:.0%} | {p50:.3f} | "
                         f"{e50:.3f} | {e50 - p50:.3f} |")
        write_results(RESULTS, "\n".join(lines) + "\n")
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)
        asyncio.run(drop_database(admin, database))


if __name__ == "__main__":
    main()
