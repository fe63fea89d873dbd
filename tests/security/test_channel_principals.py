"""A channel membership lives as long as the identity it was joined as (issue 11, item 3): after auth.logout, and
after auth.resume as another user, the socket hears nothing more of the channel, cannot publish into it, and the
others see it leave. (Expiry: tests/live/realtime/test_expiry.py.)"""
from __future__ import annotations

import secrets

from tests.live.realtime.helpers import events_until
from tests.security.helpers import refused


def _left(channel: str):
    return lambda e: e.get("event") == "channels.left" and e["data"]["channel"] == channel


def _presence(action: str, member: str):
    return lambda e: (e.get("event") == "channels.presence" and e["data"]["action"] == action
                      and e["data"]["member"]["id"] == member)


def _message(channel: str, data):
    return lambda e: e.get("event") == "channels.message" and e["data"]["channel"] == channel and \
        e["data"]["data"] == data


async def _heard_before_ping(client, channel: str) -> list:
    """Channel messages for `channel` that reached the client before a ping's reply."""
    await client.call("ping")
    return [e for e in client.received_events() if e.get("event") == "channels.message"
            and e["data"]["channel"] == channel]


async def test_logout_ends_every_membership(user, admin):
    alice, a = await user()
    bob, _ = await user()
    private, room = f"user:{a['user']['id']}", f"room:{secrets.token_hex(4)}"
    await alice.call("channels.join", {"channel": private})
    member = (await alice.call("channels.join", {"channel": room}))["member"]
    await bob.call("channels.join", {"channel": room})
    await admin.call("channels.join", {"channel": private})
    await admin.call("channels.join", {"channel": room})
    await admin.call("channels.publish", {"channel": private, "data": "before"})
    await events_until(alice, _message(private, "before"))

    await alice.call("auth.logout")
    left: dict[str, str] = {}

    def both_left(event) -> bool:
        if event.get("event") == "channels.left":
            left[event["data"]["channel"]] = event["data"]["reason"]
        return len(left) == 2
    await events_until(alice, both_left)
    assert left == {private: "signed out", room: "signed out"}
    await events_until(bob, _presence("leave", member))

    await admin.call("channels.publish", {"channel": private, "data": "after"})
    await admin.call("channels.publish", {"channel": room, "data": "marker"})
    await events_until(bob, _message(room, "marker"))   # the bus has carried both by now, in order
    assert await _heard_before_ping(alice, private) == []
    assert (await refused(alice.call("channels.publish", {"channel": private, "data": "x"}))).code == \
        "UNAUTHENTICATED"
    members = (await bob.call("channels.join", {"channel": room}))["members"]
    assert a["user"]["id"] not in [m["user"] for m in members]


async def test_resume_as_another_user_ends_the_first_users_memberships(user, admin):
    alice, a = await user()
    _, b = await user()
    private = f"user:{a['user']['id']}"
    member = (await alice.call("channels.join", {"channel": private}))["member"]
    await admin.call("channels.join", {"channel": private})
    await alice.call("auth.resume", {"token": b["token"]})   # the same socket now speaks for bob
    event = (await events_until(alice, _left(private)))[-1]
    assert event["data"]["reason"] == "signed in as someone else"
    await events_until(admin, _presence("leave", member))
    refusal = await refused(alice.call("channels.publish", {"channel": private, "data": "as bob"}))
    assert refusal.code == "FORBIDDEN"
    assert (await refused(alice.call("channels.join", {"channel": private}))).code == "FORBIDDEN"
    await admin.call("channels.publish", {"channel": private, "data": "for alice only"})
    await admin.call("ping")
    members = (await admin.call("channels.join", {"channel": private}))["members"]
    assert [m["role"] for m in members] == ["admin"]
    assert await _heard_before_ping(alice, private) == []


async def test_a_token_refresh_keeps_memberships(user, admin):
    alice, a = await user()
    private = f"user:{a['user']['id']}"
    await alice.call("channels.join", {"channel": private})
    await admin.call("channels.join", {"channel": private})
    await alice.call("auth.refresh", {"refresh_token": a["refresh_token"]})
    await admin.call("channels.publish", {"channel": private, "data": "still here"})
    await events_until(alice, _message(private, "still here"))
    assert not [e for e in alice.received_events() if e.get("event") == "channels.left"]
