"""The database goes away and comes back: subscribers miss nothing (the change log kept what was written meanwhile),
channel members are told to ask again who is there, and the read cache serves nothing it could not have heard
about."""
from __future__ import annotations

import asyncio
import secrets

import asyncpg

from hapta.client import Client
from tests.conftest import PASSWORD, gateway_env
from tests.live.realtime.helpers import change_of, events_until
from tests.services import GatewayProcess, cuttable_database


async def test_outage_loses_no_event_and_resets_channels(database):
    proxy, dsn = await cuttable_database(database)
    process = GatewayProcess(gateway_env(dsn))
    await asyncio.to_thread(process.start)   # the proxy lives on this loop: do not block it
    sql = await asyncpg.connect(database)    # the test's own way in, around the proxy
    try:
        async with await Client.connect(process.url) as client:
            name = "o" + secrets.token_hex(5)
            session = await client.call("auth.register", {"email": f"{name}@example.com", "password": PASSWORD})
            me = session["user"]["id"]
            room = f"room:{name}"
            await client.call("channels.join", {"channel": room})
            post = await client.call("records.create", {"collection": "posts",
                                                        "data": {"author": me, "text": "before", "public": True}})
            read = {"collection": "posts", "id": post["id"]}
            assert (await client.call("records.get", read))["text"] == "before"   # now cached
            sub = (await client.call("realtime.subscribe", {"collection": "posts"}))["sub"]

            await proxy.cut()
            # written while the gateway cannot hear: its event comes once the gateway is back, and the cache must
            # not hide it
            await sql.execute("UPDATE posts SET text = 'during' WHERE id = $1", post["id"])
            await proxy.start()

            seen = await events_until(client, change_of(post["id"]), timeout=30)
            assert seen[-1]["sub"] == sub and seen[-1]["data"]["record"]["text"] == "during"
            resets = [e for e in seen if e["event"] == "realtime.reset"]
            assert all(e["data"] == {"subs": [], "channels": [room]} for e in resets)
            assert (await client.call("records.get", read))["text"] == "during"

            await sql.execute("UPDATE posts SET text = 'after' WHERE id = $1", post["id"])
            [event] = await events_until(client, change_of(post["id"]))
            assert event["data"]["record"]["text"] == "after"
            assert (await client.call("records.get", read))["text"] == "after"
            # presence is back too: a rejoin lists this connection
            again = await client.call("channels.join", {"channel": room})
            assert [m["user"] for m in again["members"]] == [me]
    finally:
        await sql.close()
        await asyncio.to_thread(process.stop)   # the proxy must keep serving while the gateway shuts down
        await proxy.cut()
    assert "Traceback" not in process.log_text(), process.log_text()
