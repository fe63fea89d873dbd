"""What the request log costs per request: `python -m bench.request_log [--cases ping,get,create] [--vus 50]
[--duration 6] [--rounds 2]`.

For each case and round, the same gateway twice in alternating order, once with the request log on (the default,
App.request_log) and once with it off: a fresh database, the demo app as bench.cpu serves it (limits off, no
hooks), 100 users and 200 posts, then k6 (bench/k6/hapta.js) with `--vus` connections for 1 s of warm-up and
`--duration` seconds. Per request: the gateway's CPU (its process and children), its PostgreSQL pool backends' CPU
(where the log's COPY runs), and what the log wrote (rows and COPY statements, from the gateway's /metrics).
Medians over the rounds; writes `bench/results/request_log.md` (see docs/dashboard.md, "What the log costs").
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from bench import processes
from bench.cpu import DEMO, GATEWAY_KINDS, SERVER
from bench.peer import BIN, K6, POSTS, USERS, ensure_tools
from tests.conftest import gateway_env
from tests.services import ROOT, GatewayProcess, admin_dsn, create_database, drop_database, write_app

VARIANTS = {
    "on": DEMO,
    "off": DEMO + "    app = dataclasses.replace(app, request_log=hapta.config.RequestLogBounds(enabled=False))\n",
}


def counters(gateway: GatewayProcess) -> tuple[float, float]:
    """(request log rows written, COPY batches) so far, from the gateway's /metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{gateway.port}/metrics", timeout=10).read().decode()
    rows = re.search(r'^hapta_request_log_rows_total\{outcome="written"\} (\S+)$', text, re.M)
    batches = re.search(r"^hapta_request_log_batches_total (\S+)$", text, re.M)
    return float(rows.group(1)) if rows else 0.0, float(batches.group(1)) if batches else 0.0


def one(variant: str, case: str, args: argparse.Namespace) -> dict[str, float]:
    from bench.run import seed
    admin = asyncio.run(admin_dsn())
    database = asyncio.run(create_database(admin))
    folder = Path(tempfile.mkdtemp(prefix="hapta-bench-request-log-"))
    demo = write_app(folder / "demo", VARIANTS[variant], app=ROOT)
    (folder / "demo" / "rules").unlink()
    (folder / "demo" / "rules").mkdir()   # no hooks: the request path alone
    gateway = GatewayProcess(gateway_env(database), config=demo).start()
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
        processes.wait_for_load(load.pid, gateway.port)
        time.sleep(1.0)   # the warm-up second (what k6 counts starts after it)
        rows_before, batches_before = counters(gateway)
        window = census.measure(args.duration)
        rows_after, batches_after = counters(gateway)
        load.wait(args.duration + 60)
        ops = json.loads(out.read_text())["ops"]
        spent = window.columns(SERVER)
        return {"rate": ops / args.duration,
                "gateway": sum(spent.get(kind, 0.0) for kind in GATEWAY_KINDS) / ops * 1e6,
                "pool": spent.get(processes.POOL, 0.0) / ops * 1e6,
                "rows": (rows_after - rows_before) / ops,
                "batches": (batches_after - batches_before) / args.duration}
    finally:
        if load is not None and load.poll() is None:
            load.kill()
            load.wait()
        if census is not None:
            census.close()
        gateway.stop()
        asyncio.run(drop_database(admin, database))


def main() -> None:
    parser = argparse.ArgumentParser(description="the request log's cost per request, on and off")
    parser.add_argument("--cases", default="ping,get,create")
    parser.add_argument("--vus", type=int, default=50)
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    ensure_tools()
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    for case in args.cases.split(","):
        for round_ in range(args.rounds):
            for variant in (("on", "off") if round_ % 2 == 0 else ("off", "on")):
                found = one(variant, case, args)
                runs.setdefault((case, variant), []).append(found)
                print(f"  {case:6} log {variant:3} round {round_ + 1}: {found['rate']:7.0f} ops/s  "
                      f"{found['gateway']:6.1f} µs gateway  {found['pool']:6.1f} µs pool  "
                      f"{found['rows']:.2f} rows  {found['batches']:.1f} COPY/s", flush=True)
    median = lambda case, variant, key: statistics.median(r[key] for r in runs[(case, variant)])   # noqa: E731
    lines = [f"Request log on and off, {args.vus} connections, {args.duration:g} s per run, medians of "
             f"{args.rounds} rounds (alternating order).", "",
             "| case | log | ops/s | gateway CPU µs/request | PostgreSQL pool CPU µs/request | rows written/request "
             "| COPY statements/s |", "|---|---|---:|---:|---:|---:|---:|"]
    for case in args.cases.split(","):
        for variant in ("off", "on"):
            lines.append(f"| {case} | {variant} | {median(case, variant, 'rate'):.0f} | "
                         f"{median(case, variant, 'gateway'):.1f} | {median(case, variant, 'pool'):.1f} | "
                         f"{median(case, variant, 'rows'):.2f} | {median(case, variant, 'batches'):.1f} |")
        added = median(case, "on", "gateway") - median(case, "off", "gateway")
        lines.append(f"| {case} | added | | {added:+.1f} | "
                     f"{median(case, 'on', 'pool') - median(case, 'off', 'pool'):+.1f} | | |")
    table = "\n".join(lines)
    print("\n" + table)
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / "request_log.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
