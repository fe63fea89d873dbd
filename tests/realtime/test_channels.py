"""channels.*: joining by rule, presence and messages, across two gateway processes on one database."""
from __future__ import annotations

import secrets

import pytest

from hapta.client import Client, HaptaError
from tests.conftest import PASSWORD
from tests.realtime.helpers import change_of, events_until, post


async def _signed_in(url: str) -> tuple[Client, str]:
    client = await Client.connect(url)
    name = "c" + secrets.token_hex(5)
    session = await client.call("auth.register", {"email": f"{name}@example.com", "password": PASSWORD,
                                                  "username": name})
    return client, session["user"]["id"]


def _presence(action: str, member: str):
    def matches(event):
        data = event.get("data") or {}
        return (event.get("event") == "channels.presence" and data.get("action") == action
                and data["member"]["id"] == member)
    return matches


async def test_presence_and_messages_cross_worker_processes(gateway, second_gateway):
    room = f"room:{secrets.token_hex(4)}"
    alice, alice_id = await _signed_in(gateway.url)
    bob, bob_id = await _signed_in(second_gateway.url)
    try:
        joined = await alice.call("channels.join", {"channel": room})
        assert joined["members"] == [{"id": joined["member"], "user": alice_id, "role": "user"}]
        bob_joined = await bob.call("channels.join", {"channel": room})
        assert [m["user"] for m in bob_joined["members"]] == [alice_id, bob_id]
        [event] = await events_until(alice, _presence("join", bob_joined["member"]))
        assert event["data"] == {"channel": room, "action": "join",
                                 "member": {"id": bob_joined["member"], "user": bob_id, "role": "user"}}

        assert await bob.call("channels.publish", {"channel": room, "data": {"typing": True}}) == {}
        [event] = await events_until(alice, lambda e: e["event"] == "channels.message")
        assert event["data"] == {"channel": room, "data": {"typing": True},
                                 "from": {"id": bob_joined["member"], "user": bob_id, "role": "user"}}

        # a record written through one process reaches a subscriber on the other
        await bob.call("realtime.subscribe", {"collection": "posts"})
        created = await post(alice, alice_id, "cross-process")
        await events_until(bob, change_of(created["id"]))

        await bob.close()   # a disconnect is a leave
        await events_until(alice, _presence("leave", bob_joined["member"]))
        again = await alice.call("channels.join", {"channel": room})
        assert [m["user"] for m in again["members"]] == [alice_id]
    finally:
        await alice.close()
        await bob.close()


async def test_leave_is_heard_and_ends_messages(user):
    alice, _ = await user()
    bob, _ = await user()
    room = f"room:{secrets.token_hex(4)}"
    await alice.call("channels.join", {"channel": room})
    bob_member = (await bob.call("channels.join", {"channel": room}))["member"]
    assert await bob.call("channels.leave", {"channel": room}) == {}
    await events_until(alice, _presence("leave", bob_member))
    with pytest.raises(HaptaError) as refused:
        await bob.call("channels.publish", {"channel": room, "data": "hi"})
    assert refused.value.code == "FORBIDDEN"
    with pytest.raises(HaptaError) as missing:
        await bob.call("channels.leave", {"channel": room})
    assert missing.value.code == "NOT_FOUND"


async def test_who_may_join_is_decided_by_the_config_rule(user, anon):
    alice, alice_session = await user()
    _, bob_session = await user()
    own = f"user:{alice_session['user']['id']}"
    assert (await alice.call("channels.join", {"channel": own}))["channel"] == own
    for client, channel, code in [
        (alice, f"user:{bob_session['user']['id']}", "FORBIDDEN"),   # someone else's private channel
        (anon, "room:lobby", "FORBIDDEN"),                          # rooms are for signed-in users
        (alice, "nowhere:1", "FORBIDDEN"),                          # no pattern matches: admins only
        (alice, "room:bad name", "BAD_REQUEST"),
    ]:
        with pytest.raises(HaptaError) as refused:
            await client.call("channels.join", {"channel": channel})
        assert refused.value.code == code, channel


async def test_admins_may_join_any_channel(admin):
    assert (await admin.call("channels.join", {"channel": "nowhere:1"}))["channel"] == "nowhere:1"


async def test_a_message_too_big_for_the_bus_is_refused(user):
    alice, _ = await user(max_size=None)
    room = f"room:{secrets.token_hex(4)}"
    await alice.call("channels.join", {"channel": room})
    with pytest.raises(HaptaError) as refused:
        await alice.call("channels.publish", {"channel": room, "data": "x" * 8000})
    assert refused.value.code == "TOO_LARGE"
