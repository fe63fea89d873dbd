"""channels.*: joining by rule, presence and messages, across two gateway processes on one database."""
from __future__ import annotations

import secrets

import pytest

from hapta.client import Client, HaptaError
from tests.conftest import PASSWORD
from tests.live.realtime.helpers import change_of, events_until, post
from tests.services import next_loopback


async def _signed_in(url: str, name: str | None = None) -> tuple[Client, str]:
    """A new user's client (or, given the name of one, that user signed in again on a new client)."""
    client = await Client.connect(url, local_addr=(next_loopback(), 0))   # a device of its own: its own limits
    if name is not None:
        session = await client.call("auth.login", {"identity": f"{name}@example.com", "password": PASSWORD})
        return client, session["user"]["id"]
    name = "c" + secrets.token_hex(5)
    session = await client.call("auth.register", {"email": f"{name}@example.com", "password": PASSWORD,
                                                  "username": name})
    client.name = name   # type: ignore[attr-defined]
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


async def test_a_rejoin_with_its_version_hears_only_what_changed(gateway, second_gateway):
    """Carol is in a room, drops, and comes back: told the version of her last answer, the gateway says only who
    joined and who left meanwhile, whichever process they were on. An unknown or forged version gets everyone."""
    room = f"room:{secrets.token_hex(4)}"
    carol, carol_id = await _signed_in(gateway.url)
    stays, stays_id = await _signed_in(gateway.url)
    goes, _ = await _signed_in(second_gateway.url)
    comes, comes_id = await _signed_in(second_gateway.url)
    try:
        await stays.call("channels.join", {"channel": room})
        gone = await goes.call("channels.join", {"channel": room})
        first = await carol.call("channels.join", {"channel": room})
        assert len(first["members"]) == 3 and first["version"]
        await carol.close()   # her socket drops: a leave
        await events_until(stays, _presence("leave", first["member"]))
        await goes.close()    # another leaves while she is away ...
        await events_until(stays, _presence("leave", gone["member"]))
        came = await comes.call("channels.join", {"channel": room})   # ... and another joins
        back, _ = await _signed_in(gateway.url, carol.name)
        again = await back.call("channels.join", {"channel": room, "version": first["version"]})
        assert "members" not in again and again["since"] == first["version"]
        assert [m["id"] for m in again["left"]] == [first["member"], gone["member"]]   # hers: the dropped socket
        assert [(m["id"], m["user"]) for m in again["joined"]] == [(came["member"], comes_id),
                                                                   (again["member"], carol_id)]
        assert again["version"] != first["version"]
        nothing = await back.call("channels.join", {"channel": room, "version": again["version"]})
        assert (nothing["joined"], nothing["left"], nothing["version"]) == ([], [], again["version"])
        for unusable in ("forged.1", first["version"].split(".")[0] + ".999999", "garbage"):
            full = await back.call("channels.join", {"channel": room, "version": unusable})
            assert sorted(m["user"] for m in full["members"]) == sorted([stays_id, comes_id, carol_id])
        await back.close()
    finally:
        for client in (carol, stays, goes, comes):
            await client.close()


async def test_members_carry_the_profile_each_reader_may_see(gateway, second_gateway, admin):
    """A channel whose pattern names presence fields (tests/app: "profiles:*" carries username, email and created):
    each member's profile is its users record as the reader may see it, in join answers and in join events, across
    processes. The email is guarded (its owner's alone): shown to its owner and to admins, never to anyone else."""
    channel = f"profiles:{secrets.token_hex(4)}"
    alice, alice_id = await _signed_in(gateway.url)
    bob, bob_id = await _signed_in(second_gateway.url)
    alice_mail, bob_mail = f"{alice.name}@example.com", f"{bob.name}@example.com"
    try:
        first = await alice.call("channels.join", {"channel": channel})
        [own] = first["members"]
        assert own["user"] == alice_id and own["profile"]["email"] == alice_mail   # her own: she may see it
        assert own["profile"]["username"] == alice.name and own["profile"]["created"]

        bob_joined = await bob.call("channels.join", {"channel": channel})
        shown = {m["user"]: m["profile"] for m in bob_joined["members"]}
        assert shown[alice_id] == {"username": alice.name, "email": None, "created": own["profile"]["created"]}
        assert shown[bob_id]["email"] == bob_mail
        [event] = await events_until(alice, _presence("join", bob_joined["member"]))
        assert event["data"]["member"] == {"id": bob_joined["member"], "user": bob_id, "role": "user",
                                           "profile": {"username": bob.name, "email": None,
                                                       "created": shown[bob_id]["created"]}}

        # an admin sees every field; the others see the admin (no users record) without a profile
        admin_joined = await admin.call("channels.join", {"channel": channel})
        assert {m["user"]: m["profile"]["email"] for m in admin_joined["members"] if m["user"]} == \
            {alice_id: alice_mail, bob_id: bob_mail}
        heard = await events_until(bob, _presence("join", admin_joined["member"]))
        assert heard[-1]["data"]["member"]["profile"] is None

        # back after a drop, told only who joined since: those carry profiles too, as this reader may see them
        again = await bob.call("channels.join", {"channel": channel, "version": first["version"]})
        assert {m["user"]: m["profile"]["email"] for m in again["joined"] if m["user"]} == {bob_id: bob_mail}

        # whatever bob was sent, alice's address was in none of it (nor bob's in what alice heard)
        await bob.call("channels.publish", {"channel": channel, "data": "hi"})
        heard_by_alice = await events_until(alice, lambda e: e["event"] == "channels.message")
        assert alice_mail not in repr([bob_joined, again, heard])
        assert bob_mail not in repr([first, event, heard_by_alice])
        assert "profile" not in heard_by_alice[-1]["data"]["from"]   # messages name their sender by id
    finally:
        await alice.close()
        await bob.close()


async def test_the_demo_online_channel_shows_usernames_and_rooms_show_no_profiles(user):
    alice, alice_session = await user()
    bob, bob_session = await user()
    await alice.call("channels.join", {"channel": "online"})
    joined = await bob.call("channels.join", {"channel": "online"})
    shown = {m["user"]: m["profile"] for m in joined["members"]}
    assert shown[alice_session["user"]["id"]] == {"username": alice_session["user"]["username"]}
    assert shown[bob_session["user"]["id"]] == {"username": bob_session["user"]["username"]}
    [event] = await events_until(alice, _presence("join", joined["member"]))
    assert event["data"]["member"]["profile"] == {"username": bob_session["user"]["username"]}
    room = f"room:{secrets.token_hex(4)}"
    await alice.call("channels.join", {"channel": room})
    assert all("profile" not in m for m in (await bob.call("channels.join", {"channel": room}))["members"])
    await bob.call("channels.leave", {"channel": "online"})
    left = (await events_until(alice, _presence("leave", joined["member"])))[-1]
    assert "profile" not in left["data"]["member"]   # a leave names the member by id
