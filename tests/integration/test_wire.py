"""The wire format, pinned with raw frames over plain websockets (no Hapta client in between)."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import msgspec
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import ANON_KEY


async def recv_json(ws):
    return json.loads(await ws.recv())


async def replies_for(ws, ids: set) -> dict:
    """Collect replies until every id in `ids` is answered; replies may come batched and in any order."""
    got: dict = {}
    while set(got) != ids:
        message = await recv_json(ws)
        for item in message if isinstance(message, list) else [message]:
            assert item["id"] not in got, f"two replies for {item['id']}"
            got[item["id"]] = item
    return got


async def test_ping_reply_shape(gateway):
    async with connect(gateway.url) as ws:
        assert ws.subprotocol is None   # JSON is the default when the client asks for none
        await ws.send('{"id": 7, "op": "ping"}')
        reply = await recv_json(ws)
        assert reply["id"] == 7 and reply["ok"] is True and isinstance(reply["data"]["time"], int)


async def test_string_ids_are_echoed_and_guest_is_refused(gateway):
    async with connect(gateway.url, subprotocols=["hapta.v1.json"]) as ws:
        assert ws.subprotocol == "hapta.v1.json"
        await ws.send(json.dumps({"id": "req-1", "op": "records.list", "args": {"collection": "posts"}}))
        reply = await recv_json(ws)
        assert reply == {"id": "req-1", "ok": False, "error": {"code": "UNAUTHENTICATED", "message": reply["error"]["message"]}}


@pytest.mark.parametrize("frame, expected_id", [
    ("{not json", None),
    ('{"op": "ping"}', None),                          # no id
    ('{"id": true, "op": "ping"}', None),               # id of the wrong type
    ('{"id": "' + "x" * 65 + '", "op": "ping"}', None),  # id too long
    ('{"id": 9223372036854775808, "op": "ping"}', None),  # id past int64
    ('{"id": 3, "op": 5}', 3),                         # usable id, bad op
    ('{"id": 4, "op": "ping", "args": [1]}', 4),       # args not an object
    ('"just a string"', None),
    ("[]", None),                                      # empty batch
])
async def test_malformed_messages_get_bad_request(gateway, frame, expected_id):
    async with connect(gateway.url) as ws:
        await ws.send(frame)
        reply = await recv_json(ws)
        assert reply["id"] == expected_id
        assert reply["ok"] is False and reply["error"]["code"] == "BAD_REQUEST"
        await ws.send('{"id": 1, "op": "ping"}')   # the connection still serves
        assert (await recv_json(ws))["ok"] is True


async def test_unknown_op(gateway):
    async with connect(gateway.url) as ws:
        await ws.send('{"id": 1, "op": "records.explode"}')
        reply = await recv_json(ws)
        assert reply["id"] == 1 and reply["error"]["code"] == "UNKNOWN_OP"


async def test_unknown_argument_is_named(gateway):
    async with connect(gateway.url) as ws:
        await ws.send(json.dumps({"id": 1, "op": "auth.anon", "args": {"apikey": ANON_KEY, "bogus": 1}}))
        reply = await recv_json(ws)
        assert reply["error"]["code"] == "BAD_REQUEST" and "bogus" in reply["error"]["message"]


async def test_batch_gets_one_reply_per_request(gateway):
    async with connect(gateway.url) as ws:
        await ws.send(json.dumps([
            {"id": 1, "op": "ping"},
            {"id": 2, "op": "auth.anon", "args": {"apikey": ANON_KEY}},
            {"id": 3, "op": "nope"},
            {"id": "four", "op": 42},
        ]))
        got = await replies_for(ws, {1, 2, 3, "four"})
        assert got[1]["ok"] and got[2]["data"] == {"role": "anon"}
        assert got[3]["error"]["code"] == "UNKNOWN_OP" and got["four"]["error"]["code"] == "BAD_REQUEST"


async def test_pipelining_past_the_in_flight_bound_answers_everything(gateway):
    async with connect(gateway.url) as ws:
        count = 500   # well over max_in_flight (64): reading pauses, nothing is dropped
        for i in range(count):
            await ws.send(json.dumps({"id": i, "op": "ping"}))
        got = await replies_for(ws, set(range(count)))
        assert all(reply["ok"] for reply in got.values())


async def test_binary_frame_for_unknown_stream(gateway):
    async with connect(gateway.url) as ws:
        await ws.send((12345).to_bytes(4, "big") + b"chunk")
        reply = await recv_json(ws)
        assert reply["id"] is None and reply["error"]["code"] == "BAD_REQUEST"
        assert "12345" in reply["error"]["message"]


async def test_oversized_frame_closes_1009_and_next_connection_works(gateway):
    async with connect(gateway.url, max_size=None) as ws:
        await ws.send('{"id": 1, "op": "ping", "args": {"pad": "' + "x" * (70 * 1024) + '"}}')
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 1009
    async with connect(gateway.url) as ws:
        await ws.send('{"id": 2, "op": "ping"}')
        assert (await recv_json(ws))["ok"] is True


async def test_repeated_garbage_closes_1008(gateway):
    async with connect(gateway.url) as ws:
        with pytest.raises(ConnectionClosed):
            for _ in range(100):
                await ws.send("garbage")
                await ws.recv()
        assert ws.close_code == 1008


async def test_msgpack_subprotocol(gateway):
    async with connect(gateway.url, subprotocols=["hapta.v1.msgpack"]) as ws:
        assert ws.subprotocol == "hapta.v1.msgpack"
        await ws.send(msgspec.msgpack.encode([{"id": 1, "op": "ping"}, {"id": 2, "op": "auth.anon",
                                                                         "args": {"apikey": ANON_KEY}}]))
        got = {}
        while len(got) < 2:
            frame = await ws.recv()
            assert isinstance(frame, bytes)
            message = msgspec.msgpack.decode(frame)
            for item in message if isinstance(message, list) else [message]:
                got[item["id"]] = item
        assert got[1]["ok"] and got[2]["data"] == {"role": "anon"}
        await ws.send('{"id": 3, "op": "ping"}')   # a text frame has no place in MessagePack mode
        reply = msgspec.msgpack.decode(await ws.recv())
        assert reply["id"] is None and reply["error"]["code"] == "BAD_REQUEST"
        await ws.send(msgspec.msgpack.encode({"op": "files.chunk", "stream": 77, "data": b"abc"}))
        reply = msgspec.msgpack.decode(await ws.recv())
        assert reply["error"]["code"] == "BAD_REQUEST" and "77" in reply["error"]["message"]


async def test_unsupported_subprotocol_is_refused(gateway):
    with pytest.raises(InvalidStatus) as refused:
        async with connect(gateway.url, subprotocols=["graphql-ws"]):
            pass
    assert refused.value.response.status_code == 400


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_health_and_unknown_paths(gateway):
    status, body = _get(gateway.http + "/health")
    assert status == 200 and json.loads(body)["status"] == "ok"
    assert _get(gateway.http + "/nothing-here")[0] == 404
