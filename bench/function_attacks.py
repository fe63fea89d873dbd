"""`python -m bench.function_attacks`: what one client's function calls cost everyone else's (issue 26, item 8).

The attacks of the issue, with the App's defaults (2 function workers: one per core of the development machine,
calls wait at most 10 s): 30 calls of a 3 s function at once from one anon socket, and six POSTs at once to a 6 s
webhook (no key at all). Meanwhile a victim (another anon socket, another address) calls a 1 ms function one call
after another, 8 a second; each call's latency counts, a refusal as the time it took. Idle first, then attacked:
p50, p99 and the slowest, and what the victim and the attacker were answered. Writes
bench/results/function_attacks.md. The tree under test is the one `hapta` imports (PYTHONPATH=<a checkout> to
measure another).
"""
from __future__ import annotations

import asyncio
import collections
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

from hapta.client import Client, HaptaError
from tests.conftest import ANON_KEY, gateway_env
from tests.services import GatewayProcess, admin_dsn, create_database, drop_database, next_loopback, write_app

RESULTS = Path(__file__).resolve().parent / "results" / "function_attacks.md"

FUNCTIONS = '''
import time
from hapta.functions import call, http

@call(allow="")
def slow(ctx, args):
    time.sleep(args)
    return "done"

@call(allow="")
def quick(ctx, args):
    return args

@http("POST", "/hooks/slow")
def slow_hook(ctx, request):
    time.sleep(float(request["query"].get("seconds", "0")))
    return {"ok": True}
'''


async def anon(url: str) -> Client:
    client = await Client.connect(url, local_addr=(next_loopback(), 0))
    await client.call("auth.anon", {"apikey": ANON_KEY})
    return client


async def victim_calls(client: Client, busy) -> tuple[list[float], collections.Counter]:
    latencies, codes = [], collections.Counter()
    while busy() or len(latencies) < 10:
        started = time.perf_counter()
        try:
            await client.call("functions.call", {"name": "quick", "args": 1})
            codes["OK"] += 1
        except HaptaError as error:
            codes[error.code] += 1
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(max(0.0, 0.125 - latencies[-1]))
    return latencies, codes


def figures(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000   # noqa: E731
    return f"{pick(0.5):.1f} / {pick(0.99):.1f} / {ordered[-1] * 1000:.0f}"


def post(http: str, path: str) -> str:
    request = urllib.request.Request(http + path, data=b"{}", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            answer.read()
            return str(answer.status)
    except urllib.error.HTTPError as error:
        return str(error.code)
    except OSError as error:   # no answer at all
        return type(error).__name__


def said(codes: collections.Counter) -> str:
    return ", ".join(f"{n} {code}" for code, n in sorted(codes.items(), key=lambda kv: -kv[1]))


async def calls_attack(process: GatewayProcess) -> tuple[str, str, str, str, str]:
    victim = await anon(process.url)
    done = time.monotonic() + 2
    idle, _ = await victim_calls(victim, lambda: time.monotonic() < done)
    attacker = await anon(process.url)

    async def one() -> str:
        try:
            await attacker.call("functions.call", {"name": "slow", "args": 3})
            return "OK"
        except HaptaError as error:   # RATE_LIMITED by functions.call's limit names it; over the workers' share not
            limit = (error.details or {}).get("key")
            return f"{error.code} ({limit})" if limit else error.code
    attack = asyncio.ensure_future(asyncio.gather(*(one() for _ in range(30))))
    attacked, codes = await victim_calls(victim, lambda: not attack.done())
    return ("30 calls of a 3 s function from one anon socket", figures(idle), figures(attacked), said(codes),
            said(collections.Counter(await attack)))


async def webhook_attack(process: GatewayProcess) -> tuple[str, str, str, str, str]:
    victim = await anon(process.url)
    done = time.monotonic() + 2
    idle, _ = await victim_calls(victim, lambda: time.monotonic() < done)
    attack = asyncio.ensure_future(asyncio.gather(*(asyncio.to_thread(post, process.http, "/hooks/slow?seconds=6")
                                                    for _ in range(6))))
    attacked, codes = await victim_calls(victim, lambda: not attack.done())
    return ("six POSTs to a 6 s webhook, no key", figures(idle), figures(attacked), said(codes),
            said(collections.Counter(await attack)))


async def main() -> None:
    pg = await admin_dsn()
    dsn = await create_database(pg)
    folder = Path(tempfile.mkdtemp()) / "app"
    config = write_app(folder, """
        import dataclasses, runpy
        from hapta.config import FunctionBounds
        app = dataclasses.replace(runpy.run_path(APP + "/config.py")["app"], functions=FunctionBounds(workers=2))
    """)
    (folder / "functions").mkdir()
    (folder / "functions" / "attack.py").write_text(textwrap.dedent(FUNCTIONS))
    rows = []
    for attack in (calls_attack, webhook_attack):   # a gateway each: the second does not start behind the first
        process = GatewayProcess(gateway_env(dsn), config=config)
        try:
            await asyncio.to_thread(process.start)
            rows.append(await attack(process))
        finally:
            process.stop()
    await drop_database(pg, dsn)
    lines = ["| attack | victim idle p50 / p99 / slowest ms | victim attacked p50 / p99 / slowest ms | victim's answers "
             "| attacker's answers |", "|---|---:|---:|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    table = "\n".join(lines)
    print(table)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(table + "\n")


if __name__ == "__main__":
    asyncio.run(main())
