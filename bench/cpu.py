"""Gateway CPU per request, and how two versions of the code compare on it:
`python -m bench.cpu [--cases ping,get,list,create] [--vus 50] [--duration 6] [--rounds 2] [--trees A,B]`.

For each case, each round and each tree (a checkout of Hapta: its `hapta` package is what the gateway imports,
through PYTHONPATH; default: this one), in alternating order: a fresh database, the gateway as bench.peer starts
it (the demo app, limits off, no hooks), 100 users and 200 posts, then k6 (bench/k6/hapta.js) with `--vus`
connections for 1 s of warm-up and `--duration` seconds. Prints ops/s and the gateway's CPU (user + system, its
child processes included) over the measured window divided by the requests answered in it: a figure that, unlike
the rate, holds still on a machine whose other tenants take cores away. Then the same per request for every server
process by role (bench/processes.py): the gateway's, its PostgreSQL backends (pool, listener), any walsender, and
the cluster's own processes apart. A/B a change with
`git worktree add /tmp/before HEAD~1` and `--trees /tmp/before,.`. Each checkout serves its own demo app (its
config.py fits its App); BENCH_DEMO=/tmp/before serves that one's to both, to compare the code alone.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench import processes
from bench.peer import BIN, K6, POSTS, USERS, ensure_tools
from tests.conftest import gateway_env
from tests.services import ROOT, GatewayProcess, admin_dsn, create_database, drop_database, write_app

# message_rate: the flat name of earlier releases (App.connections.message_rate now), which both an older checkout and
# this one take, so that one config serves both trees (this one logs that the name moved).
DEMO = """
    import dataclasses, runpy, hapta.config
    app = runpy.run_path(APP + "/config.py")["app"]
    app = dataclasses.replace(app, message_rate=None, limits=dict.fromkeys(hapta.config.DEFAULT_LIMITS))
"""


SERVER = "Hapta"
GATEWAY_KINDS = (processes.GATEWAY, processes.GATEWAY_WORKERS, processes.WORKERS, processes.CHILDREN)


def one(tree: Path, case: str, args: argparse.Namespace) -> tuple[float, float, int, processes.Window]:
    """(ops/s, gateway CPU µs per request, requests, the CPU of every server process by role) of one k6 run against
    a fresh gateway importing `tree`'s hapta."""
    from bench.run import seed
    admin = asyncio.run(admin_dsn())
    database = asyncio.run(create_database(admin))
    folder = Path(tempfile.mkdtemp(prefix="hapta-bench-cpu-"))
    demo = write_app(folder / "demo", DEMO, app=Path(os.environ.get("BENCH_DEMO", tree)))   # each checkout's own demo (its config fits its App), or BENCH_DEMO's
    (folder / "demo" / "rules").unlink()
    (folder / "demo" / "rules").mkdir()   # no hooks: the request path alone
    gateway = GatewayProcess({**gateway_env(database), "PYTHONPATH": str(tree)}, config=demo).start()
    census = load = None
    try:
        seeded = folder / "seed.json"
        seeded.write_text(json.dumps(asyncio.run(seed(gateway.url, USERS, POSTS))))
        out = folder / "counts.json"
        env = {**os.environ, "URL": gateway.url, "SEED": str(seeded), "CASE": case, "VUS": str(args.vus),
               "WARMUP": "1", "DURATION": str(args.duration), "OUT": str(out), "K6_NO_USAGE_REPORT": "true"}
        census = processes.Census(admin, [database], {SERVER: gateway.proc.pid})
        load = subprocess.Popen([str(BIN / "k6"), "run", "--quiet", "--no-color", str(K6 / "hapta.js")], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes.wait_for_load(load.pid, gateway.port)   # k6's start-up: its sockets are open
        time.sleep(1.0)   # the warm-up second (what k6 counts starts after it)
        window = census.measure(args.duration)
        load.wait(args.duration + 60)
        ops = json.loads(out.read_text())["ops"]
        spent = sum(window.columns(SERVER).get(kind, 0.0) for kind in GATEWAY_KINDS)
        return ops / args.duration, spent / ops * 1e6 if ops else float("nan"), ops, window
    finally:
        if load is not None and load.poll() is None:
            load.kill()
            load.wait()
        if census is not None:
            census.close()
        gateway.stop()
        asyncio.run(drop_database(admin, database))


def main() -> None:
    parser = argparse.ArgumentParser(description="gateway CPU per request, A/B across checkouts")
    parser.add_argument("--cases", default="ping,get,list,create")
    parser.add_argument("--vus", type=int, default=50)
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--trees", default=str(ROOT))
    args = parser.parse_args()
    ensure_tools()
    trees = [Path(t).resolve() for t in args.trees.split(",")]
    results: dict[tuple[Path, str], list[tuple[float, float]]] = {}
    windows: dict[tuple[Path, str], list[tuple[int, processes.Window]]] = {}
    for case in args.cases.split(","):
        for round_ in range(args.rounds):
            for tree in (trees if round_ % 2 == 0 else trees[::-1]):
                rate, micros, ops, window = one(tree, case, args)
                results.setdefault((tree, case), []).append((rate, micros))
                windows.setdefault((tree, case), []).append((ops, window))
                print(f"  {tree.name:12} {case:6} round {round_ + 1}: {rate:8.0f} ops/s  {micros:6.1f} µs CPU/request"
                      f"  ({processes.total(window.columns(SERVER)) / ops * 1e6 if ops else float('nan'):.0f} µs all "
                      f"server processes)", flush=True)
    print("\n| case | tree | ops/s (median) | gateway CPU µs per request (median) |\n|---|---|---:|---:|")
    for (tree, case), runs in results.items():
        print(f"| {case} | {tree} | {statistics.median(r for r, _ in runs):.0f} | "
              f"{statistics.median(m for _, m in runs):.1f} |")
    rows = []
    for (tree, case), runs in windows.items():
        ops = sum(n for n, _ in runs)
        rate = statistics.median(r for r, _ in results[(tree, case)])
        rows.append(processes.Row((case, str(args.vus), str(tree)), rate, ops,
                                  processes.columns(processes.add(*(w.spent for _, w in runs)), SERVER)))
    print("\nEvery server process, CPU µs per request (all rounds pooled: their CPU ÷ their requests):\n")
    print(processes.table(rows, ("case", "VUs", "tree")))
    print(f"\n{processes.NOTES}")
    print(processes.census_note({str(tree): runs[-1][1].kinds(SERVER) for (tree, _), runs in windows.items()}))


if __name__ == "__main__":
    main()
