"""`hapta serve --workers 2`: two processes answer on one port, one that dies is replaced while the other keeps
serving, and without DATABASE_URL they share the embedded PostgreSQL the supervisor started."""
from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from hapta.client import Client
from tests.conftest import ANON_KEY, gateway_env
from tests.gateway.guards.conftest import alive, eventually, stop_gateway, two_pids
from tests.services import GatewayProcess, next_loopback


@pytest.fixture(scope="module")
def two_workers(database):
    process = GatewayProcess(gateway_env(database), workers=2).start()
    yield process
    stop_gateway(process)


def children(pid: int) -> set[int]:
    return {int(child) for child in open(f"/proc/{pid}/task/{pid}/children").read().split()}


async def test_two_workers_share_the_port(two_workers):
    pids = await eventually(lambda: two_pids(two_workers), what="two workers answer")
    assert two_workers.proc.pid not in pids   # the supervisor only supervises
    assert pids == children(two_workers.proc.pid)
    for _ in range(6):   # and over WebSocket, wherever the kernel puts each connection
        async with await Client.connect(two_workers.url, local_addr=(next_loopback(), 0)) as client:
            assert await client.call("auth.anon", {"apikey": ANON_KEY}) == {"role": "anon"}
            assert (await client.call("records.list", {"collection": "posts", "per_page": 1}))["page"] == 1


async def test_a_worker_that_dies_is_restarted_and_service_continues(two_workers):
    pids = await eventually(lambda: two_pids(two_workers), what="two workers answer")
    victim, survivor = sorted(pids)
    os.kill(victim, signal.SIGKILL)
    # Connections the kernel queued on the victim's socket in its last moments die with it (SO_REUSEPORT keeps
    # a queue per socket); from its exit on, the survivor takes every connection until the replacement listens.
    await eventually(lambda: not alive(victim), what="the killed worker is gone")
    for _ in range(5):
        async with await Client.connect(two_workers.url, local_addr=(next_loopback(), 0)) as client:
            assert "time" in await client.call("ping")
    replaced = await eventually(lambda: two_pids(two_workers, without=victim), what="a new worker answers")
    assert survivor in replaced and victim not in replaced
    assert replaced == children(two_workers.proc.pid)
    assert f"worker {victim} exited" in two_workers.log_text()


def processes_using(path: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if path in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


async def test_two_workers_on_the_embedded_database(embedded_data):
    """No DATABASE_URL: the supervisor starts the embedded PostgreSQL and migrates once, the workers share it, and
    it stops with the supervisor."""
    data = embedded_data
    process = GatewayProcess({"HAPTA_DATA_DIR": str(data)}, workers=2, drop=("DATABASE_URL",))
    await asyncio.to_thread(process.start, 120)
    try:
        await eventually(lambda: two_pids(process), what="two workers answer")
        async with await Client.connect(process.url, local_addr=(next_loopback(), 0)) as client:
            assert await client.call("auth.anon", {"apikey": "dev-anon-key"}) == {"role": "anon"}
            assert (await client.call("records.list", {"collection": "posts"}))["items"] == []
        assert process.log_text().count("applied migration app/0001_social.sql") == 1
        assert processes_using(str(data / "postgres"))
    finally:
        assert process.stop() == 0, process.log_text()
    await eventually(lambda: not processes_using(str(data / "postgres")), what="the embedded PostgreSQL stops")
    assert "Traceback" not in process.log_text(), process.log_text()
