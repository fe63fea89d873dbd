"""expand never shows more than the related collection's own rules (in-process, tests/harness.py): over every
relation of the demo app, for two users, anon and admin, a related record is embedded exactly when the reader may
view it, with its guarded fields as the reader may read them; records.get, records.list, cache hits after another
reader's load and realtime events all answer alike."""
from __future__ import annotations

import asyncio

import pytest

from hapta.protocol.errors import HaptaError


async def _post(device, text: str, public: bool) -> dict:
    return await device.call("records.create", {"collection": "posts", "data": {
        "author": device.user["id"], "text": text, "public": public}})


async def _expanded(device, collection: str, record_id: str, expand: list[str]) -> dict:
    """The record's `expand` as records.get and records.list give it (they must agree), read twice (the second
    time from the cache)."""
    answers = []
    for _ in range(2):
        got = await device.call("records.get", {"collection": collection, "id": record_id, "expand": expand})
        page = await device.call("records.list", {"collection": collection, "filter": f'id = "{record_id}"',
                                                  "expand": expand})
        assert [item["id"] for item in page["items"]] == [record_id]
        assert page["items"][0]["expand"] == got["expand"]
        answers.append(got["expand"])
    assert answers[0] == answers[1]
    return answers[0]


async def _counted(device, post_id: str, likes: int, within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while (await device.call("records.get", {"collection": "posts", "id": post_id}))["likes"] != likes:
        assert asyncio.get_running_loop().time() < deadline, f"the post did not reach {likes} likes"
        await asyncio.sleep(0.02)


async def _refused(coroutine) -> HaptaError:
    with pytest.raises(HaptaError) as error:
        await coroutine
    return error.value


async def test_every_relation_of_the_demo_app_for_users_anon_and_admin(harness):
    alice, bob, anon, admin = await harness.user(), await harness.user(), await harness.anon(), await harness.admin()
    public = await _post(alice, "open to all", public=True)
    later_private = await _post(alice, "open, then closed", public=True)
    # bob comments on and likes a post of alice's that she then makes private: bob still sees his own comment
    # (its rule: on a visible post, or his own), but no longer the post it points at
    comment = await bob.call("records.create", {"collection": "comments", "data": {
        "post": later_private["id"], "author": bob.user["id"], "text": "nice"}})
    on_public = await bob.call("records.create", {"collection": "comments", "data": {
        "post": public["id"], "author": bob.user["id"], "text": "also nice"}})
    like = await bob.call("records.create", {"collection": "likes", "data": {
        "post": public["id"], "user": bob.user["id"]}})
    await _counted(alice, public["id"], likes=1)   # the likes hook runs after the commit: let it land first
    await alice.call("records.update", {"collection": "posts", "id": later_private["id"], "data": {"public": False}})
    message = await alice.call("records.create", {"collection": "messages", "data": {
        "sender": alice.user["id"], "recipient": bob.user["id"], "text": "hi bob"}})
    a, b = alice.user["id"], bob.user["id"]

    # comments.post and comments.post.author: bob's own comment on the now private post
    assert await _expanded(bob, "comments", comment["id"], ["post", "post.author", "author"]) == {
        "author": {**await bob.call("records.get", {"collection": "users", "id": b})}}
    seen = await _expanded(alice, "comments", comment["id"], ["post", "post.author", "author"])
    assert seen["post"]["id"] == later_private["id"] and seen["post"]["expand"]["author"]["id"] == a
    assert seen["post"]["expand"]["author"]["email"] == alice.user["email"]   # her own email: its guard holds
    assert seen["author"]["id"] == b and seen["author"]["email"] is None       # bob's: it does not, for her
    everything = await _expanded(admin, "comments", comment["id"], ["post", "post.author", "author"])
    assert everything["author"]["email"] == bob.user["email"] and everything["post"]["expand"]["author"]["id"] == a
    with pytest.raises(HaptaError):   # anon may not see bob's comment at all: the post is private
        await anon.call("records.get", {"collection": "comments", "id": comment["id"], "expand": ["post"]})

    # on a public post: anon sees the comment and the post, but no user (users are for signed-in readers)
    assert (await _expanded(anon, "comments", on_public["id"], ["post", "author", "post.author"])) == {
        "post": {**await anon.call("records.get", {"collection": "posts", "id": public["id"]}), "expand": {}}}
    by_bob = await _expanded(bob, "comments", on_public["id"], ["post.author"])
    assert by_bob["post"]["expand"]["author"] == {**alice.user, "email": None}

    # likes.post and likes.user
    liked = await _expanded(alice, "likes", like["id"], ["post", "user"])
    assert liked["post"]["id"] == public["id"] and liked["user"]["id"] == b and liked["user"]["email"] is None
    assert (await _expanded(admin, "likes", like["id"], ["user"]))["user"]["email"] == bob.user["email"]

    # messages.sender and messages.recipient: each party reads the other's record without its email
    for reader, own, other in ((alice, a, b), (bob, b, a)):
        parties = await _expanded(reader, "messages", message["id"], ["sender", "recipient"])
        mine, theirs = (parties["sender"], parties["recipient"]) if own == a else \
            (parties["recipient"], parties["sender"])
        assert mine["id"] == own and mine["email"] == reader.user["email"]
        assert theirs["id"] == other and theirs["email"] is None
    assert "password_hash" not in str(await _expanded(admin, "messages", message["id"], ["sender"]))


async def test_what_expand_refuses(harness):
    alice = await harness.user()
    post = await _post(alice, "x", public=True)
    for expand, says in ((["text"], "not a relation"), (["nosuch"], "no field"), (["password_hash"], "no field"),
                         (["post.author.posts"], "relation's relation"), (["a..b"], "relation's relation"),
                         ([f"f{n}" for n in range(9)], "length <= 8")):
        error = await _refused(alice.call("records.list", {"collection": "comments", "expand": expand}))
        assert error.code == "BAD_REQUEST" and says in error.message, (expand, error.message)
    error = await _refused(alice.call("records.get", {"collection": "posts", "id": post["id"], "expand": ["author"],
                                                      "fields": ["id", "text"]}))
    assert error.code == "BAD_REQUEST" and "fields" in error.message


async def test_an_expansion_follows_changes_of_the_related_record(harness):
    alice, bob = await harness.user(), await harness.user()
    post = await _post(alice, "first words", public=True)
    comment = await bob.call("records.create", {"collection": "comments", "data": {
        "post": post["id"], "author": bob.user["id"], "text": "hm"}})
    assert (await _expanded(bob, "comments", comment["id"], ["post"]))["post"]["text"] == "first words"
    await alice.call("records.update", {"collection": "posts", "id": post["id"], "data": {"text": "second words"}})
    assert (await _expanded(bob, "comments", comment["id"], ["post"]))["post"]["text"] == "second words"
    await alice.call("records.update", {"collection": "posts", "id": post["id"], "data": {"public": False}})
    assert await _expanded(bob, "comments", comment["id"], ["post"]) == {}


async def test_realtime_events_and_snapshots_carry_the_same_expansions(harness):
    alice, bob = await harness.user(), await harness.user()
    post = await _post(alice, "watched", public=True)
    hidden = await _post(alice, "hidden", public=True)
    await bob.call("records.create", {"collection": "comments", "data": {
        "post": hidden["id"], "author": bob.user["id"], "text": "before"}})
    await alice.call("records.update", {"collection": "posts", "id": hidden["id"], "data": {"public": False}})
    started = await bob.call("realtime.subscribe", {"collection": "comments", "snapshot": True,
                                                    "filter": f'author = "{bob.user["id"]}"',
                                                    "expand": ["post", "post.author"]})
    [before] = started["items"]
    assert before["expand"] == {}   # on a post bob may no longer view: left out, as records.list leaves it
    comment = await bob.call("records.create", {"collection": "comments", "data": {
        "post": post["id"], "author": bob.user["id"], "text": "live"}})
    event = (await bob.event("records.change"))["data"]
    assert event["record"]["id"] == comment["id"]
    assert event["record"]["expand"] == await _expanded(bob, "comments", comment["id"], ["post", "post.author"])
    assert event["record"]["expand"]["post"]["expand"]["author"]["email"] is None   # alice's, to bob
    await bob.call("records.delete", {"collection": "comments", "id": comment["id"]})
    deleted = (await bob.event("records.change"))["data"]
    assert deleted["action"] == "delete" and "expand" not in deleted["record"]


async def test_records_that_come_into_view_through_a_relation_carry_the_same_expansions(harness):
    """A private post turned public: its comment and its like reach a subscriber as creates, each exactly as
    records.get shows it to that reader (the comment with its expansion); turned private again, as deletes of
    their ids alone."""
    alice, bob = await harness.user(), await harness.user()
    post = await _post(alice, "not yet", public=False)
    comment = await alice.call("records.create", {"collection": "comments", "data": {
        "post": post["id"], "author": alice.user["id"], "text": "first"}})
    like = await alice.call("records.create", {"collection": "likes", "data": {
        "post": post["id"], "user": alice.user["id"]}})
    comments = (await bob.call("realtime.subscribe", {"collection": "comments",
                                                      "expand": ["post", "post.author"]}))["sub"]
    likes = (await bob.call("realtime.subscribe", {"collection": "likes"}))["sub"]

    await alice.call("records.update", {"collection": "posts", "id": post["id"], "data": {"public": True}})
    heard: dict[str, dict] = {}
    for _ in range(2):
        event = await bob.event("records.change")
        heard[event["sub"]] = event["data"]
    assert heard[comments]["action"] == heard[likes]["action"] == "create"
    assert heard[comments]["record"] == await bob.call("records.get", {
        "collection": "comments", "id": comment["id"], "expand": ["post", "post.author"]})
    assert heard[comments]["record"]["expand"]["post"]["expand"]["author"]["email"] is None   # alice's, to bob
    assert heard[likes]["record"] == await bob.call("records.get", {"collection": "likes", "id": like["id"]})

    await alice.call("records.update", {"collection": "posts", "id": post["id"], "data": {"public": False}})
    gone = [(await bob.event("records.change")) for _ in range(2)]
    assert {(e["sub"], e["data"]["action"], repr(e["data"]["record"])) for e in gone} == {
        (comments, "delete", repr({"id": comment["id"]})), (likes, "delete", repr({"id": like["id"]}))}
    assert bob.events.empty()
