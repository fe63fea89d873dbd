"""The read cache behind a real gateway: personal answers stay personal, acknowledged writes are never hidden."""
from __future__ import annotations

import re
import time
import urllib.request

import asyncpg
import pytest

from hapta.client import Client, HaptaError
from tests.live.realtime.helpers import post


def _cache_loads(gateway) -> float:
    with urllib.request.urlopen(f"{gateway.http}/metrics", timeout=5) as response:
        text = response.read().decode()
    found = re.search(r'^hapta_cache_reads_total\{result="load"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


async def test_one_users_view_is_never_served_to_another(user, anon):
    alice, alice_session = await user()
    bob, _ = await user()
    alice_id = alice_session["user"]["id"]
    secret = await post(alice, alice_id, "secret", public=False)
    public = await post(alice, alice_id, "public")
    everything = {"collection": "posts", "filter": f'author = "{alice_id}"'}
    for _ in range(2):   # the second read is served from the cache
        assert {r["id"] for r in (await alice.call("records.list", everything))["items"]} == {secret["id"], public["id"]}
        assert (await alice.call("records.get", {"collection": "posts", "id": secret["id"]}))["text"] == "secret"
    for other in (bob, anon):
        assert [r["id"] for r in (await other.call("records.list", everything))["items"]] == [public["id"]]
        with pytest.raises(HaptaError) as hidden:
            await other.call("records.get", {"collection": "posts", "id": secret["id"]})
        assert hidden.value.code == "NOT_FOUND"

    # a guarded field: alice's email reaches alice alone, whoever asked first
    me = {"collection": "users", "id": alice_id}
    assert (await bob.call("records.get", me))["email"] is None
    assert (await alice.call("records.get", me))["email"] == alice_session["user"]["email"]
    assert (await bob.call("records.get", me))["email"] is None


async def test_readers_of_a_public_page_share_one_query(user, gateway):
    author, session = await user()
    await post(author, session["user"]["id"], "feed item")
    readers = [(await user())[0] for _ in range(4)]
    page = {"collection": "posts", "filter": "public = true", "per_page": 7}
    await readers[0].call("records.list", page)
    before = _cache_loads(gateway)
    answers = [await reader.call("records.list", page) for reader in readers for _ in range(5)]
    assert all(a == answers[0] for a in answers)
    assert _cache_loads(gateway) == before


async def test_readers_of_a_public_record_share_one_entry_until_it_turns_private(user, anon, gateway):
    author, session = await user()
    created = await post(author, session["user"]["id"], "for everyone")
    read = {"collection": "posts", "id": created["id"]}
    readers = [(await user())[0] for _ in range(3)] + [anon]
    await readers[0].call("records.get", read)
    before = _cache_loads(gateway)
    assert {(await reader.call("records.get", read))["text"] for reader in readers} == {"for everyone"}
    assert _cache_loads(gateway) == before   # one entry for every reader, whoever they are

    await author.call("records.update", {**read, "data": {"public": False}})
    for reader in readers:   # the shared entry said "anyone"; now it is the author's alone
        with pytest.raises(HaptaError) as hidden:
            await reader.call("records.get", read)
        assert hidden.value.code == "NOT_FOUND"
    assert (await author.call("records.get", read))["public"] is False


async def test_an_acknowledged_write_is_never_hidden_by_the_cache(user):
    client, session = await user()
    created = await post(client, session["user"]["id"], "v0")
    read = {"collection": "posts", "id": created["id"]}
    feed = {"collection": "posts", "filter": f'author = "{session["user"]["id"]}"'}
    for round_ in range(1, 15):
        await client.call("records.get", read)
        await client.call("records.list", feed)
        await client.call("records.update", {"collection": "posts", "id": created["id"], "data": {"text": f"v{round_}"}})
        assert (await client.call("records.get", read))["text"] == f"v{round_}"
        assert (await client.call("records.list", feed))["items"][0]["text"] == f"v{round_}"
    await client.call("records.delete", read)
    with pytest.raises(HaptaError):
        await client.call("records.get", read)
    assert (await client.call("records.list", feed))["items"] == []


async def test_read_your_writes_across_worker_processes(user, second_gateway):
    writer, session = await user()
    reader = await Client.connect(second_gateway.url)
    try:
        await reader.call("auth.resume", {"token": session["token"]})
        created = await post(writer, session["user"]["id"], "w0")
        read = {"collection": "posts", "id": created["id"]}
        for round_ in range(1, 20):
            assert (await reader.call("records.get", read))["version"] == round_   # cached on the other worker
            updated = await writer.call("records.update", {"collection": "posts", "id": created["id"],
                                                           "data": {"text": f"w{round_}"}})
            assert (await reader.call("records.get", read))["version"] == updated["version"]
    finally:
        await reader.close()


async def test_straight_sql_writes_invalidate_the_cache(user, database):
    client, session = await user()
    created = await post(client, session["user"]["id"], "before sql")
    read = {"collection": "posts", "id": created["id"]}
    assert (await client.call("records.get", read))["text"] == "before sql"
    conn = await asyncpg.connect(database)
    try:
        await conn.execute("UPDATE posts SET text = 'after sql' WHERE id = $1", created["id"])
    finally:
        await conn.close()
    deadline = time.monotonic() + 10   # a write outside the gateway is seen once its notification arrives
    while (await client.call("records.get", read))["text"] != "after sql":
        assert time.monotonic() < deadline, "the cache kept serving a value older than a committed write"


async def test_a_change_of_a_post_invalidates_the_cached_pages_of_its_comments(user, gateway, database):
    """Pages of comments are kept under the generation of posts too (their rule reads `post.public`): a post
    turned private, through the gateway or straight in SQL, is never answered from a page cached before it."""
    alice, session = await user()
    bob, _ = await user()
    author = session["user"]["id"]
    target = await post(alice, author, "its comments follow it")
    note = await alice.call("records.create", {"collection": "comments",
                                               "data": {"post": target["id"], "author": author, "text": "hi"}})
    page = {"collection": "comments", "filter": f'post = "{target["id"]}"'}
    one = {"collection": "comments", "id": note["id"]}
    for _ in range(2):
        assert [r["id"] for r in (await bob.call("records.list", page))["items"]] == [note["id"]]
        assert (await bob.call("records.get", one))["id"] == note["id"]
    before = _cache_loads(gateway)
    await bob.call("records.list", page)
    assert _cache_loads(gateway) == before   # served from the cache
    await alice.call("records.update", {"collection": "posts", "id": target["id"], "data": {"public": False}})
    assert (await bob.call("records.list", page))["items"] == []
    with pytest.raises(HaptaError) as hidden:
        await bob.call("records.get", one)
    assert hidden.value.code == "NOT_FOUND"

    conn = await asyncpg.connect(database)
    try:
        await conn.execute("UPDATE posts SET public = true WHERE id = $1", target["id"])
    finally:
        await conn.close()
    deadline = time.monotonic() + 10   # a write outside the gateway is seen once its notification arrives
    while [r["id"] for r in (await bob.call("records.list", page))["items"]] != [note["id"]]:
        assert time.monotonic() < deadline, "a cached page outlived the change of the post its comments read"
    assert (await bob.call("records.get", one))["id"] == note["id"]
