"""A subscriber that stops reading is dropped once App.connections.outgoing bytes wait for it; the others hear everything,
undelayed by it."""
from __future__ import annotations

import asyncio
import json

import secrets

import asyncpg
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from hapta.client import Client
from tests.conftest import PASSWORD, gateway_env
from tests.services import GatewayProcess, next_loopback, write_app

ROWS = 5000
TEXT = 5000   # characters per post: ROWS events carry ~25 MB, far past what socket buffers and the cap absorb


CAP = 4 * 1024 * 1024   # App.connections.outgoing here: the reader that keeps up gets slack for a busy test machine


@pytest.fixture
def gateway(tmp_path, database):
    config = write_app(tmp_path / "app", f"""
        import dataclasses, runpy
        from hapta.config import ConnectionBounds
        app = dataclasses.replace(runpy.run_path(APP + "/config.py")["app"], connections=ConnectionBounds(outgoing={CAP}))
    """)
    process = GatewayProcess(gateway_env(database), config=config).start()
    yield process
    process.stop()
    assert "Traceback" not in process.log_text()


async def test_a_subscriber_that_does_not_read_is_dropped_and_slows_nobody(gateway, database):
    fast = await Client.connect(gateway.url, local_addr=(next_loopback(), 0))
    name = "slow" + secrets.token_hex(4)
    me = await fast.call("auth.register", {"email": f"{name}@example.com", "password": PASSWORD})
    await fast.call("realtime.subscribe", {"collection": "posts", "filter": 'text ~ "slowtest"',
                                           "fields": ["id", "text"]})
    slow = await connect(gateway.url, compression=None, max_size=None)
    await slow.send(json.dumps({"id": 1, "op": "auth.resume", "args": {"token": me["token"]}}))
    await slow.recv()
    await slow.send(json.dumps({"id": 2, "op": "realtime.subscribe",
                                "args": {"collection": "posts", "filter": 'text ~ "slowtest"'}}))
    assert "sub" in json.loads(await slow.recv())["data"]
    slow.transport.pause_reading()   # from now on this client reads nothing

    conn = await asyncpg.connect(database)
    try:
        await conn.execute(
            "INSERT INTO posts (author, text, public) SELECT $1, 'slowtest ' || g || repeat('x', $2), true "
            "FROM generate_series(1, $3) g", me["user"]["id"], TEXT, ROWS)
        ids = await conn.fetch("SELECT id FROM posts WHERE text LIKE 'slowtest %'")
    finally:
        await conn.close()
    expected = {r["id"] for r in ids}
    heard: set[str] = set()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    assert len(expected) == ROWS
    while heard != expected:   # every event reaches the subscriber that reads
        event = await fast.next_event(timeout=max(0.1, deadline - loop.time()))
        if event["event"] == "records.change":
            heard.add(event["data"]["record"]["id"])

    slow.transport.resume_reading()
    received = 0
    try:
        while True:
            await asyncio.wait_for(slow.recv(), 10)
            received += 1
    except ConnectionClosed:
        pass
    assert received < ROWS   # it was cut off, not served everything at the others' expense
    conn = await asyncpg.connect(database)
    try:   # leave the shared database's public feed as other tests expect it
        await conn.execute("DELETE FROM posts WHERE text LIKE 'slowtest %'")
    finally:
        await conn.close()
        await fast.close()
