"""The guards that are clocks, on a real gateway (TIMERS_APP in conftest): a guest must sign in within 1 s
(else 1008), a connection without a message for 2 s is closed (1000), and a peer that stops answering pings
(every 0.5 s, 0.5 s to answer) is cut (1011)."""
from __future__ import annotations

import asyncio
import time

from hapta.client import Client
from tests.conftest import ANON_KEY
from tests.gateway.guards.raw import RawClient
from tests.services import next_loopback


async def wait_closed(client: Client, timeout: float = 10) -> float:
    """Until the connection is closed; returns when (monotonic)."""
    await asyncio.wait_for(client.ws.wait_closed(), timeout)
    return time.monotonic()


async def test_a_guest_that_does_not_sign_in_is_closed_1008(timed):
    """Pinging is allowed to guests, but it is not signing in: the deadline holds all the same."""
    opened = time.monotonic()
    async with await Client.connect(timed.url, local_addr=(next_loopback(), 0)) as guest:
        async def keep_pinging() -> None:
            while True:
                await guest.call("ping")
                await asyncio.sleep(0.2)
        pinger = asyncio.ensure_future(keep_pinging())
        closed = await wait_closed(guest)
        pinger.cancel()
        await asyncio.gather(pinger, return_exceptions=True)
        assert guest.close_code == 1008
        assert "authentication deadline" in guest.ws.close_reason
        assert closed - opened >= 1.0


async def test_a_signed_in_client_stays_while_it_talks_then_idles_out_1000(timed):
    async with await Client.connect(timed.url, local_addr=(next_loopback(), 0)) as client:
        assert await client.call("auth.anon", {"apikey": ANON_KEY}) == {"role": "anon"}
        talking_until = time.monotonic() + 3.0   # past the sign-in deadline and past the idle timeout
        while time.monotonic() < talking_until:
            last_sent = time.monotonic()
            await client.call("ping")
            await asyncio.sleep(0.3)
        assert client.close_code is None
        closed = await wait_closed(client)   # silent now; the ping/pong underneath does not count as talking
        assert client.close_code == 1000 and client.ws.close_reason == "idle"
        assert closed - last_sent >= 2.0
    # a fresh connection is welcome
    async with await Client.connect(timed.url, local_addr=(next_loopback(), 0)) as again:
        assert "time" in await again.call("ping")


async def test_a_peer_that_stops_answering_pings_is_closed_1011(timed):
    """A client that reads but never answers a ping (its network or its app hung): cut after the ping timeout,
    long before the idle timeout would."""
    client = await RawClient.connect(timed.url, local_address=next_loopback())
    try:
        await client.send({"id": 1, "op": "auth.anon", "args": {"apikey": ANON_KEY}})
        assert (await client.recv())["ok"]
        signed_in = time.monotonic()
        close = await client.wait_closed(timeout=10)
        assert close is not None and close.code == 1011, close
        assert "ping" in close.reason
        assert time.monotonic() - signed_in < 2.0   # not the idle timeout (2 s after the last message)
    finally:
        client.abort()
