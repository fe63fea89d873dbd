"""What a before_create hook costs: records.create on the demo app with and without its rules/.

    python -m bench.hooks [--rounds 5] [--duration 3] [--warmup 1]

Two gateways serve the demo app from a temporary folder: one with the demo's rules/ (posts.before_create trims
the text and refuses more than 280 characters, run in a rule worker), one with an empty rules/. Both have rate
limits off and commit without waiting for fsync (synchronous_commit=off), so that only the hook tells them apart,
not the limiter or the disk. Here each has a database of its own (bench.run has them as two rows on its one).

On a small shared machine a single row drifts with whatever else runs, so this runs the two side by side in
rounds, alternating which goes first, at 1 and at 100 connections, and reports each figure's median over the
rounds. Besides rates and latencies it reports the CPU each create costs the gateway process and the rule
workers: where the gateway is the bottleneck, the share of the rate a hook keeps is the ratio of those.
Writes bench/results/hooks.md.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import statistics
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from tests.conftest import gateway_env
from tests.services import ROOT, GatewayProcess, admin_dsn, create_database, drop_database

RESULTS = Path(__file__).resolve().parent / "results" / "hooks.md"
# server name -> what its rows are called in bench.run's table
SERVERS = {"no-hook": "records.create, no hook", "hook": "records.create + before_create hook"}


def write_app(folder: Path, with_rules: bool) -> Path:
    folder.mkdir(parents=True)
    (folder / "migrations").symlink_to(ROOT / "migrations")
    if with_rules:
        (folder / "rules").symlink_to(ROOT / "rules")
    else:
        (folder / "rules").mkdir()
    (folder / "config.py").write_text(textwrap.dedent(f"""
        import dataclasses, runpy
        import hapta.config
        app = runpy.run_path({str(ROOT / "config.py")!r})["app"]
        # Limits off (those that exist in this version): the comparison is about the hook, not the limiter.
        off = {{"limits": dict.fromkeys(getattr(hapta.config, "DEFAULT_LIMITS", {{}})), "message_rate": None}}
        fields = {{f.name for f in dataclasses.fields(app)}}
        app = dataclasses.replace(app, **{{k: v for k, v in off.items() if k in fields}})
    """))
    return folder / "config.py"


def start(databases: str | dict[str, str], folder: Path) -> dict[str, GatewayProcess]:
    """The two gateways, on one database (bench.run's rows share its seeded users) or one each (name -> URL)."""
    servers = {}
    for name in SERVERS:
        url = databases if isinstance(databases, str) else databases[name]
        # Commits that wait for the disk's fsync (milliseconds on a shared disk) would drown a cost of
        # microseconds: these sessions commit without waiting (asyncpg passes unknown DSN parameters as settings).
        dsn = url + ("&" if "?" in url else "?") + "synchronous_commit=off"
        config = write_app(folder / name, with_rules=name == "hook")
        servers[name] = GatewayProcess(gateway_env(dsn), config=config).start()
    return servers


def _cpu_per_op(r: dict[str, Any], key: str) -> float | None:
    """Microseconds of CPU per create (`key`: "server" or "children") over the measured window."""
    cpu = r.get("cpu")
    if not cpu or not r["ops_per_s"]:
        return None
    return 1e4 * cpu.get(key, 0.0) / r["ops_per_s"]   # percent of a core / (ops/s) -> µs per op


def cost_table(results: list[dict[str, Any]]) -> str:
    """Per connection count: both rates, the share kept, the added p50/p99 and the CPU per create (medians when
    there are several rounds)."""
    def median(rows: list[dict[str, Any]], key) -> float | None:
        values = [v for v in (key(r) for r in rows) if v is not None]
        return statistics.median(values) if values else None

    lines = ["", "## What a before_create hook costs", "",
             "| connections | rounds | no hook ops/s | hook ops/s | rate kept | p50 ms (no hook → hook) | added p50 µs "
             "| p99 ms (no hook → hook) | added p99 µs | gateway CPU µs/create (no hook → hook) "
             "| rule worker CPU µs/create |",
             "|---:|---:|---:|---:|---:|---|---:|---|---:|---|---:|"]
    for connections in sorted({r["connections"] for r in results}):
        pair = [[r for r in results if r["case"] == SERVERS[name] and r["connections"] == connections]
                for name in ("no-hook", "hook")]
        if not all(pair):
            continue
        rate = [median(rows, lambda r: r["ops_per_s"] or None) for rows in pair]
        p50 = [median(rows, lambda r: r["p50_ms"]) for rows in pair]
        p99 = [median(rows, lambda r: r["p99_ms"]) for rows in pair]
        gateway = [median(rows, lambda r: _cpu_per_op(r, "server")) for rows in pair]
        workers = median(pair[1], lambda r: _cpu_per_op(r, "children"))
        if None in (*rate, *p50, *p99):
            continue
        cpu = f"{gateway[0]:.0f} → {gateway[1]:.0f}" if None not in gateway else "-"
        lines.append(
            f"| {connections} | {min(len(rows) for rows in pair)} | {rate[0]:.0f} | {rate[1]:.0f} | "
            f"{100 * rate[1] / rate[0]:.0f}% | {p50[0]:.2f} → {p50[1]:.2f} | {1000 * (p50[1] - p50[0]):.0f} | "
            f"{p99[0]:.2f} → {p99[1]:.2f} | {1000 * (p99[1] - p99[0]):.0f} | {cpu} | "
            f"{'-' if workers is None else f'{workers:.0f}'} |")
    return "\n".join(lines) + "\n" if len(lines) > 5 else ""


@contextlib.contextmanager
def own_databases(names: list[str], app_for: Callable[[str, Path], Path], users: int,
                  durable: bool = True) -> Iterator[dict[str, Any]]:
    """A gateway per name, each on a database of its own (a gateway also follows its database's change feed, and
    should not do another's), serving `app_for(name, folder)`, seeded with `users` users; not `durable`: its
    sessions commit without waiting for the fsync (see start). Yields {"servers",
    "databases" (name -> URL), "names" (name -> database name), "seeds" (name -> seed file)}; stops the gateways
    and drops the databases after, also on failure."""
    from bench.run import seed   # bench.run imports this module: import it late
    admin = asyncio.run(admin_dsn())
    databases = {name: asyncio.run(create_database(admin)) for name in names}
    folder = Path(tempfile.mkdtemp(prefix="hapta-bench-"))
    found: dict[str, Any] = {"servers": {}, "databases": databases, "seeds": {},
                             "names": {name: url.split("?")[0].rsplit("/", 1)[1] for name, url in databases.items()}}
    try:
        for name, url in databases.items():
            dsn = url if durable else url + ("&" if "?" in url else "?") + "synchronous_commit=off"
            found["servers"][name] = GatewayProcess(gateway_env(dsn), config=app_for(name, folder / name)).start()
        for name, server in found["servers"].items():
            seeded = asyncio.run(seed(server.url, users, 10))
            with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="hapta-bench-", delete=False) as file:
                json.dump(seeded, file)
                found["seeds"][name] = file.name
        yield found
    finally:
        for process in found["servers"].values():
            process.stop()
        for path in found["seeds"].values():
            os.unlink(path)
        shutil.rmtree(folder)
        for url in databases.values():
            asyncio.run(drop_database(admin, url))


def write_results(path: Path, table: str) -> None:
    print("\n" + table)
    path.parent.mkdir(exist_ok=True)
    path.write_text(table)
    print(f"written to {path.relative_to(ROOT)}")


def main() -> None:
    from bench.run import run_case   # bench.run imports this module: import it late

    parser = argparse.ArgumentParser(description="records.create with and without a before_create hook")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=3.0, help="measured seconds per row (default 3)")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--connections", default="1,100", help="comma-separated (default 1,100)")
    args = parser.parse_args()
    connections = [int(c) for c in args.connections.split(",")]

    def app_for(name: str, folder: Path) -> Path:
        return write_app(folder, with_rules=name == "hook")

    with own_databases(list(SERVERS), app_for, max(connections), durable=False) as run:
        results = []
        for count in connections:
            for round_ in range(args.rounds):
                order = list(SERVERS) if round_ % 2 == 0 else list(reversed(SERVERS))
                for name in order:
                    result = {**run_case("records.create", run["servers"][name], count, run["seeds"][name],
                                         run["names"][name], args), "case": SERVERS[name]}
                    print(f"  {SERVERS[name]:36} x{count:<4} round {round_ + 1}: {result['ops_per_s']:>7.0f} ops/s"
                          f"  p50 {result['p50_ms']} ms  errors {result['errors']}", flush=True)
                    results.append(result)
        table = (f"# Hapta bench: rule hooks — {time.strftime('%Y-%m-%d %H:%M')}\n\n"
                 f"{os.cpu_count()} CPUs, Python {platform.python_version()}; {args.rounds} rounds of "
                 f"{args.warmup:g} s warm-up + {args.duration:g} s measured per row, the two gateways alternating; "
                 "medians over the rounds.\n" + cost_table(results))
        errors = sum(r["errors"] for r in results)
        if errors:
            table += f"\n{errors} errors: " + "; ".join({s for r in results for s in r.get("error_samples") or ()})
        write_results(RESULTS, table)


if __name__ == "__main__":
    main()
