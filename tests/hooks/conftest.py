"""Fixtures for the hooks tests: the hooks test app (tests/apps/hooks) served by its own `hapta serve`."""
from __future__ import annotations

import asyncio
import re
import shutil
import sys
import textwrap
import time
from pathlib import Path

import pytest
import pytest_asyncio

from hapta.client import Client
from tests.conftest import ADMIN_KEY, ANON_KEY, gateway_env
from tests.services import ROOT, GatewayProcess, create_database, drop_database, next_loopback

HOOKS_APP = ROOT / "tests" / "apps" / "hooks"


def announced_tracebacks_only(log: str) -> None:
    """Hooks that raise are meant to leave a traceback in the log, each under its `hook ... failed:` line; any
    other traceback is a gateway bug."""
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last)"):
            assert i > 0 and re.search(r"ERROR hapta\.hooks: hook \S+ failed:$", lines[i - 1]), log


def hooks_app_copy(folder: Path, *, copy_rules: bool = False, **replace: object) -> Path:
    """An app folder running the hooks app with some App fields replaced; its rules/ is a copy when the test
    edits it, else a link."""
    folder.mkdir()
    (folder / "migrations").symlink_to(HOOKS_APP / "migrations")
    if copy_rules:
        shutil.copytree(HOOKS_APP / "rules", folder / "rules")
    else:
        (folder / "rules").symlink_to(HOOKS_APP / "rules")
    (folder / "config.py").write_text(textwrap.dedent(f"""
        import dataclasses, runpy
        app = dataclasses.replace(runpy.run_path({str(HOOKS_APP / "config.py")!r})["app"], **{replace!r})
    """))
    return folder / "config.py"


def serve_with_reload(config: Path, env: dict[str, str]) -> GatewayProcess:
    """`hapta serve --reload` (GatewayProcess appends the usual serve arguments; this adds --reload to them)."""
    command = [sys.executable, "-c", "import sys; from hapta.cli import main; main(sys.argv[1:] + ['--reload'])"]
    return GatewayProcess(env, config=config, command=command)


@pytest_asyncio.fixture(scope="session")
async def hooks_database(pg_admin):
    dsn = await create_database(pg_admin)
    yield dsn
    await drop_database(pg_admin, dsn)


@pytest.fixture(scope="session")
def hooks_gateway(hooks_database):
    process = GatewayProcess(gateway_env(hooks_database), config=HOOKS_APP / "config.py").start()
    yield process
    process.stop()
    announced_tracebacks_only(process.log_text())


@pytest_asyncio.fixture
async def client_of():
    """client_of(gateway, role="anon"|"admin") -> a signed-in Client; all are closed after the test."""
    clients: list[Client] = []

    async def make(gateway: GatewayProcess, role: str = "anon") -> Client:
        client = await Client.connect(gateway.url, local_addr=(next_loopback(), 0))
        clients.append(client)
        if role == "anon":
            await client.call("auth.anon", {"apikey": ANON_KEY})
        else:
            await client.call("auth.admin", {"key": ADMIN_KEY})
        return client
    yield make
    for client in clients:
        await client.close()


async def eventually(check, timeout: float = 30.0, interval: float = 0.05):
    """Poll `check` (an async function) until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not so within {timeout} s: last saw {result!r}")
        await asyncio.sleep(interval)


async def full_pool(admin: Client) -> dict:
    """Wait until every hook worker is back; return the status."""
    async def full():
        status = await admin.call("rules.status")
        return status if status["live"] == status["size"] else None
    return await eventually(full)


def log_shows(process: GatewayProcess, text: str):
    async def check():
        return text in process.log_text()
    return check
