"""The request path in-process (tests/harness.py): one reply per request, who may call what, typed args, limits,
deadlines and the mapping of failures, through Gateway.dispatch as a socket would reach it."""
from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from pathlib import Path

import asyncpg
import pytest

from hapta.protocol.codec import MSGPACK
from hapta.protocol.errors import HaptaError

PROTOCOL = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def _swap(gateway, monkeypatch, op: str, handler) -> None:
    """Serve `op` with `handler` for one test (the table is the gateway's own: its dispatch is what is tested)."""
    monkeypatch.setitem(gateway.ops, op, dataclasses.replace(gateway.ops[op], handler=handler))


async def test_the_op_table_is_the_protocol(harness):
    """Every op docs/protocol.md lists is served, and nothing else."""
    documented = set(re.findall(r"^\| `([a-z0-9_]+(?:\.[a-z0-9_]+)*)` \|", PROTOCOL.read_text(), re.M))
    documented = {name for name in documented if not name.startswith("hapta_")}   # the metrics table
    assert set(harness.gateway.ops) == documented


async def test_every_message_of_a_batch_gets_exactly_one_reply(harness):
    device = harness.device()
    replies = await device.send([{"id": 1, "op": "ping"}, {"id": 2, "op": "no.such"},
                                 {"id": 3, "op": "records.list", "args": {"collection": "posts"}},
                                 {"id": 4, "op": "ping", "args": [1]}, {"op": "ping"}])
    by_id = {}
    for reply in replies:
        assert reply["id"] not in by_id, replies
        by_id[reply["id"]] = reply
    assert by_id[1]["ok"] is True
    assert by_id[2]["error"]["code"] == "UNKNOWN_OP"
    assert by_id[3]["error"]["code"] == "UNAUTHENTICATED"   # a guest, before auth.*
    assert by_id[4]["error"]["code"] == "BAD_REQUEST"       # args must be an object
    assert by_id[None]["error"]["code"] == "BAD_REQUEST"    # no usable id
    assert len(replies) == 5


@pytest.mark.parametrize("subprotocol", ["hapta.v1.json", MSGPACK])
async def test_args_are_decoded_once_into_the_ops_own_types(harness, subprotocol):
    device = await harness.user(subprotocol)
    unknown = await device.request("records.list", {"collection": "posts", "colour": "red"})
    assert unknown["error"]["code"] == "BAD_REQUEST" and "colour" in unknown["error"]["message"]
    wrong = await device.request("records.list", {"collection": "posts", "per_page": "ten"})
    assert wrong["error"]["code"] == "BAD_REQUEST" and "per_page" in wrong["error"]["message"]
    over = await device.request("records.list", {"collection": "posts", "per_page": 501})
    assert over["error"]["code"] == "BAD_REQUEST"
    made = await device.call("records.create", {"collection": "posts", "data": {
        "author": device.user["id"], "text": "typed", "public": True}})
    got = await device.call("records.get", {"collection": "posts", "id": made["id"], "fields": ["id", "text"]})
    assert got == {"id": made["id"], "text": "typed"}


async def test_an_expired_token_reaches_only_what_a_guest_may(harness):
    device = await harness.user()
    device.peer.principal.expires_at = int(time.time()) - 1
    refused = await device.request("records.list", {"collection": "posts"})
    assert refused["error"]["code"] == "TOKEN_EXPIRED"
    assert (await device.request("ping"))["ok"]
    assert (await device.call("auth.me"))["user"]["id"] == device.user["id"]


async def test_a_bug_is_answered_internal_and_logged_without_the_args(harness, monkeypatch):
    async def broken(call, args):
        raise KeyError("a-bug")
    _swap(harness.gateway, monkeypatch, "ping", broken)
    device = harness.device()
    reply = await device.request("ping", {"secret": "hunter2"})
    assert reply["error"] == {"code": "INTERNAL", "message": "internal error"}
    (logged,) = harness.errors.records
    harness.errors.records.clear()
    assert "ping" in logged.getMessage() and "hunter2" not in logged.getMessage()


@pytest.mark.parametrize("trouble", [asyncpg.exceptions.ConnectionDoesNotExistError("gone"),
                                     ConnectionResetError("reset"),
                                     asyncpg.exceptions.QueryCanceledError("statement timeout")])
async def test_upstream_trouble_is_unavailable_or_timeout_with_retry_after(harness, monkeypatch, trouble):
    async def failing(call, args):
        raise trouble
    _swap(harness.gateway, monkeypatch, "ping", failing)
    reply = await harness.device().request("ping")
    assert reply["error"]["code"] in ("UNAVAILABLE", "TIMEOUT") and reply["error"]["retry_after"] > 0


async def test_a_request_past_its_deadline_is_answered_timeout(harness, monkeypatch):
    async def frozen(call, args):
        await asyncio.Event().wait()   # an upstream that never answers
    _swap(harness.gateway, monkeypatch, "ping", frozen)
    monkeypatch.setattr(harness.gateway.deadlines, "seconds", 0.3)
    device = harness.device()
    reply = await asyncio.wait_for(device.request("ping"), 5)
    assert reply["error"]["code"] == "TIMEOUT" and reply["error"]["retry_after"] == 1.0
    assert (await device.request("auth.me"))["ok"]   # the connection goes on


async def test_ops_a_guest_may_call_are_limited_per_address(harness):
    """auth.login: 5 a minute per client address (tests/app/config.py), whoever the identity."""
    device, elsewhere = harness.device(), harness.device()
    codes = [(await device.request("auth.login", {"identity": f"nobody{n}@example.com", "password": "x"}))
             ["error"]["code"] for n in range(6)]
    assert codes == ["INVALID_CREDENTIALS"] * 5 + ["RATE_LIMITED"]
    other = await elsewhere.request("auth.login", {"identity": "nobody@example.com", "password": "x"})
    assert other["error"]["code"] == "INVALID_CREDENTIALS"


async def test_admins_are_not_rate_limited(harness):
    admin = await harness.admin()
    status = await admin.call("limits.status", {"op": "auth.login"})
    assert status == {"limit": None, "remaining": None, "reset": 0}
    for _ in range(8):
        assert (await admin.request("auth.login", {"identity": "nobody@example.com", "password": "x"}))[
            "error"]["code"] == "INVALID_CREDENTIALS"


async def test_a_handlers_refusal_reaches_the_client_as_it_was_raised(harness, monkeypatch):
    async def refusing(call, args):
        raise HaptaError("CONFLICT", "taken", details={"fields": ["x"]})
    _swap(harness.gateway, monkeypatch, "ping", refusing)
    reply = await harness.device().request("ping")
    assert reply["error"] == {"code": "CONFLICT", "message": "taken", "details": {"fields": ["x"]}}
