"""Fuzzing where bytes from anyone first meet the gateway (issue 11, item 14): the codec and the HTTP routes (the
filter language: tests/query/test_filter_fuzz.py). Whatever comes in, the answer is a documented error, never an
exception, a 5xx or a traceback in the log. Derandomized (the same examples in every run), bounded in examples."""
from __future__ import annotations

import http.client
import string
import urllib.parse

import msgspec
from hypothesis import HealthCheck, given, settings, strategies as st

from hapta.protocol.codec import JSON, MSGPACK, Codec

FUZZ = settings(max_examples=400, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.floats()
           | st.text(max_size=30))   # the integers MessagePack can carry
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)
# frames nested deeper than a decoder can follow, each way
nested = st.integers(min_value=900, max_value=3000).map(lambda n: "[" * n + "]" * n) | st.integers(
    min_value=900, max_value=3000).map(lambda n: '{"id": 1, "op": "ping", "args": {"a": ' + "[" * n + "]" * n + "}}")
messages = values | st.fixed_dictionaries({"id": values, "op": values}, optional={"args": values}) \
    | st.lists(st.fixed_dictionaries({"id": values, "op": values}, optional={"args": values}), max_size=5)


def _well_formed(requests, chunks, errors, binary=False) -> None:
    for error in errors:
        assert error["ok"] is False and error["error"]["code"] == "BAD_REQUEST", error
    for request in requests:   # args stay bytes until the op decodes them: they must decode to an object
        args = (msgspec.msgpack if binary else msgspec.json).decode(request.args) if len(request.args) else {}
        assert isinstance(request.op, str) and isinstance(args, dict)


@FUZZ
@given(st.text(max_size=3000) | nested)
def test_the_json_codec_answers_any_text(text):
    _well_formed(*Codec(JSON).decode(text))


@FUZZ
@given(messages)
def test_the_json_codec_answers_any_message_shape(message):
    _well_formed(*Codec(JSON).decode(msgspec.json.encode(message).decode()))


@FUZZ
@given(st.binary(max_size=3000) | st.integers(min_value=900, max_value=3000).map(lambda n: b"\x91" * n + b"\x90"))
def test_the_messagepack_codec_answers_any_bytes(frame):
    _well_formed(*Codec(MSGPACK).decode(frame), binary=True)


@FUZZ
@given(messages)
def test_the_messagepack_codec_answers_any_message_shape(message):
    _well_formed(*Codec(MSGPACK).decode(msgspec.msgpack.encode(message)), binary=True)


# ---- the HTTP routes, on a running gateway ----------------------------------------------------------------------

ROUTES = ["/", "/health", "/metrics", "/oauth2/callback", "/files/", "/files/posts/media/", "/ws", "/nope"]
header_values = st.text(alphabet=string.printable.replace("\r", "").replace("\n", ""), max_size=200) | st.builds(
    lambda n, tail: "bytes=" + "9" * n + tail, st.integers(min_value=1, max_value=6000), st.sampled_from(["-", "-5"]))


@FUZZ
@given(route=st.sampled_from(ROUTES), tail=st.text(max_size=80), query=st.lists(
    st.tuples(st.text(max_size=12), st.text(max_size=40)), max_size=30),
       range_=header_values, authorization=header_values, method=st.sampled_from(["GET", "HEAD", "POST"]))
def test_the_http_routes_answer_anything_without_a_server_error(gateway, route, tail, query, range_, authorization,
                                                                method):
    path = route + urllib.parse.quote(tail) + ("?" + urllib.parse.urlencode(query) if query else "")
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        conn.putheader("Range", range_.strip())
        conn.putheader("Authorization", authorization.strip())
        conn.endheaders()
        status = conn.getresponse().status
    except (http.client.RemoteDisconnected, ConnectionResetError):
        status = 400   # the server refused the request line or headers outright: not a crash
    finally:
        conn.close()
    assert status < 500, (method, path, status)
