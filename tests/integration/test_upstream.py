"""A database that goes away: every request still gets one clear reply, and service resumes by itself."""
from __future__ import annotations

import asyncio
import time


from hapta.client import Client, HaptaError
from tests.conftest import ANON_KEY, gateway_env
from tests.services import GatewayProcess, cuttable_database


async def test_database_down_then_back(database):
    proxy, dsn = await cuttable_database(database)
    process = GatewayProcess(gateway_env(dsn))
    await asyncio.to_thread(process.start)   # the proxy lives on this loop: do not block it
    try:
        async with await Client.connect(process.url) as client:
            await client.call("auth.anon", {"apikey": ANON_KEY})
            await client.call("records.list", {"collection": "posts"})
            await proxy.cut()
            results = await client.batch([("records.list", {"collection": "posts"}) for _ in range(5)])
            assert all(isinstance(r, HaptaError) and r.code == "UNAVAILABLE" and r.retry_after for r in results), results
            assert await client.call("ping")   # the gateway itself is fine
            await proxy.start()
            deadline = time.monotonic() + 20
            while True:   # the pool reconnects on its own; the client retries as retry_after says
                try:
                    page = await client.call("records.list", {"collection": "posts"})
                    break
                except HaptaError as error:
                    assert error.code == "UNAVAILABLE" and time.monotonic() < deadline
            assert "items" in page
    finally:
        process.stop()
        await proxy.cut()
    assert "Traceback" not in process.log_text(), process.log_text()
