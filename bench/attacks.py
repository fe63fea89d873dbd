"""`python -m bench.attacks`: what one attacking client costs everyone else, side by side in one run.

For each attack of tests/security (issue 11), a victim's request is timed back to back while nothing else runs,
then while the attack runs: the slowest of each (a stall of seconds among quick answers is what an attack
achieves; a percentile would hide it). The database holds 50,000 public posts so that expensive queries are
expensive. Writes bench/results/attacks.md. Servers are stopped and the database dropped at the end.
"""
from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

import asyncpg

from hapta.client import Client
from tests.conftest import ANON_KEY
from tests.security.conftest import OPEN_SUBSCRIBE, register, seed, worst_while
from tests.security.test_exhaustion import cheap_enough, relation_filter
from tests.services import ROOT, GatewayProcess, admin_dsn, create_database, drop_database, next_loopback, rss_bytes, \
    write_app
from tests.conftest import gateway_env

RESULTS = Path(__file__).resolve().parent / "results" / "attacks.md"


async def _client(url: str, address: str | None = None, anon: bool = False) -> Client:
    client = await Client.connect(url, local_addr=(address or next_loopback(), 0))
    if anon:
        await client.call("auth.anon", {"apikey": ANON_KEY})
    return client


async def idle_worst(probe) -> float:
    done = time.monotonic() + 2
    return await worst_while(probe, lambda: time.monotonic() < done)


async def filters_attack(url: str) -> tuple[str, float, float, str]:
    victim = await _client(url)
    await register(victim)

    async def read():
        await victim.call("records.list", {"collection": "posts", "per_page": 1,
                                           "filter": f'text = "{secrets.token_hex(6)}"'})
    idle = await idle_worst(read)
    attacker = await _client(url, anon=True)
    salt = secrets.token_hex(3)
    texts = [relation_filter(900, f"{salt}{i}") for i in range(12)] + [cheap_enough(f"{salt}a{i}") for i in range(12)]
    attack = asyncio.gather(*(attacker.call("records.list", {"collection": "posts", "filter": t, "count": True})
                              for t in texts), return_exceptions=True)
    worst = await worst_while(read, lambda: not attack.done())
    outcomes = await attack
    refused = sum(1 for o in outcomes if not isinstance(o, dict))
    return ("24 costly relation filters from one anon socket; another user's uncached read", idle, worst,
            f"{refused} of 24 refused (TOO_LARGE, TIMEOUT or RATE_LIMITED)")


async def lock_attack(url: str, dsn: str) -> tuple[str, float, float, str]:
    attacker = await _client(url)
    a = await register(attacker)
    own = await attacker.call("records.create", {"collection": "posts", "data": {
        "author": a["user"]["id"], "text": "contended", "public": False}})
    victim = await _client(url)
    v = await register(victim)

    async def work():
        await victim.call("records.list", {"collection": "posts", "per_page": 5,
                                           "filter": f'author = "{v["user"]["id"]}" && text != "{secrets.token_hex(4)}"'})
    idle = await idle_worst(work)
    holder = await asyncpg.connect(dsn)
    transaction = holder.transaction()
    await transaction.start()
    await holder.execute("SELECT 1 FROM posts WHERE id = $1 FOR UPDATE", own["id"])
    try:
        started = time.perf_counter()
        updates = asyncio.gather(*(attacker.call("records.update", {"collection": "posts", "id": own["id"],
                                                                     "data": {"text": f"e{i}"}}) for i in range(12)),
                                 return_exceptions=True)
        worst = await worst_while(work, lambda: not updates.done())
        await updates
        took = time.perf_counter() - started
    finally:
        await transaction.rollback()
        await holder.close()
    return ("12 updates queued on one locked row; another user's reads", idle, worst,
            f"the 12 answered within {took:.1f} s")


async def fanout_attack(url: str) -> tuple[str, float, float, str]:
    probe = await _client(url)
    idle = await idle_worst(lambda: probe.call("ping"))
    address, salt, accepted = next_loopback(), secrets.token_hex(3), 0
    for n in range(100):
        socket = await _client(url, address, anon=True)
        replies = await socket.batch([("realtime.subscribe", {"collection": "posts", "filter":
                                       f'text ~ "{salt}{n}x{i}" && public = true'}) for i in range(100)])
        accepted += sum(isinstance(r, dict) for r in replies)
    writer = await _client(url)
    w = await register(writer)
    burst = asyncio.gather(*(writer.call("records.create", {"collection": "posts", "data": {
        "author": w["user"]["id"], "text": f"fan out {i}", "public": True}}) for i in range(20)))
    worst = await worst_while(lambda: probe.call("ping"), lambda: not burst.done(), least=200)
    await burst
    return ("10,000 distinct subscriptions tried from one address, 20 writes; a third client's ping", idle, worst,
            f"{accepted:,} subscriptions accepted")


async def memory_attack(url: str, pid: int) -> tuple[str, float, float, str]:
    before = rss_bytes(pid)
    lister = await _client(url, anon=True)
    for batch in range(20):
        await asyncio.gather(*(lister.call("records.list", {"collection": "posts", "per_page": 1, "filter": (
            f'text = "{batch}x{i}' + "z" * 4000 + '"')}) for i in range(100)))
    grown = (rss_bytes(pid) - before) / (1 << 20)
    return ("2,000 distinct 4 KB filters in records.list; the gateway's memory", 0.0, 0.0, f"RSS +{grown:.0f} MiB")


async def main() -> None:
    pg = await admin_dsn()
    dsn = await create_database(pg)
    folder = Path(__import__("tempfile").mkdtemp())
    process = GatewayProcess(gateway_env(dsn), config=write_app(folder, OPEN_SUBSCRIBE, app=ROOT))
    rows = []
    try:
        await asyncio.to_thread(process.start)
        await seed(dsn)
        rows.append(await filters_attack(process.url))
        rows.append(await lock_attack(process.url, dsn))
        rows.append(await fanout_attack(process.url))
        rows.append(await memory_attack(process.url, process.proc.pid))
    finally:
        process.stop()
        await drop_database(pg, dsn)
    lines = ["| attack | victim's slowest, idle | victim's slowest, attacked | also |", "|---|---:|---:|---|"]
    for what, idle, worst, note in rows:
        shown = ("—", "—") if idle == worst == 0 else (f"{idle * 1000:.0f} ms", f"{worst * 1000:.0f} ms")
        lines.append(f"| {what} | {shown[0]} | {shown[1]} | {note} |")
    table = "\n".join(lines)
    print(table)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(table + "\n")


if __name__ == "__main__":
    asyncio.run(main())
