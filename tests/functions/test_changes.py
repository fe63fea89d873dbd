"""@on: a function runs for every committed change of a collection, through the gateway and straight in SQL, in
commit order, at least once and never again after it succeeded, across a restart of the gateway (changes made
while it was down run when it is back); a change it keeps failing on goes to the dead letters after its retries,
holding back the changes behind it until then, and functions.retry runs it again."""
from __future__ import annotations

import asyncio
import secrets
import textwrap
import time

import asyncpg
import pytest

from hapta.client import Client
from tests.conftest import ADMIN_KEY, PASSWORD, gateway_env
from tests.services import GatewayProcess, next_loopback, write_app


def app_with(folder, table: str):
    config = write_app(folder, """
        import dataclasses, runpy
        app = dataclasses.replace(runpy.run_path(APP + "/config.py")["app"], function_workers=1,
                                  function_retries=(0.05, 0.05))
    """)
    (folder / "functions").mkdir()
    (folder / "functions" / "inbox.py").write_text(textwrap.dedent(f'''
        from hapta.functions import on

        @on("messages", "create", name="{table}")   # a cursor of its own in the tests' shared database
        async def delivered(ctx, change):
            text = change["record"]["text"] if change["record"] else None
            if text == "poison":
                raise RuntimeError("cannot deliver this one")
            await ctx.sql("CREATE TABLE IF NOT EXISTS {table} (id text, pos bigint, text text)")
            await ctx.sql("INSERT INTO {table} VALUES ($1, $2, $3)", change["id"], change["position"], text)
    '''))
    return config


async def ran(conn, table: str, expected: int, timeout: float = 30) -> list:
    deadline = time.monotonic() + timeout
    rows: list = []
    while time.monotonic() < deadline:
        if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table):
            rows = await conn.fetch(f"SELECT id, pos, text FROM {table} ORDER BY pos")
            if len(rows) >= expected:
                return rows
        await asyncio.sleep(0.1)
    raise AssertionError(f"{len(rows)} of {expected} changes ran within {timeout} s: {rows}")


async def started(conn, function: str, timeout: float = 30) -> None:
    """Until the function's cursor exists: a function runs for the changes committed after it first started."""
    deadline = time.monotonic() + timeout
    while not await conn.fetchval("SELECT count(*) FROM hapta.function_cursors WHERE name = $1", function):
        assert time.monotonic() < deadline, f"{function} never started reading the log"
        await asyncio.sleep(0.05)


async def insert_message(conn, sender: str, recipient: str, text: str) -> str:
    return str(await conn.fetchval("INSERT INTO messages (sender, recipient, text) VALUES ($1, $2, $3) RETURNING id",
                                   sender, recipient, text))


@pytest.fixture
def table():
    return f"delivered_{secrets.token_hex(4)}"


async def test_changes_run_in_commit_order_once_and_survive_a_restart(database, tmp_path, table):
    config = app_with(tmp_path / "app", table)
    gateway = await asyncio.to_thread(GatewayProcess(gateway_env(database), config=config).start)
    conn = await asyncpg.connect(database)
    try:
        await started(conn, table)
        client = await Client.connect(gateway.url, local_addr=(next_loopback(), 0))
        name = "c" + secrets.token_hex(4)
        me = (await client.call("auth.register", {"email": f"{name}@example.com", "password": PASSWORD}))["user"]
        through_gateway = await client.call("records.create", {"collection": "messages", "data": {
            "sender": me["id"], "recipient": me["id"], "text": "one"}})
        in_sql = await insert_message(conn, me["id"], me["id"], "two")
        await client.close()
        first = await ran(conn, table, 2)
        assert [(r["id"], r["text"]) for r in first] == [(through_gateway["id"], "one"), (in_sql, "two")]

        gateway.stop()   # changes committed while no gateway runs are not lost
        while_down = [await insert_message(conn, me["id"], me["id"], f"down {i}") for i in range(3)]
        gateway = await asyncio.to_thread(GatewayProcess(gateway_env(database), config=config).start)
        rows = await ran(conn, table, 5)
        assert [r["id"] for r in rows] == [through_gateway["id"], in_sql, *while_down]   # commit order, each once
        assert all(a["pos"] < b["pos"] for a, b in zip(rows, rows[1:]))
        marker = await insert_message(conn, me["id"], me["id"], "after")
        rows = await ran(conn, table, 6)
        assert [r["id"] for r in rows][-1] == marker and len(rows) == 6   # nothing ran twice after its success
    finally:
        await conn.close()
        gateway.stop()
    assert "Traceback" not in gateway.log_text(), gateway.log_text()


async def test_a_change_that_keeps_failing_becomes_a_dead_letter_and_can_be_retried(database, tmp_path, table):
    config = app_with(tmp_path / "app", table)
    gateway = await asyncio.to_thread(GatewayProcess(gateway_env(database), config=config).start)
    conn = await asyncpg.connect(database)
    try:
        async with await Client.connect(gateway.url, local_addr=(next_loopback(), 0)) as admin:
            await admin.call("auth.admin", {"key": ADMIN_KEY})
            user = str(await conn.fetchval("INSERT INTO users (email, username, password_hash) VALUES ($1, $2, 'x') "
                                           "RETURNING id", f"{table}@example.com", table))
            await started(conn, table)
            poison = await insert_message(conn, user, user, "poison")
            behind = await insert_message(conn, user, user, "behind it")
            [row] = await ran(conn, table, 1)
            assert row["id"] == behind   # ran only after the poison one was given up on: order holds
            [dead] = (await admin.call("functions.dead", {"name": table}))["dead"]
            assert dead["change"]["id"] == poison and dead["error"] == "failed 3 times"
            [listed] = [f for f in (await admin.call("functions.list"))["functions"] if f["name"] == table]
            assert listed["dead"] == 1 and listed["last_run"]["outcome"] == "ok"
            runs = (await admin.call("functions.runs", {"name": table}))["runs"]
            assert [r["outcome"] for r in runs][:4] == ["ok", "failed", "failed", "failed"]

            await conn.execute("UPDATE messages SET text = 'cured' WHERE id = $1", poison)
            assert await admin.call("functions.retry", {"id": dead["id"]}) == {"outcome": "ok"}
            assert (await admin.call("functions.dead", {"name": table}))["dead"] == []
            rows = await ran(conn, table, 2)
            assert {r["id"]: r["text"] for r in rows} == {poison: "cured", behind: "behind it"}
    finally:
        await conn.close()
        gateway.stop()
