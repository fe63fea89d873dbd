"""One rule decides everywhere (in-process, tests/harness.py): a record the view rule hides from a principal is
hidden from their queries, from cache hits after someone else's load, from filters through relations, from
references in their writes and from their realtime subscriptions, and comes into view everywhere when the rule
lets it."""
from __future__ import annotations

import asyncio

from hapta.protocol.errors import HaptaError


async def _post(device, text: str, public: bool) -> dict:
    return await device.call("records.create", {"collection": "posts", "data": {
        "author": device.user["id"], "text": text, "public": public}})


async def _ids(device, collection: str, filter_text: str) -> list[str]:
    page = await device.call("records.list", {"collection": collection, "filter": filter_text, "count": True})
    assert page["total"] == len(page["items"])
    return [item["id"] for item in page["items"]]


async def test_a_hidden_record_is_hidden_from_queries_cache_hits_and_relations(harness):
    alice, bob = await harness.user(), await harness.user()
    secret = await _post(alice, "the secret", public=False)
    note = await alice.call("records.create", {"collection": "comments", "data": {
        "post": secret["id"], "author": alice.user["id"], "text": "on my secret"}})
    mine = f'id = "{secret["id"]}"'
    assert await _ids(alice, "posts", mine) == [secret["id"]]          # alice's read fills the cache ...
    for _ in range(2):                                                    # ... bob's, twice, meets it
        assert await _ids(bob, "posts", mine) == []
    for probe in (f'post = "{secret["id"]}"', 'post.text = "the secret"', "post.public = false"):
        assert note["id"] not in await _ids(bob, "comments", probe), probe
    assert await _ids(alice, "comments", 'post.text = "the secret"') == [note["id"]]
    try:
        await bob.call("records.get", {"collection": "posts", "id": secret["id"]})
    except HaptaError as error:
        assert error.code == "NOT_FOUND"
    else:
        raise AssertionError("bob read alice's private post")


async def test_a_write_may_not_point_at_what_the_writer_cannot_see(harness):
    alice, bob = await harness.user(), await harness.user()
    secret = await _post(alice, "mine alone", public=False)
    nowhere = "00000000-0000-0000-0000-000000000000"
    replies = [await bob.request("records.create", {"collection": "likes", "data": {
        "post": post_id, "user": bob.user["id"]}}) for post_id in (secret["id"], nowhere)]
    hidden, missing = (reply["error"] for reply in replies)
    assert hidden["code"] == missing["code"] == "VALIDATION_FAILED"
    assert hidden["message"] == missing["message"] and hidden["details"] == {"field": "post"}


async def test_realtime_hears_only_what_the_view_rule_shows_as_it_changes(harness):
    alice, bob = await harness.user(), await harness.user()
    sub = (await bob.call("realtime.subscribe", {"collection": "posts", "filter":
                                                 f'author = "{alice.user["id"]}"'}))["sub"]
    secret = await _post(alice, "private at first", public=False)
    shown = await _post(alice, "public", public=True)
    heard = await bob.event("records.change")   # events arrive in commit order: the private one was not sent
    assert heard["sub"] == sub and heard["data"]["action"] == "create" and heard["data"]["record"]["id"] == shown["id"]
    await alice.call("records.update", {"collection": "posts", "id": secret["id"], "data": {"public": True}})
    opened = await bob.event("records.change")
    assert opened["data"]["action"] == "update" and opened["data"]["record"]["text"] == "private at first"
    await alice.call("records.update", {"collection": "posts", "id": secret["id"], "data": {"public": False}})
    closed = await bob.event("records.change")
    assert closed["data"]["action"] == "delete" and closed["data"]["record"] == {"id": secret["id"]}
    assert bob.events.empty()


async def test_guarded_fields_read_as_null_for_others_in_queries_and_events(harness):
    alice, bob = await harness.user(), await harness.user()
    await bob.call("realtime.subscribe", {"collection": "users", "id": alice.user["id"]})
    await alice.call("realtime.subscribe", {"collection": "users", "id": alice.user["id"]})
    await alice.call("records.update", {"collection": "users", "id": alice.user["id"], "data": {
        "username": "alice" + alice.user["id"][:8]}})
    for device, email in ((alice, alice.user["email"]), (bob, None)):
        event = await device.event("records.change")
        assert event["data"]["record"]["email"] == email
        got = await device.call("records.get", {"collection": "users", "id": alice.user["id"]})
        assert got["email"] == email


async def test_channels_are_joined_by_their_rule_and_left_when_the_principal_changes(harness):
    alice, bob = await harness.user(), await harness.user()
    private = f'user:{alice.user["id"]}'
    joined = await alice.call("channels.join", {"channel": private})
    assert joined["channel"] == private
    assert (await bob.request("channels.join", {"channel": private}))["error"]["code"] == "FORBIDDEN"
    await alice.call("auth.logout")
    left = await asyncio.wait_for(alice.event("channels.left"), 5)
    assert left["data"]["channel"] == private
