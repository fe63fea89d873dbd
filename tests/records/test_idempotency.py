"""idempotency_key (in-process, tests/harness.py, on real PostgreSQL): a retried write gets the first answer and
writes nothing, per principal, only for the same request, once even when the retries race, and never for a
write that failed."""
from __future__ import annotations

import asyncio
import secrets

from tests.harness import PASSWORD


def _key() -> str:
    return "k-" + secrets.token_hex(8)


async def _count(admin, collection: str, filter_text: str) -> int:
    page = await admin.call("records.list", {"collection": collection, "filter": filter_text, "count": True})
    return page["total"]


def _create(device, key: str, text: str = "once") -> dict:
    return {"collection": "posts", "data": {"author": device.user["id"], "text": text, "public": True},
            "idempotency_key": key}


async def _second_device(harness, device):
    other = harness.device()
    await other.call("auth.login", {"identity": device.user["email"], "password": PASSWORD})
    other.user = device.user
    return other


async def test_a_repeated_key_answers_the_first_answer_and_writes_once(harness):
    alice, admin = await harness.user(), await harness.admin()
    key = _key()
    first = await alice.request("records.create", _create(alice, key))
    again = await alice.request("records.create", _create(alice, key))
    assert first["ok"] and again["data"] == first["data"]
    assert await _count(admin, "posts", f'author = "{alice.user["id"]}"') == 1
    # the same holds over MessagePack (timestamps stay timestamps) and for updates, deletes and batches
    binary = await harness.user("hapta.v1.msgpack")
    replies = [await binary.request("records.create", _create(binary, key)) for _ in range(2)]
    assert replies[0]["data"] == replies[1]["data"]
    post = first["data"]
    update = {"collection": "posts", "id": post["id"], "data": {"text": "edited"}, "idempotency_key": _key()}
    edited = [await alice.call("records.update", update) for _ in range(2)]
    assert edited[0] == edited[1] and edited[0]["version"] == 2
    batch = {"ops": [{"op": "create", "collection": "comments", "data": {
        "post": post["id"], "author": alice.user["id"], "text": "c"}}], "idempotency_key": _key()}
    answers = [await alice.call("records.batch", batch) for _ in range(2)]
    assert answers[0] == answers[1]
    assert await _count(admin, "comments", f'post = "{post["id"]}"') == 1
    delete = {"collection": "posts", "id": post["id"], "idempotency_key": _key()}
    assert [await alice.call("records.delete", delete) for _ in range(2)] == [{"id": post["id"]}] * 2


async def test_keys_are_per_principal(harness):
    alice, bob, admin = await harness.user(), await harness.user(), await harness.admin()
    key = _key()
    mine = await alice.call("records.create", _create(alice, key, "alice's"))
    theirs = await bob.call("records.create", _create(bob, key, "bob's"))
    assert mine["id"] != theirs["id"] and theirs["author"] == bob.user["id"]
    assert await _count(admin, "posts", f'author = "{bob.user["id"]}"') == 1
    anon = await harness.anon()
    error = (await anon.request("records.create", {"collection": "posts", "data": {}, "idempotency_key": key}))
    assert error["error"]["code"] == "BAD_REQUEST" and error["error"]["details"] == {"field": "idempotency_key"}
    for bad in ("", "x" * 256):
        assert (await alice.request("records.create", _create(alice, bad)))["error"]["code"] == "BAD_REQUEST"


async def test_a_key_reused_for_another_request_is_refused(harness):
    alice, admin = await harness.user(), await harness.admin()
    key = _key()
    await alice.call("records.create", _create(alice, key, "first"))
    same_but_reordered = {"idempotency_key": key, "data": {"public": True, "text": "first",
                                                           "author": alice.user["id"]}, "collection": "posts"}
    assert (await alice.request("records.create", same_but_reordered))["ok"]
    for other_op, args in [("records.create", _create(alice, key, "second")),
                           ("records.batch", {"ops": [{"op": "create", **_create(alice, key)}], "idempotency_key": key})]:
        args = dict(args)
        if other_op == "records.batch":
            args["ops"][0].pop("idempotency_key")
        error = (await alice.request(other_op, args))["error"]
        assert error["code"] == "CONFLICT" and "different request" in error["message"], error
        assert error["details"] == {"field": "idempotency_key"}
    assert await _count(admin, "posts", f'author = "{alice.user["id"]}"') == 1


async def test_concurrent_requests_with_one_key_write_once(harness):
    alice, admin = await harness.user(), await harness.admin()
    other = await _second_device(harness, alice)
    for op, args in [("records.create", _create(alice, _key())),
                     ("records.batch", {"ops": [{"op": "create", "collection": "posts", "data": {
                         "author": alice.user["id"], "text": "batched", "public": True}}] * 3,
                      "idempotency_key": _key()})]:
        first, second = await asyncio.gather(alice.request(op, args), other.request(op, args))
        assert first["ok"] and first["data"] == second["data"], (first, second)
    assert await _count(admin, "posts", f'author = "{alice.user["id"]}"') == 1 + 3


async def test_a_failed_write_stores_nothing_and_its_retry_runs(harness):
    alice, admin = await harness.user(), await harness.admin()
    key = _key()
    refused = await alice.request("records.create", _create(alice, key, "   "))   # before_create: no empty post
    assert refused["error"]["code"] == "RULE_DENIED"
    fixed = await alice.request("records.create", _create(alice, key, "   "))
    assert fixed["error"] == refused["error"]   # ran again (and was refused again): nothing was kept
    batch = {"ops": [{"op": "create", "collection": "posts", "data": {"author": alice.user["id"], "text": "a"}},
                     {"op": "update", "collection": "posts", "id": {"$ref": 0}, "data": {"text": ""}}],
             "idempotency_key": _key()}
    assert (await alice.request("records.batch", batch))["error"]["details"]["index"] == 1
    assert await _count(admin, "posts", f'author = "{alice.user["id"]}"') == 0
    await alice.call("records.create", _create(alice, _key(), "fine"))
    assert await _count(admin, "posts", f'author = "{alice.user["id"]}"') == 1


async def test_a_retry_makes_no_second_realtime_event(harness):
    alice, bob = await harness.user(), await harness.user()
    await bob.call("realtime.subscribe", {"collection": "posts", "filter": f'author = "{alice.user["id"]}"'})
    key = _key()
    first = await alice.call("records.create", _create(alice, key, "heard once"))
    await alice.call("records.create", _create(alice, key, "heard once"))
    marker = await alice.call("records.create", _create(alice, _key(), "marker"))
    heard = [(await bob.event("records.change"))["data"]["record"]["id"] for _ in range(2)]
    assert heard == [first["id"], marker["id"]]   # in commit order: nothing between the two


async def test_expired_keys_are_ignored_and_swept(harness):
    alice, admin = await harness.user(), await harness.admin()
    key = _key()
    await alice.call("records.create", _create(alice, key, "day one"))
    db = harness.gateway.db
    await db.execute("UPDATE hapta.idempotency SET created = now() - interval '25 hours' "
                     "WHERE owner = $1 AND key = $2", f"user:{alice.user['id']}", key)
    await alice.call("records.create", _create(alice, key, "day two"))   # a new request under an old key
    assert await _count(admin, "posts", f'author = "{alice.user["id"]}"') == 2
    await db.execute("UPDATE hapta.idempotency SET created = now() - interval '25 hours' "
                     "WHERE owner = $1 AND key = $2", f"user:{alice.user['id']}", key)
    assert await harness.gateway.writes.idempotency.prune(db) >= 1
    assert await db.fetchval("SELECT count(*) FROM hapta.idempotency WHERE owner = $1",
                             f"user:{alice.user['id']}") == 0


async def test_the_reconnecting_client_sends_writes_with_a_key(gateway):
    """Through a real socket (hapta serve): write() sends a key of its own, or the caller's, and a repeat of the
    caller's key answers the first answer."""
    from hapta.reconnect import Hapta
    hapta = await Hapta.connect(gateway.url, backoff=(0.05, 0.5))
    try:
        name = "i" + secrets.token_hex(5)
        user = (await hapta.register(email=f"{name}@example.com", password=PASSWORD, username=name))["user"]
        args = {"collection": "posts", "data": {"author": user["id"], "text": "from python", "public": True}}
        first, second = [await hapta.write("records.create", args) for _ in range(2)]
        assert first["id"] != second["id"]   # a key per write, not per args
        key = _key()
        kept = [await hapta.write("records.create", {**args, "idempotency_key": key}) for _ in range(2)]
        assert kept[0] == kept[1]
        page = await hapta.call("records.list", {"collection": "posts", "filter": f'author = "{user["id"]}"',
                                                 "count": True})
        assert page["total"] == 3
    finally:
        await hapta.close()


async def test_the_python_clients_records_methods(gateway):
    """hapta.records(...) and hapta.batch: the issue's ops through the reconnecting client over a real socket;
    its writes carry keys, so a repeat with the same key is the first answer."""
    from hapta.reconnect import Hapta
    hapta = await Hapta.connect(gateway.url, backoff=(0.05, 0.5))
    try:
        name = "r" + secrets.token_hex(5)
        user = (await hapta.register(email=f"{name}@example.com", password=PASSWORD, username=name))["user"]
        posts = hapta.records("posts")
        post = await posts.create({"author": user["id"], "text": f"{name} pythons and snakes", "public": True})
        done = await hapta.batch([
            {"op": "create", "collection": "comments", "data": {"post": post["id"],
                                                                "author": user["id"], "text": "one"}},
            {"op": "update", "collection": "posts", "id": post["id"], "data": {"text": f"{name} pythons"}}])
        assert done["results"][1]["text"] == f"{name} pythons"
        key = _key()
        assert await posts.update(post["id"], {"public": False}, idempotency_key=key) == \
            await posts.update(post["id"], {"public": False}, idempotency_key=key)
        found = await posts.list(filter=f'text @@ "{name}"', sort="-@rank", expand=["author"])
        assert [p["id"] for p in found["items"]] == [post["id"]]
        assert found["items"][0]["expand"]["author"]["id"] == user["id"]
        assert (await posts.get(post["id"], expand=["author"]))["expand"]["author"]["email"] == user["email"]
        counted = await hapta.records("comments").aggregate(filter=f'post = "{post["id"]}"')
        assert counted["groups"][0]["count"] == 1
        await posts.delete(post["id"])
    finally:
        await hapta.close()
