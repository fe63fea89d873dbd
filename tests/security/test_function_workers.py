"""One client must not take the function workers from everyone else (issue 26, item 8). Before, `functions.call`
had no limit and the workers one queue, first come first served: 30 calls of a slow function from one anon socket,
or six POSTs to a slow webhook with no key at all, made another client's 1 ms function wait behind them until it
was refused UNAVAILABLE.

What holds now, with the bound each test keeps (the gateway here: 2 function workers, calls wait at most 5 s):
- `functions.call` has a default rate limit (DEFAULT_LIMITS, per user, else per address);
- a principal and an address hold at most their share of the workers at once (half of them by default), and
  callers take turns for a free worker: another client's quick function is answered at once, its p99 and its
  slowest under VICTIM_WORST (a few ms idle);
- webhooks as a whole hold at most half the workers and each sending address a quarter: the same bound;
- every attacking request still gets exactly one answer within its bound: the function's, or RATE_LIMITED /
  UNAVAILABLE (503 over HTTP) with retry_after.
"""
from __future__ import annotations

import asyncio
import textwrap
import time
import urllib.error
import urllib.request

import pytest

from hapta.client import HaptaError
from tests.conftest import ANON_KEY, gateway_env
from tests.services import GatewayProcess, next_loopback, write_app

VICTIM_WORST = 1.0   # seconds: another client's slowest quick call during the attack (idle: a few ms)
WAIT = 5.0           # App.function_timeout here: the longest a call waits for a worker, and runs
SLOW = 3.0           # seconds the attackers' function takes

FUNCTIONS = '''
import time
from hapta.functions import call, http

@call(allow="", timeout=5)
def slow(ctx, args):
    time.sleep(args)
    return "done"

@call(allow="", timeout=5)
def quick(ctx, args):
    return args

@http("POST", "/hooks/slow", timeout=5)
def slow_hook(ctx, request):
    time.sleep(float(request["query"].get("seconds", "0")))
    return {"ok": True}
'''


@pytest.fixture(scope="module")
def shared(tmp_path_factory, database):
    """The test app with two function workers (whatever the machine's cores), one hook worker, 5 s per call."""
    folder = tmp_path_factory.mktemp("function-workers") / "app"
    config = write_app(folder, f"""
        import dataclasses, runpy
        app = dataclasses.replace(runpy.run_path(APP + "/config.py")["app"], function_workers=2, rule_workers=1,
                                  function_timeout={WAIT})
    """)
    (folder / "functions").mkdir()
    (folder / "functions" / "attack.py").write_text(textwrap.dedent(FUNCTIONS))
    process = GatewayProcess(gateway_env(database), config=config).start()
    yield process
    process.stop()
    assert "Traceback" not in process.log_text(), process.log_text()


async def anon(open_client, process):
    client = await open_client(process, local_addr=(next_loopback(), 0))
    await client.call("auth.anon", {"apikey": ANON_KEY})
    return client


async def victim_latencies(client, busy) -> list[float]:
    """Another client's quick function, timed one call after another while `busy()` holds (at least 10 times),
    at most 8 a second (under functions.call's default limit): each must be answered, and in time."""
    latencies: list[float] = []
    while busy() or len(latencies) < 10:
        started = time.perf_counter()
        assert await client.call("functions.call", {"name": "quick", "args": len(latencies)}) == len(latencies)
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(max(0.0, 0.125 - latencies[-1]))
    return latencies


def p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


async def answered(coroutine) -> tuple[str, float | None, dict | None, float]:
    """(OK or the error code, retry_after, details, seconds to the answer) of one call."""
    started = time.perf_counter()
    try:
        await coroutine
        return "OK", None, None, time.perf_counter() - started
    except HaptaError as error:
        return error.code, error.retry_after, error.details, time.perf_counter() - started


async def test_thirty_slow_calls_from_one_anon_socket_leave_another_clients_function_quick(shared, open_client):
    attacker, victim = await anon(open_client, shared), await anon(open_client, shared)
    assert await victim.call("functions.call", {"name": "quick", "args": 0}) == 0
    attack = asyncio.ensure_future(asyncio.gather(*(answered(attacker.call("functions.call",
                                                                           {"name": "slow", "args": SLOW}))
                                                    for _ in range(30))))
    latencies = await victim_latencies(victim, lambda: not attack.done())
    outcomes = await attack
    assert max(latencies) < VICTIM_WORST and p99(latencies) < VICTIM_WORST, (p99(latencies), max(latencies))
    # every one of the 30 answered once, within the request's bound, with a documented code
    codes = [code for code, *_ in outcomes]
    assert set(codes) <= {"OK", "RATE_LIMITED", "UNAVAILABLE"}, outcomes
    assert all(retry_after and retry_after > 0 for code, retry_after, _, _ in outcomes if code != "OK"), outcomes
    assert all(seconds < 10 + 2 for *_, seconds in outcomes), outcomes
    assert 1 <= codes.count("OK") <= 4   # one worker's share: a call every 3 s while the others waited <= 5 s
    # functions.call has a limit of its own by default: the calls past its burst were refused before any worker
    limited = [details for code, _, details, _ in outcomes if code == "RATE_LIMITED" and details]
    assert len(limited) >= 10 and all(details["key"] == "functions.call" for details in limited), outcomes


def post(process: GatewayProcess, path: str) -> tuple[int, str | None, float]:
    started = time.perf_counter()
    request = urllib.request.Request(process.http + path, data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            answer.read()
            return answer.status, None, time.perf_counter() - started
    except urllib.error.HTTPError as error:
        error.read()
        return error.code, error.headers.get("Retry-After"), time.perf_counter() - started


async def test_six_posts_to_a_slow_webhook_leave_another_clients_function_quick(shared, open_client):
    """No key at all: a webhook is open to anyone who knows its path."""
    victim = await anon(open_client, shared)
    attack = asyncio.ensure_future(asyncio.gather(*(asyncio.to_thread(post, shared, f"/hooks/slow?seconds={SLOW}")
                                                    for _ in range(6))))
    latencies = await victim_latencies(victim, lambda: not attack.done())
    outcomes = await attack
    assert max(latencies) < VICTIM_WORST and p99(latencies) < VICTIM_WORST, (p99(latencies), max(latencies))
    # each POST answered once: its function's answer (200), or, still running at App.function_http_answer_within,
    # 202 with its run; or after waiting its bound for the webhooks' share, 503 with Retry-After
    statuses = sorted(status for status, _, _ in outcomes)
    assert set(statuses) <= {200, 202, 503} and {200, 202} & set(statuses), outcomes
    assert all(retry for status, retry, _ in outcomes if status == 503), outcomes
    assert all(seconds < WAIT + SLOW + 2 for *_, seconds in outcomes), outcomes
