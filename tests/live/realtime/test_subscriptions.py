"""realtime.subscribe against a real gateway: who hears what, for writes through the gateway and straight in SQL."""
from __future__ import annotations

import asyncio
import re
import time
import urllib.request

import asyncpg
import pytest

from hapta.client import Client, HaptaError
from tests.conftest import ANON_KEY
from tests.live.realtime.helpers import change_of, events_until, ids_in, post


async def test_gateway_writes_reach_a_collection_subscriber(user):
    writer, alice = await user()
    reader, _ = await user()
    started = await reader.call("realtime.subscribe", {"collection": "posts"})
    assert started["sub"] == "s1" and isinstance(started["pos"], int)
    created = await post(writer, alice["user"]["id"], "first")
    [event] = await events_until(reader, change_of(created["id"]))
    assert event == {"event": "records.change", "sub": "s1",
                     "data": {"action": "create", "collection": "posts", "record": created, "pos": event["data"]["pos"]}}
    assert event["data"]["pos"] > started["pos"]

    updated = await writer.call("records.update", {"collection": "posts", "id": created["id"],
                                                   "data": {"text": "edited"}})
    [event] = await events_until(reader, change_of(created["id"]))
    assert event["data"]["action"] == "update" and event["data"]["record"] == updated

    await writer.call("records.delete", {"collection": "posts", "id": created["id"]})
    [event] = await events_until(reader, change_of(created["id"]))
    assert event["data"]["action"] == "delete"
    assert event["data"]["record"]["id"] == created["id"] and event["data"]["record"]["text"] == "edited"


async def test_straight_sql_writes_reach_subscribers(user, database):
    reader, bob = await user()
    await reader.call("realtime.subscribe", {"collection": "posts"})
    conn = await asyncpg.connect(database)
    try:
        post_id = await conn.fetchval("INSERT INTO posts (author, text, public) VALUES ($1, 'from sql', true) "
                                      "RETURNING id", bob["user"]["id"])
        [event] = await events_until(reader, change_of(post_id))
        assert event["data"]["action"] == "create" and event["data"]["record"]["text"] == "from sql"
        await conn.execute("UPDATE posts SET text = 'sql edit' WHERE id = $1", post_id)
        [event] = await events_until(reader, change_of(post_id))
        assert event["data"]["action"] == "update"
        assert event["data"]["record"]["text"] == "sql edit" and event["data"]["record"]["version"] == 2
        await conn.execute("DELETE FROM posts WHERE id = $1", post_id)
        [event] = await events_until(reader, change_of(post_id))
        assert event["data"]["action"] == "delete"
    finally:
        await conn.close()


async def test_a_record_the_subscriber_may_not_view_never_reaches_it(user, anon):
    writer, alice = await user()
    stranger, _ = await user()
    author_id = alice["user"]["id"]
    await stranger.call("realtime.subscribe", {"collection": "posts"})
    await anon.call("realtime.subscribe", {"collection": "posts"})
    await writer.call("realtime.subscribe", {"collection": "posts"})

    secret = await post(writer, author_id, "secret", public=False)
    marker = await post(writer, author_id, "marker")
    for client in (stranger, anon):
        assert ids_in(await events_until(client, change_of(marker["id"]))) == [marker["id"]]
    # the author may view it, so the author hears it
    assert ids_in(await events_until(writer, change_of(marker["id"]))) == [secret["id"], marker["id"]]

    # a rule-relevant update: the public post turns private -> others get a delete with nothing but its id
    await writer.call("records.update", {"collection": "posts", "id": marker["id"], "data": {"public": False}})
    for client in (stranger, anon):
        [event] = await events_until(client, change_of(marker["id"]))
        assert event["data"] == {"action": "delete", "collection": "posts", "record": {"id": marker["id"]},
                                 "pos": event["data"]["pos"]}
    [event] = await events_until(writer, change_of(marker["id"]))
    assert event["data"]["action"] == "update" and event["data"]["record"]["public"] is False

    # while private, its edits reach nobody else
    await writer.call("records.update", {"collection": "posts", "id": marker["id"], "data": {"text": "hidden"}})
    # and when it turns public again, it starts reaching them (as an update of the record as it now stands)
    await writer.call("records.update", {"collection": "posts", "id": marker["id"], "data": {"public": True}})
    for client in (stranger, anon):
        [event] = await events_until(client, change_of(marker["id"]))
        assert event["data"]["action"] == "update"
        assert event["data"]["record"]["text"] == "hidden" and event["data"]["record"]["public"] is True


async def test_relation_rules_are_checked_with_the_related_record(user):
    writer, alice = await user()
    stranger, _ = await user()
    author_id = alice["user"]["id"]
    private = await post(writer, author_id, "private", public=False)
    public = await post(writer, author_id, "public")
    await stranger.call("realtime.subscribe", {"collection": "comments"})
    hidden = await writer.call("records.create", {"collection": "comments",
                                                  "data": {"post": private["id"], "author": author_id, "text": "a"}})
    shown = await writer.call("records.create", {"collection": "comments",
                                                 "data": {"post": public["id"], "author": author_id, "text": "b"}})
    events = await events_until(stranger, change_of(shown["id"]))
    assert hidden["id"] not in ids_in(events) and ids_in(events) == [shown["id"]]


async def test_filter_fields_and_single_record_subscriptions(user):
    writer, alice = await user()
    reader, _ = await user()
    author_id = alice["user"]["id"]
    target = await post(writer, author_id, "watched")
    by_id = (await reader.call("realtime.subscribe", {"collection": "posts", "id": target["id"],
                                                      "fields": ["id", "text"]}))["sub"]
    cats = (await reader.call("realtime.subscribe", {"collection": "posts", "filter": 'text ~ "cats"'}))["sub"]
    dogs = await post(writer, author_id, "dogs only")
    cat = await post(writer, author_id, "CATS rule")
    await writer.call("records.update", {"collection": "posts", "id": target["id"], "data": {"text": "seen"}})
    events = await events_until(reader, change_of(target["id"], "update"))
    assert dogs["id"] not in ids_in(events)
    assert [(e["sub"], e["data"]["record"]["id"]) for e in events] == [(cats, cat["id"]), (by_id, target["id"])]
    assert events[-1]["data"]["record"] == {"id": target["id"], "text": "seen"}


async def test_guarded_fields_reach_only_those_their_guard_allows(user):
    alice_client, alice = await user()
    bob_client, _ = await user()
    alice_id = alice["user"]["id"]
    for client in (alice_client, bob_client):
        await client.call("realtime.subscribe", {"collection": "users", "id": alice_id})
    await alice_client.call("records.update", {"collection": "users", "id": alice_id, "data": {"username": None}})
    [own] = await events_until(alice_client, change_of(alice_id))
    [other] = await events_until(bob_client, change_of(alice_id))
    assert own["data"]["record"]["email"] == alice["user"]["email"]
    assert other["data"]["record"]["email"] is None and other["data"]["record"]["id"] == alice_id


async def test_unsubscribe_stops_events(user):
    writer, alice = await user()
    reader, _ = await user()
    first = (await reader.call("realtime.subscribe", {"collection": "posts"}))["sub"]
    second = (await reader.call("realtime.subscribe", {"collection": "posts", "filter": 'text = "marker"'}))["sub"]
    assert await reader.call("realtime.unsubscribe", {"sub": first}) == {}
    quiet = await post(writer, alice["user"]["id"], "not heard")
    marker = await post(writer, alice["user"]["id"], "marker")
    events = await events_until(reader, change_of(marker["id"]))
    assert [(e["sub"], e["data"]["record"]["id"]) for e in events] == [(second, marker["id"])]
    assert quiet["id"] not in ids_in(events)
    with pytest.raises(HaptaError) as missing:
        await reader.call("realtime.unsubscribe", {"sub": first})
    assert missing.value.code == "NOT_FOUND"


@pytest.mark.parametrize("args, code", [
    ({"collection": "nope"}, "NOT_FOUND"),
    ({"collection": "posts", "filter": "text ="}, "BAD_REQUEST"),
    ({"collection": "posts", "filter": "password_hash = 1"}, "BAD_REQUEST"),
    ({"collection": "posts", "fields": ["nope"]}, "BAD_REQUEST"),
    ({"collection": "posts", "what": 1}, "BAD_REQUEST"),
])
async def test_bad_subscriptions_are_refused_precisely(user, args, code):
    client, _ = await user()
    with pytest.raises(HaptaError) as refused:
        await client.call("realtime.subscribe", args)
    assert refused.value.code == code


async def test_guests_may_not_subscribe(connect):
    client = await connect()
    with pytest.raises(HaptaError) as refused:
        await client.call("realtime.subscribe", {"collection": "posts"})
    assert refused.value.code == "UNAUTHENTICATED"


async def test_subscriptions_per_connection_are_bounded(user, gateway):
    client, _ = await user()
    from hapta.config import App
    limit = App(collections=[]).max_subscriptions
    replies = await client.batch([("realtime.subscribe", {"collection": "posts"})] * limit)
    assert all(isinstance(r, dict) for r in replies), replies
    with pytest.raises(HaptaError) as refused:
        await client.call("realtime.subscribe", {"collection": "posts"})
    assert refused.value.code == "TOO_LARGE"
    await client.call("realtime.unsubscribe", {"sub": replies[0]["sub"]})
    assert "sub" in await client.call("realtime.subscribe", {"collection": "posts"})


async def test_msgpack_subscribers_get_the_same_events(user):
    writer, alice = await user()
    reader, _ = await user(subprotocol="hapta.v1.msgpack")
    await reader.call("realtime.subscribe", {"collection": "posts"})
    created = await post(writer, alice["user"]["id"], "packed")
    [event] = await events_until(reader, change_of(created["id"]))
    assert event["data"]["record"]["text"] == "packed" and event["sub"] == "s1"


def _gauge(process, name: str) -> float:
    with urllib.request.urlopen(f"{process.http}/metrics", timeout=5) as response:
        found = re.search(rf"^{name} (\S+)$", response.read().decode(), re.M)
    return float(found.group(1)) if found else 0.0


async def _until(check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        await asyncio.sleep(0.05)


async def test_disconnect_drops_the_connections_subscriptions(second_gateway):
    """What a closed connection held is released in the gateway (its gauge), not kept for a reader long gone."""
    client = await Client.connect(second_gateway.url)
    await client.call("auth.anon", {"apikey": ANON_KEY})
    base = _gauge(second_gateway, "hapta_realtime_subscriptions")
    for _ in range(3):
        await client.call("realtime.subscribe", {"collection": "posts"})
    await _until(lambda: _gauge(second_gateway, "hapta_realtime_subscriptions") == base + 3)
    await client.close()
    await _until(lambda: _gauge(second_gateway, "hapta_realtime_subscriptions") == base)
