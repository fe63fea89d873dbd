"""Can a caller tell a known email from an unknown one? `python -m bench.enumeration [--calls 200]`.

One gateway (the tests' app; limits off, else the per-address and per-email limits would stop the run within a few
calls: that is their job; no SMTP_URL, so mails are written as files, after the reply, by the sender task). For
each op that takes an email from anyone, the same number of calls with emails that have an account and emails
that have none, interleaved one by one on one connection (in a random order within each pair) so that the machine's
drift hits both alike, with a short pause after each call: a known email's mail is written out after its reply, and
without the pause that work lands on whichever call comes next. It prints whether every reply was the same and the
latency of each side (median, p90), with the difference of the medians; writes bench/results/enumeration.md.
"""
from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench.hooks import write_results
from hapta.client import Client
from hapta.protocol.errors import HaptaError
from tests.conftest import PASSWORD, gateway_env
from tests.services import APP, GatewayProcess, admin_dsn, create_database, drop_database

RESULTS = Path(__file__).resolve().parent / "results" / "enumeration.md"
CONFIG = """
import dataclasses, runpy, hapta.config
app = dataclasses.replace(runpy.run_path({app!r})["app"], connections=hapta.config.ConnectionBounds(message_rate=None),
                          limits=dict.fromkeys(hapta.config.DEFAULT_LIMITS), require_verified={by_mail})
"""
# What each op is sent for an email; the password for auth.login is wrong on both sides (a right one would sign in).
OPS = {
    "auth.reset.request": lambda email: {"email": email},
    "auth.otp.request": lambda email: {"email": email},
    "auth.login": lambda email: {"identity": email, "password": "not the password at all"},
}
# On a gateway whose app requires verified emails, registering answers alike too ({check_mail: true}).
OPS_BY_MAIL = {"auth.register": lambda email: {"email": email, "password": PASSWORD}}


async def answer(client: Client, op: str, args: dict) -> tuple[float, str]:
    """(seconds, what the caller sees): the reply, or the error's code and message."""
    started = time.perf_counter()
    try:
        reply = repr(await client.call(op, args))
    except HaptaError as error:
        reply = f"{error.code}: {error}"
    return time.perf_counter() - started, reply


async def register_known(url: str, calls: int) -> list[str]:
    known = []
    async with await Client.connect(url) as client:
        for _ in range(calls):
            email = f"k{secrets.token_hex(6)}@example.com"
            await client.call("auth.register", {"email": email, "password": PASSWORD})
            await client.call("auth.logout")
            known.append(email)
    return known


async def measure(url: str, known: list[str], ops: dict, gap: float) -> dict[str, dict]:
    async with await Client.connect(url) as client:
        results: dict[str, dict] = {}
        for op, args_of in ops.items():
            times: dict[str, list[float]] = {"known": [], "unknown": []}
            replies: dict[str, set[str]] = {"known": set(), "unknown": set()}
            for email in known[:5]:   # warm up both paths
                await answer(client, op, args_of(email))
                await answer(client, op, args_of(f"w{secrets.token_hex(6)}@example.com"))
            for email in known:
                pair = [("known", email), ("unknown", f"u{secrets.token_hex(6)}@example.com")]
                random.shuffle(pair)
                for side, address in pair:
                    seconds, reply = await answer(client, op, args_of(address))
                    times[side].append(seconds * 1000)
                    replies[side].add(reply)
                    await asyncio.sleep(gap)
            results[op] = {"times": times, "same": replies["known"] == replies["unknown"] and
                           len(replies["known"]) == 1, "reply": sorted(replies["known"])[0]}
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description="known against unknown emails: replies and timing")
    parser.add_argument("--calls", type=int, default=200, help="calls per side and op (default 200)")
    parser.add_argument("--gap", type=float, default=0.02, help="seconds of pause after each call (default 0.02)")
    args = parser.parse_args()
    admin = asyncio.run(admin_dsn())
    database = asyncio.run(create_database(admin))
    folder = Path(tempfile.mkdtemp(prefix="hapta-bench-enumeration-"))
    server = None
    try:
        (folder / "migrations").symlink_to(APP / "migrations")
        (folder / "rules").symlink_to(APP / "rules")
        (folder / "by-mail.py").write_text(CONFIG.format(app=str(APP / "config.py"), by_mail=True))
        (folder / "config.py").write_text(CONFIG.format(app=str(APP / "config.py"), by_mail=False))
        server = GatewayProcess(gateway_env(database, HAPTA_DATA_DIR=str(folder / "data")),
                                config=folder / "config.py").start()
        known = asyncio.run(register_known(server.url, args.calls))
        results = asyncio.run(measure(server.url, known, OPS, args.gap))
        server.stop()
        server = GatewayProcess(gateway_env(database, HAPTA_DATA_DIR=str(folder / "data")),
                                config=folder / "by-mail.py").start()
        for op, result in asyncio.run(measure(server.url, known, OPS_BY_MAIL, args.gap)).items():
            results[f"{op} (require_verified)"] = result
        lines = [f"# Known against unknown emails — {time.strftime('%Y-%m-%d %H:%M')}", "",
                 f"{args.calls} calls per side, interleaved on one connection, {args.gap * 1000:g} ms apart; "
                 "milliseconds.", "",
                 "| op | same reply | known p50 | unknown p50 | difference | known p90 | unknown p90 |",
                 "|---|---|---:|---:|---:|---:|---:|"]
        for op, result in results.items():
            known, unknown = result["times"]["known"], result["times"]["unknown"]
            p50k, p50u = statistics.median(known), statistics.median(unknown)
            p90k, p90u = (statistics.quantiles(side, n=10)[-1] for side in (known, unknown))
            lines.append(f"| {op} | {'yes' if result['same'] else 'NO'} | {p50k:.2f} | {p50u:.2f} | "
                         f"{p50k - p50u:+.2f} | {p90k:.2f} | {p90u:.2f} |")
        write_results(RESULTS, "\n".join(lines) + "\n")
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)
        asyncio.run(drop_database(admin, database))


if __name__ == "__main__":
    main()
