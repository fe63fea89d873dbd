"""The codec alone: frames in, requests/chunks/error replies out, for both subprotocols."""
import msgspec
import pytest

from hapta.protocol.codec import JSON, MAX_BATCH, MSGPACK, Codec, Request


@pytest.fixture(params=[JSON, MSGPACK])
def codec(request):
    return Codec(request.param)


def frame(codec, message):
    return msgspec.msgpack.encode(message) if codec.binary else msgspec.json.encode(message).decode()


def args_of(codec, request: Request):
    """A request's args as values: the codec keeps them as bytes, for the op to decode into its own Struct."""
    return (msgspec.msgpack if codec.binary else msgspec.json).decode(request.args) if len(request.args) else {}


def test_single_request(codec):
    requests, chunks, errors = codec.decode(frame(codec, {"id": 1, "op": "ping", "args": {"a": 1}}))
    assert [(r.id, r.op, args_of(codec, r)) for r in requests] == [(1, "ping", {"a": 1})]
    assert not chunks and not errors


def test_batch_keeps_good_requests_and_answers_bad_ones(codec):
    requests, _, errors = codec.decode(frame(codec, [{"id": 1, "op": "ping"}, {"id": "x", "op": 1}, 5,
                                                     {"op": "ping"}]))
    assert [r.id for r in requests] == [1]
    assert [e["id"] for e in errors] == ["x", None, None]
    assert all(e["error"]["code"] == "BAD_REQUEST" for e in errors)


def test_batch_limits(codec):
    for message in ([], [{"id": i, "op": "ping"} for i in range(MAX_BATCH + 1)]):
        requests, _, errors = codec.decode(frame(codec, message))
        assert not requests and len(errors) == 1 and errors[0]["id"] is None


@pytest.mark.parametrize("bad_id", [True, 2**63, -(2**63) - 1, "x" * 65, 1.5, None, [1], {"a": 1}])
def test_ids_out_of_range_are_not_echoed(codec, bad_id):
    if codec.binary and isinstance(bad_id, int) and bad_id < -(2**63):
        bad_id = 2**64 - 1   # MessagePack cannot carry the JSON case; its own largest integer stands in
    _, _, errors = codec.decode(frame(codec, {"id": bad_id, "op": "ping"}))
    assert errors[0]["id"] is None


@pytest.mark.parametrize("good_id", [0, 2**63 - 1, -(2**63), "", "x" * 64, "é"])
def test_ids_in_range_are_kept(codec, good_id):
    requests, _, _ = codec.decode(frame(codec, {"id": good_id, "op": "ping"}))
    assert requests[0].id == good_id


def test_undecodable_frames():
    assert Codec(JSON).decode("{")[2][0]["error"]["message"] == "invalid JSON"
    assert Codec(MSGPACK).decode(b"\xc1")[2][0]["error"]["message"] == "invalid MessagePack"
    assert Codec(MSGPACK).decode("text")[2][0]["error"]["code"] == "BAD_REQUEST"


def test_chunks():
    _, chunks, _ = Codec(JSON).decode((7).to_bytes(4, "big") + b"data")
    assert (chunks[0].stream, chunks[0].data) == (7, b"data")
    _, chunks, _ = Codec(JSON).decode(b"\x00\x01")   # too short to name a stream
    assert chunks[0].stream == -1
    _, chunks, errors = Codec(MSGPACK).decode(msgspec.msgpack.encode({"op": "files.chunk", "stream": 3,
                                                                       "data": b"\x00\xff"}))
    assert (chunks[0].stream, chunks[0].data, errors) == (3, b"\x00\xff", [])


def test_encode_round_trip(codec):
    reply = {"id": 1, "ok": True, "data": {"items": [1, "two", None]}}
    encoded = codec.encode(reply)
    decoded = msgspec.msgpack.decode(encoded) if codec.binary else msgspec.json.decode(encoded)
    assert decoded == reply
