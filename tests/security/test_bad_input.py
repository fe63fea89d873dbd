"""Bad input that reached a traceback (issue 11, item 14) gets its documented error now, and the connection goes on.
The session's gateway fixture fails the run if anything here left a traceback in its log."""
from __future__ import annotations

import asyncio
import http.client
import json
import secrets
import urllib.parse

import msgspec
import pytest
from websockets.asyncio.client import connect as ws_connect

from tests.security.helpers import refused


async def raw_exchange(url: str, frame: str | bytes, subprotocol: str = "hapta.v1.json") -> list:
    """Send one frame as it is; the replies to it (decoded), then prove the socket still serves a ping."""
    async with ws_connect(url, subprotocols=[subprotocol]) as ws:
        await ws.send(frame)
        decode = msgspec.msgpack.decode if subprotocol.endswith("msgpack") else json.loads
        reply = decode(await asyncio.wait_for(ws.recv(), 10))
        ping = {"id": "after", "op": "ping"}
        await ws.send(msgspec.msgpack.encode(ping) if subprotocol.endswith("msgpack") else json.dumps(ping))
        after = decode(await asyncio.wait_for(ws.recv(), 10))
        assert after["id"] == "after" and after["ok"], after
        return reply if isinstance(reply, list) else [reply]


async def test_a_json_frame_nested_past_the_decoder_gets_bad_request(gateway):
    frame = '{"id": 1, "op": "ping", "args": {"a": ' + "[" * 1100 + "]" * 1100 + "}}"
    [reply] = await raw_exchange(gateway.url, frame)
    assert reply["id"] is None and reply["error"]["code"] == "BAD_REQUEST"
    assert "nested too deeply" in reply["error"]["message"]


async def test_a_messagepack_frame_nested_past_the_decoder_gets_bad_request(gateway):
    frame = b"\x91" * 1100 + b"\x90"   # an array holding an array ... 1,100 deep
    [reply] = await raw_exchange(gateway.url, frame, "hapta.v1.msgpack")
    assert reply["id"] is None and reply["error"]["code"] == "BAD_REQUEST"


async def test_a_messagepack_extension_is_refused(gateway):
    """An Ext value in channel data could not be passed on (JSON has no such thing): refused with the frame."""
    room = f"room:{secrets.token_hex(4)}"
    async with ws_connect(gateway.url, subprotocols=["hapta.v1.msgpack"]) as ws:
        async def call(request: dict) -> dict:
            await ws.send(msgspec.msgpack.encode(request))
            while True:
                message = msgspec.msgpack.decode(await asyncio.wait_for(ws.recv(), 10))
                if "event" not in message:
                    return message
        name = "m" + secrets.token_hex(5)
        assert (await call({"id": 1, "op": "auth.register", "args": {
            "email": f"{name}@example.com", "password": "correct horse battery"}}))["ok"]
        assert (await call({"id": 2, "op": "channels.join", "args": {"channel": room}}))["ok"]
        reply = await call({"id": 3, "op": "channels.publish",
                            "args": {"channel": room, "data": msgspec.msgpack.Ext(7, b"\x00" * 8)}})
        assert reply["id"] is None and reply["error"]["code"] == "BAD_REQUEST"
        assert "extension" in reply["error"]["message"]
        assert (await call({"id": 4, "op": "ping"}))["ok"]


async def test_channel_data_is_held_to_a_nesting_depth(user):
    client, _ = await user()
    room = f"room:{secrets.token_hex(4)}"
    await client.call("channels.join", {"channel": room})
    deep: list = []
    for _ in range(100):
        deep = [deep]
    error = await refused(client.call("channels.publish", {"channel": room, "data": deep}))
    assert error.code == "BAD_REQUEST" and "nested" in error.message
    shallow: list = []
    for _ in range(60):
        shallow = [shallow]
    assert await client.call("channels.publish", {"channel": room, "data": shallow}) == {}


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
async def test_a_timestamp_outside_the_years_one_to_9999_is_a_bad_request(anon, gateway, moment):
    error = await refused(anon.call("records.list", {"collection": "posts", "filter": f'created > "{moment}"'}))
    assert error.code == "BAD_REQUEST" and "out of range" in error.message
    assert moment not in gateway.log_text()   # never logged either (asyncpg used to log the parameter)


def _get(process, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", process.port, timeout=10)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


async def test_an_oauth2_callback_with_too_many_parameters_is_a_bad_request(gateway):
    query = urllib.parse.urlencode({f"p{i}": "x" for i in range(25)})
    assert await asyncio.to_thread(_get, gateway, f"/oauth2/callback?{query}") == 400
    assert await asyncio.to_thread(_get, gateway, "/oauth2/callback?state=" + "%" * 50) == 400
