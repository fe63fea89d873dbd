"""Who numbers the changes (hapta/live/feed.py): one process holds the lease; when it freezes (alive, its
connections open, answering nothing), another numbers after a doorbell goes unanswered, and subscribers hear every
change; when it dies, another takes the lease."""
from __future__ import annotations

import asyncio
import os
import secrets
import signal

import asyncpg

from tests.conftest import gateway_env
from tests.live.realtime.helpers import change_of, events_until
from tests.services import GatewayProcess, create_database, drop_database


async def _signed_in(open_client, process):
    client = await open_client(process)
    name = "n" + secrets.token_hex(5)
    session = await client.call("auth.register", {"email": f"{name}@example.com", "password": "correct horse battery",
                                                  "username": name})
    return client, session["user"]["id"]


async def test_changes_are_numbered_when_the_leader_freezes_and_when_it_dies(pg_admin, open_client):
    dsn = await create_database(pg_admin)
    first = GatewayProcess(gateway_env(dsn))
    await asyncio.to_thread(first.start)          # started first: it holds the lease
    second = GatewayProcess(gateway_env(dsn))
    await asyncio.to_thread(second.start)
    sql = await asyncpg.connect(dsn)
    insert = "INSERT INTO posts (author, text, public) VALUES ($1, $2, true) RETURNING id"
    try:
        holder = await sql.fetchval("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = $1",
                                    0x68617074614e & 0xFFFFFFFF)
        assert holder is not None
        reader, author = await _signed_in(open_client, second)
        await reader.call("realtime.subscribe", {"collection": "posts"})

        os.kill(first.proc.pid, signal.SIGSTOP)   # alive, its sockets open, answering nothing
        try:
            frozen = await sql.fetchval(insert, author, "while the leader is frozen")
            await events_until(reader, change_of(frozen), timeout=15)
        finally:
            os.kill(first.proc.pid, signal.SIGCONT)

        await asyncio.to_thread(first.stop)       # gone: its lease with it
        gone = await sql.fetchval(insert, author, "after the leader stopped")
        await events_until(reader, change_of(gone), timeout=15)
    finally:
        await sql.close()
        await asyncio.to_thread(second.stop)
        await asyncio.to_thread(first.stop)
        await drop_database(pg_admin, dsn)
    assert "Traceback" not in second.log_text(), second.log_text()
