"""The connection guards of a real gateway, each at its documented close code (docs/operations.md): capacity
(1013), a flood (RATE_LIMITED, then 1008), an oversized frame (1009), and a client that never reads (dropped while
the server's memory stays put). The gateway (CAPS_APP in conftest) allows 6 connections, 3 per address."""
from __future__ import annotations

import asyncio
import json

import asyncpg
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from hapta.client import Client
from tests.conftest import ANON_KEY, PASSWORD
from tests.gateway.guards.conftest import eventually, guard_closes, no_connections
from tests.gateway.guards.raw import RawClient
from tests.services import next_loopback, rss_bytes


async def closed_code(client: Client, timeout: float = 10) -> int | None:
    await asyncio.wait_for(client.ws.wait_closed(), timeout)
    return client.close_code


async def test_connections_over_the_per_address_cap_are_closed_1013(capped):
    await no_connections(capped)
    address = next_loopback()
    held = [await Client.connect(capped.url, local_addr=(address, 0)) for _ in range(3)]
    try:
        for client in held:
            assert "time" in await client.call("ping")
        refused_before = guard_closes(capped, "address")
        fourth = await Client.connect(capped.url, local_addr=(address, 0))
        assert await closed_code(fourth) == 1013
        assert "your address" in fourth.ws.close_reason
        assert guard_closes(capped, "address") == refused_before + 1   # and operators see it

        async with await Client.connect(capped.url, local_addr=(next_loopback(), 0)) as elsewhere:
            assert "time" in await elsewhere.call("ping")   # another address is not affected
        await held.pop().close()
        async with await Client.connect(capped.url, local_addr=(address, 0)) as again:   # a place came free
            assert "time" in await again.call("ping")
    finally:
        for client in held:
            await client.close()


async def test_connections_over_the_total_cap_are_closed_1013(capped):
    await no_connections(capped)
    held = [await Client.connect(capped.url, local_addr=(next_loopback(), 0)) for _ in range(6)]
    try:
        for client in held:
            assert "time" in await client.call("ping")
        seventh = await Client.connect(capped.url, local_addr=(next_loopback(), 0))   # a fresh address
        assert await closed_code(seventh) == 1013
        assert "capacity" in seventh.ws.close_reason
        assert all(client.close_code is None for client in held)   # those admitted are untouched
    finally:
        for client in held:
            await client.close()


async def test_a_flood_gets_rate_limited_then_closed_1008(capped):
    """300 messages at once are allowed (the burst); a client that keeps going after RATE_LIMITED is closed."""
    replies = []
    async with connect(capped.url, local_addr=(next_loopback(), 0)) as ws:
        try:
            for frame in range(20):   # 2,000 pings in batches of 100, without waiting for replies
                await ws.send(json.dumps([{"id": frame * 100 + i, "op": "ping"} for i in range(100)]))
            async for message in ws:
                decoded = json.loads(message)
                replies.extend(decoded if isinstance(decoded, list) else [decoded])
        except ConnectionClosed:
            pass
        close_code = ws.close_code
    codes = ["OK" if reply["ok"] else reply["error"]["code"] for reply in replies]
    assert codes.count("OK") >= 300
    limited = [reply for reply in replies if not reply["ok"]]
    assert limited and all(reply["error"]["code"] == "RATE_LIMITED" for reply in limited)
    assert all(0 < reply["error"]["retry_after"] <= 1 for reply in limited)
    assert close_code == 1008


async def test_a_message_over_max_message_closes_1009(capped):
    async with connect(capped.url, local_addr=(next_loopback(), 0)) as ws:
        await ws.send(json.dumps({"id": 1, "op": "ping", "args": {"pad": "x" * 9000}}))   # max_message is 8192
        await asyncio.wait_for(ws.wait_closed(), 10)
        assert ws.close_code == 1009
    async with connect(capped.url, local_addr=(next_loopback(), 0)) as ws:   # just under the limit is served
        await ws.send(json.dumps({"id": 1, "op": "ping", "args": {}}) + " " * 8000)
        assert json.loads(await ws.recv())["ok"]


async def author_of_big_posts(process, database: str) -> tuple[str, dict]:
    """A user with 40 public posts of 10,000 characters (written straight in SQL, past the demo's 280-character
    hook): one records.list page of them, or one UPDATE of them all, is ~400 KB for whoever reads or listens."""
    async with await Client.connect(process.url, local_addr=(next_loopback(), 0)) as owner:
        name = f"big{next_loopback().replace('.', '_')}"
        session = await owner.call("auth.register", {"email": f"{name}@example.com", "password": PASSWORD})
    author = session["user"]["id"]
    conn = await asyncpg.connect(database)
    try:
        await conn.execute("INSERT INTO posts (author, text, public) "
                           "SELECT $1, repeat('x', 10000), true FROM generate_series(1, 40)", author)
    finally:
        await conn.close()
    return author, {"collection": "posts", "filter": f'author = "{author}"', "per_page": 40}


async def silent_client(process) -> RawClient:
    """Signed in (anon), then never reads again; a small receive buffer keeps the kernel from reading for it."""
    client = await RawClient.connect(process.url, local_address=next_loopback(), receive_buffer=16 * 1024)
    await client.send({"id": 0, "op": "auth.anon", "args": {"apikey": ANON_KEY}})
    assert (await client.recv())["ok"]
    return client


DROPPED = "dropped a client that does not read"


async def test_a_client_that_never_reads_is_dropped_and_server_memory_stays_bounded(capped, database):
    """It asks for ~400 KB replies, up to 120 MB of them, and reads none. The gateway drops it once 256 KiB wait
    for it (max_outgoing), its memory does not grow by what was asked, and everyone else is still served."""
    _, page = await author_of_big_posts(capped, database)
    async with await Client.connect(capped.url, local_addr=(next_loopback(), 0)) as bystander:
        await bystander.call("auth.anon", {"apikey": ANON_KEY})
        for _ in range(3):   # the same work for a client that reads: what serving it costs is in the baseline
            assert len((await bystander.call("records.list", page))["items"]) == 40
        baseline = rss_bytes(capped.proc.pid)
        drops = capped.log_text().count(DROPPED)

        silent = await silent_client(capped)
        asked = 0
        try:
            for request_id in range(1, 301):
                await silent.send({"id": request_id, "op": "records.list", "args": page})
                asked += 1
                await asyncio.sleep(0.005)   # a steady stream, under the message rate
        except (ConnectionError, OSError):
            pass
        finally:
            silent.abort()
        assert asked < 300, "the client that never reads was never dropped"
        await eventually(lambda: capped.log_text().count(DROPPED) > drops, what="the drop is logged")
        assert guard_closes(capped, "slow_reader") >= 1
        grown = rss_bytes(capped.proc.pid) - baseline
        assert grown < 48 * 1024 * 1024, f"server memory grew by {grown / 2**20:.0f} MiB"
        assert "time" in await bystander.call("ping")   # still served, on the same process
        assert len((await bystander.call("records.list", page))["items"]) == 40


async def test_a_subscriber_that_never_reads_is_dropped_while_changes_are_pushed(capped, database):
    """The same through realtime events: it subscribes to 40 big posts and stops reading; each UPDATE of them
    (straight in SQL) pushes ~400 KB of records.change events at it, up to 120 MB."""
    author, page = await author_of_big_posts(capped, database)
    async with await Client.connect(capped.url, local_addr=(next_loopback(), 0)) as bystander:
        await bystander.call("auth.anon", {"apikey": ANON_KEY})
        assert len((await bystander.call("records.list", page))["items"]) == 40
        baseline = rss_bytes(capped.proc.pid)
        drops = capped.log_text().count(DROPPED)

        silent = await silent_client(capped)
        await silent.send({"id": 1, "op": "realtime.subscribe",
                           "args": {"collection": "posts", "filter": page["filter"]}})
        assert (await silent.recv())["ok"]
        conn = await asyncpg.connect(database)
        try:
            for round_ in range(300):
                await conn.execute("UPDATE posts SET text = repeat($2, 10000) WHERE author = $1",
                                   author, "abcdefghijklmnopqrstuvwxyz"[round_ % 26])
                if capped.log_text().count(DROPPED) > drops:
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("the subscriber that never reads was never dropped")
        finally:
            await conn.close()
            silent.abort()
        grown = rss_bytes(capped.proc.pid) - baseline
        assert grown < 48 * 1024 * 1024, f"server memory grew by {grown / 2**20:.0f} MiB"
        assert "time" in await bystander.call("ping")
