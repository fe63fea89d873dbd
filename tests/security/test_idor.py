"""The access matrix (issue 11): every records op and realtime, for anon, a guest, the owner, another user and an
admin, on a private record of every demo collection, and filters through every relation. Each cell states what
that principal gets; a record the rules hide answers exactly as a record that does not exist.

The world: alice owns a private post (with her comment and her like on it) and a message to carol; bob commented
on alice's once-public post, which she has since made private; anon holds the public key; a guest nothing."""
from __future__ import annotations

import secrets
from dataclasses import dataclass

import pytest
import pytest_asyncio

from hapta.client import Client, HaptaError
from tests.conftest import ADMIN_KEY, ANON_KEY, PASSWORD
from tests.live.realtime.helpers import change_of, events_until

PRINCIPALS = ("guest", "anon", "owner", "other", "admin")
SECRET = "zebra" + secrets.token_hex(3)


@dataclass
class World:
    clients: dict[str, Client]
    users: dict[str, dict]          # alice, bob, carol: their user records
    records: dict[str, dict]        # collection -> alice's private record of it
    bobs_comment: dict              # on alice's post that turned private
    turned: dict                    # that post


async def _signed_up(connect, name: str) -> tuple[Client, dict]:
    client = await connect()
    handle = name + secrets.token_hex(4)
    session = await client.call("auth.register", {"email": f"{handle}@example.com", "password": PASSWORD,
                                                  "username": handle})
    return client, session["user"]


@pytest_asyncio.fixture
async def world(connect) -> World:
    alice, a = await _signed_up(connect, "alice")
    bob, b = await _signed_up(connect, "bob")
    _, c = await _signed_up(connect, "carol")
    anon = await connect()
    await anon.call("auth.anon", {"apikey": ANON_KEY})
    admin = await connect()
    await admin.call("auth.admin", {"key": ADMIN_KEY})
    guest = await connect()
    post = await alice.call("records.create", {"collection": "posts", "data": {
        "author": a["id"], "text": f"private {SECRET}", "public": False}})
    comment = await alice.call("records.create", {"collection": "comments", "data": {
        "post": post["id"], "author": a["id"], "text": f"note {SECRET}"}})
    like = await alice.call("records.create", {"collection": "likes", "data": {"post": post["id"], "user": a["id"]}})
    message = await alice.call("records.create", {"collection": "messages", "data": {
        "sender": a["id"], "recipient": c["id"], "text": f"hi {SECRET}"}})
    turned = await alice.call("records.create", {"collection": "posts", "data": {
        "author": a["id"], "text": f"was public {SECRET}", "public": True}})
    bobs = await bob.call("records.create", {"collection": "comments", "data": {
        "post": turned["id"], "author": b["id"], "text": "bob was here"}})
    await alice.call("records.update", {"collection": "posts", "id": turned["id"], "data": {"public": False}})
    return World({"guest": guest, "anon": anon, "owner": alice, "other": bob, "admin": admin},
                 {"alice": a, "bob": b, "carol": c},
                 {"posts": post, "comments": comment, "likes": like, "messages": message, "users": a}, bobs, turned)


async def outcome(coro) -> object:
    """The data, or the error code."""
    try:
        return await coro
    except HaptaError as error:
        return error.code


HIDDEN = "NOT_FOUND"   # what a record the rules hide answers, exactly as a missing one

# collection -> principal -> what records.get of alice's private record answers ("OK" or an error code)
GET = {
    "posts":    {"guest": "UNAUTHENTICATED", "anon": HIDDEN, "owner": "OK", "other": HIDDEN, "admin": "OK"},
    "comments": {"guest": "UNAUTHENTICATED", "anon": HIDDEN, "owner": "OK", "other": HIDDEN, "admin": "OK"},
    "likes":    {"guest": "UNAUTHENTICATED", "anon": HIDDEN, "owner": "OK", "other": HIDDEN, "admin": "OK"},
    "messages": {"guest": "UNAUTHENTICATED", "anon": HIDDEN, "owner": "OK", "other": HIDDEN, "admin": "OK"},
    "users":    {"guest": "UNAUTHENTICATED", "anon": HIDDEN, "owner": "OK", "other": "OK", "admin": "OK"},
}
# ... and records.update / records.delete of it (likes may not be updated by anyone but admins)
UPDATE = {
    "posts":    {"guest": "UNAUTHENTICATED", "anon": HIDDEN, "owner": "OK", "other": HIDDEN, "admin": "OK"},
    "comments": {"guest": "UNAUTHENTICATED", "anon": HIDDEN, "owner": "OK", "other": HIDDEN, "admin": "OK"},
    "likes":    {"guest": "UNAUTHENTICATED", "anon": "FORBIDDEN", "owner": "FORBIDDEN", "other": "FORBIDDEN",
                 "admin": "OK"},
    "messages": {"guest": "UNAUTHENTICATED", "anon": "FORBIDDEN", "owner": "FORBIDDEN", "other": "FORBIDDEN",
                 "admin": "OK"},
    "users":    {"guest": "UNAUTHENTICATED", "anon": HIDDEN, "owner": "OK", "other": "FORBIDDEN", "admin": "OK"},
}
CHANGE = {"posts": {"text": "edited"}, "comments": {"text": "edited"}, "likes": {}, "messages": {"text": "edited"},
          "users": {"username": "renamed" + secrets.token_hex(3)}}


def _code(result: object) -> str:
    return result if isinstance(result, str) else "OK"


@pytest.mark.parametrize("collection", list(GET))
async def test_get_list_and_count(world, collection):
    record = world.records[collection]
    for principal in PRINCIPALS:
        client = world.clients[principal]
        got = await outcome(client.call("records.get", {"collection": collection, "id": record["id"]}))
        assert _code(got) == GET[collection][principal], (collection, principal, got)
        listed = await outcome(client.call("records.list", {"collection": collection, "count": True,
                                                            "filter": f'id = "{record["id"]}"'}))
        if GET[collection][principal] == "UNAUTHENTICATED":
            assert listed == "UNAUTHENTICATED"
        else:
            expected = [record["id"]] if GET[collection][principal] == "OK" else []
            assert [r["id"] for r in listed["items"]] == expected and listed["total"] == len(expected), \
                (collection, principal)
    # a record that does not exist answers exactly as one that is hidden
    missing = await outcome(world.clients["other"].call("records.get", {"collection": collection,
                                                                        "id": "nosuchrecord000"}))
    assert missing == HIDDEN


@pytest.mark.parametrize("collection", list(UPDATE))
async def test_update_and_delete(world, collection):
    record = world.records[collection]
    for principal in ("guest", "anon", "other", "owner", "admin"):
        changed = await outcome(world.clients[principal].call("records.update", {
            "collection": collection, "id": record["id"], "data": CHANGE[collection]}))
        assert _code(changed) == UPDATE[collection][principal], (collection, principal, changed)
    if collection == "users":
        return   # deleting alice would end the world for the other cells; the delete rule is the update rule
    for principal in ("guest", "anon", "other"):
        deleted = await outcome(world.clients[principal].call("records.delete", {"collection": collection,
                                                                                 "id": record["id"]}))
        wanted = UPDATE[collection][principal] if collection not in ("likes", "messages") else \
            {"guest": "UNAUTHENTICATED", "anon": HIDDEN, "other": HIDDEN}[principal]
        assert _code(deleted) == wanted, (collection, principal, deleted)
    assert _code(await outcome(world.clients["owner"].call("records.delete", {"collection": collection,
                                                                              "id": record["id"]}))) == "OK"


async def test_creating_as_someone_else_or_onto_what_one_may_not_see(world):
    bob, alice = world.clients["other"], world.users["alice"]
    as_alice = [("posts", {"author": alice["id"], "text": "impostor", "public": True}),
                ("messages", {"sender": alice["id"], "recipient": world.users["bob"]["id"], "text": "spoof"}),
                ("likes", {"post": world.records["posts"]["id"], "user": alice["id"]})]
    for collection, data in as_alice:
        result = await outcome(bob.call("records.create", {"collection": collection, "data": data}))
        assert result in ("FORBIDDEN", "VALIDATION_FAILED"), (collection, result)
    # pointing at a record one may not view answers as pointing at nothing
    onto_private = await outcome(bob.call("records.create", {"collection": "likes", "data": {
        "post": world.records["posts"]["id"], "user": world.users["bob"]["id"]}}))
    onto_nothing = await outcome(bob.call("records.create", {"collection": "likes", "data": {
        "post": "nosuchpost00000", "user": world.users["bob"]["id"]}}))
    assert onto_private == onto_nothing == "VALIDATION_FAILED"
    anon_writes = await outcome(world.clients["anon"].call("records.create", {"collection": "comments", "data": {
        "post": world.records["posts"]["id"], "author": alice["id"], "text": "x"}}))
    assert anon_writes in ("FORBIDDEN", "VALIDATION_FAILED")


# (collection, filter through a relation, who may see rows through it). Every probe reads alice's private post,
# alice's user record, or carol's; each row it could return is one the principal may see without the filter.
RELATION_PROBES = [
    ("comments", 'post.text ~ "{secret}"', {"owner", "admin"}),           # comments.post -> posts
    ("comments", "post.public = false", {"owner", "admin"}),
    ("comments", 'author.username = "{alice}"', {"owner", "admin"}),            # comments.author -> users
    ("likes", 'post.text ~ "{secret}"', {"owner", "admin"}),              # likes.post -> posts
    ("likes", 'user.username = "{alice}"', {"owner", "admin"}),           # likes.user -> users
    ("posts", 'author.username = "{alice}"', {"owner", "admin"}),         # posts.author -> users
    ("messages", 'recipient.username = "{carol}"', {"owner", "admin"}),   # messages.recipient -> users
    ("messages", 'sender.email = "{alice_email}"', {"owner", "admin"}),   # messages.sender -> users (guarded)
]


@pytest.mark.parametrize(("collection", "probe", "seeing"), RELATION_PROBES,
                         ids=[f"{c}:{p.split(' ')[0]}" for c, p, _ in RELATION_PROBES])
async def test_filters_through_every_relation(world, collection, probe, seeing):
    text = probe.format(secret=SECRET, alice=world.users["alice"]["username"], carol=world.users["carol"]["username"],
                        alice_email=world.users["alice"]["email"])
    for principal in ("anon", "owner", "other", "admin"):
        found = await outcome(world.clients[principal].call("records.list", {
            "collection": collection, "filter": text, "count": True}))
        if isinstance(found, str):   # a collection the principal may not list at all, or not follow from
            assert principal == "anon" and found in ("FORBIDDEN", "BAD_REQUEST"), (collection, principal, found)
            continue
        assert (found["total"] > 0) == (principal in seeing), (collection, text, principal, found)
    # bob's own comment, on the post that turned private: visible to him, the post behind it not
    assert await world.clients["other"].call("records.list", {
        "collection": "comments", "filter": f'id = "{world.bobs_comment["id"]}" && post.public = false'}) \
        == {"items": [], "page": 1, "per_page": 30}


async def test_realtime_hears_what_the_rules_show(world):
    """Everyone (past the guest stage) subscribes to every collection; alice changes each private record, then
    makes a public post (the marker). Up to the marker, each hears exactly what it may view."""
    subscribers = {p: world.clients[p] for p in ("anon", "other", "admin")}
    for client in subscribers.values():
        for collection in ("posts", "comments", "likes", "messages"):
            await outcome(client.call("realtime.subscribe", {"collection": collection}))
        client.received_events()
    refusal = await outcome(world.clients["guest"].call("realtime.subscribe", {"collection": "posts"}))
    assert refusal == "UNAUTHENTICATED"
    alice = world.clients["owner"]
    private_ids = set()
    for collection in ("posts", "comments", "messages"):   # whoever writes: messages may change by admins only
        record = world.records[collection]
        writer = world.clients["admin"] if collection == "messages" else alice
        await writer.call("records.update", {"collection": collection, "id": record["id"],
                                             "data": {"text": f"changed {SECRET}"}})
        private_ids.add(record["id"])
    marker = await alice.call("records.create", {"collection": "posts", "data": {
        "author": world.users["alice"]["id"], "text": "marker", "public": True}})
    for principal, client in subscribers.items():
        heard = await events_until(client, change_of(marker["id"]))
        ids = {e["data"]["record"]["id"] for e in heard if e.get("event") == "records.change"}
        if principal == "admin":
            assert private_ids <= ids
        else:
            assert not ids & private_ids, (principal, ids & private_ids)
