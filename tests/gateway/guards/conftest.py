"""Gateways with small guard limits, each in its own `hapta serve` child process, and what their tests share."""
from __future__ import annotations

import asyncio
import inspect
import re
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.conftest import gateway_env
from tests.services import GatewayProcess, write_app

# The demo app with limits small enough to reach in a test. Rate limits are off (every key None) so that
# what a test meets is the connection guard it is about.
CAPS_APP = """
    import dataclasses, runpy
    from hapta.config import DEFAULT_LIMITS, ConnectionBounds, Limit
    app = dataclasses.replace(
        runpy.run_path(APP + "/config.py")["app"], limits=dict.fromkeys(DEFAULT_LIMITS),
        connections=ConnectionBounds(total=6, per_address=3, message_rate=Limit(300, per=1, burst=300),
                                     max_message=8192, in_flight=8, outgoing=256 * 1024))
"""

TIMERS_APP = """
    import dataclasses, runpy
    from hapta.config import DEFAULT_LIMITS, ConnectionBounds
    app = dataclasses.replace(
        runpy.run_path(APP + "/config.py")["app"], limits=dict.fromkeys(DEFAULT_LIMITS),
        connections=ConnectionBounds(auth_deadline=1.0, idle_timeout=2.0, ping_interval=0.5, ping_timeout=0.5))
"""


def start_gateway(tmp_path_factory, database: str, app_body: str | None = None, **options: Any) -> GatewayProcess:
    config = {}
    if app_body is not None:
        config["config"] = write_app(tmp_path_factory.mktemp("app"), app_body)
    return GatewayProcess(gateway_env(database), **config, **options).start()


def stop_gateway(process: GatewayProcess) -> None:
    process.stop()
    log = process.log_text()
    assert "Traceback" not in log, log


@pytest.fixture(scope="module")
def capped(tmp_path_factory, database):
    process = start_gateway(tmp_path_factory, database, CAPS_APP)
    yield process
    stop_gateway(process)


@pytest.fixture(scope="module")
def timed(tmp_path_factory, database):
    process = start_gateway(tmp_path_factory, database, TIMERS_APP)
    yield process
    stop_gateway(process)


async def eventually(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy (and return that); fail after `timeout` seconds. It runs in a
    thread, as it may block (e.g. on HTTP); what it returns may be awaitable (a coroutine), and is then awaited."""
    deadline = time.monotonic() + timeout
    while True:
        result = await asyncio.to_thread(check)
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout} s")
        await asyncio.sleep(0.05)


def alive(pid: int) -> bool:
    """Is the process still there, not yet reaped by its parent? (Its main thread turning zombie is not enough: its
    other threads may still hold its sockets open.)"""
    return Path(f"/proc/{pid}").exists()


def two_pids(process: GatewayProcess, without: int | None = None) -> set[int] | None:
    """The two worker pids that answer /health over 20 fresh connections (the kernel spreads them by source
    port), none of them `without`; None if that is not what answered."""
    pids = {process.health()["pid"] for _ in range(20)}
    return pids if len(pids) == 2 and without not in pids else None


def guard_closes(process: GatewayProcess, guard: str) -> float:
    """hapta_guard_closes_total{guard=...} from the process's /metrics (readable from loopback)."""
    import urllib.request
    with urllib.request.urlopen(f"{process.http}/metrics", timeout=5) as response:
        text = response.read().decode()
    found = re.search(rf'^hapta_guard_closes_total\{{guard="{guard}"\}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


async def no_connections(process: GatewayProcess) -> None:
    """Until the gateway counts no open connection (those of earlier tests are closed on both sides)."""
    await eventually(lambda: process.health()["connections"] == 0, what="no open connections")
