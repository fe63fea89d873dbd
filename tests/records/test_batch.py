"""records.batch (in-process, tests/harness.py, on real PostgreSQL): many writes in one transaction, each judged
and hooked exactly as its single op, all or nothing, with references to what earlier ops wrote."""
from __future__ import annotations

from hapta.protocol.errors import HaptaError


async def _post(device, text: str, public: bool = True) -> dict:
    return await device.call("records.create", {"collection": "posts", "data": {
        "author": device.user["id"], "text": text, "public": public}})


async def _count(admin, collection: str, filter_text: str) -> int:
    page = await admin.call("records.list", {"collection": collection, "filter": filter_text, "count": True})
    return page["total"]


async def _refused(device, ops: list[dict]) -> dict:
    reply = await device.request("records.batch", {"ops": ops})
    assert not reply["ok"], reply
    return reply["error"]


async def test_a_post_and_a_comment_on_it_in_one_batch(harness):
    alice = await harness.user()
    me = alice.user["id"]
    answer = await alice.call("records.batch", {"ops": [
        {"op": "create", "collection": "posts", "data": {"author": me, "text": "  hello  ", "public": False}},
        {"op": "create", "collection": "comments", "data": {"post": {"$ref": 0}, "author": me, "text": "first"}},
        {"op": "update", "collection": "posts", "id": {"$ref": 0}, "data": {"text": "edited"}, "version": 1},
    ]})
    post, comment, edited = answer["results"]
    assert post["text"] == "hello"               # before_create ran, as for records.create
    assert comment["post"] == post["id"]
    assert edited["id"] == post["id"] and edited["text"] == "edited" and edited["version"] == 2
    assert await alice.call("records.get", {"collection": "comments", "id": comment["id"]}) == comment
    deleted = await alice.call("records.batch", {"ops": [
        {"op": "delete", "collection": "comments", "id": comment["id"]},
        {"op": "delete", "collection": "posts", "id": post["id"]}]})
    assert deleted == {"results": [{"id": comment["id"]}, {"id": post["id"]}]}


async def test_the_third_op_failing_leaves_nothing_written(harness):
    alice, bob, admin = await harness.user(), await harness.user(), await harness.admin()
    me = alice.user["id"]
    mine = f'author = "{me}"'
    failing = {
        "VALIDATION_FAILED": {"op": "create", "collection": "comments", "data": {"post": {"$ref": 0},
                                                                              "author": me, "text": ""}},
        "FORBIDDEN": {"op": "create", "collection": "posts", "data": {"author": bob.user["id"], "text": "x"}},
        "RULE_DENIED": {"op": "create", "collection": "posts", "data": {"author": me, "text": "   "}},
        "CONFLICT": {"op": "create", "collection": "likes", "data": {"post": {"$ref": 0}, "user": me}},
    }
    for code, third in failing.items():
        error = await _refused(alice, [
            {"op": "create", "collection": "posts", "data": {"author": me, "text": "kept?"}},
            {"op": "create", "collection": "likes", "data": {"post": {"$ref": 0}, "user": me}},
            third])
        assert error["code"] == code, error
        assert error["details"]["index"] == 2, error
        assert error["message"].startswith("op 2 ("), error
        assert await _count(admin, "posts", mine) == 0, code
        assert await _count(admin, "likes", f'user = "{me}"') == 0, code
    # what the op itself would have said, details and all, under the index
    error = await _refused(alice, [{"op": "update", "collection": "posts", "id": "nope", "data": {}}] * 1 + [
        {"op": "create", "collection": "comments", "data": {"post": "missing", "author": me, "text": "t"}}])
    assert error["code"] == "NOT_FOUND" and error["details"] == {"index": 0}


async def test_a_batch_cannot_write_what_single_ops_could_not(harness):
    alice, bob, admin = await harness.user(), await harness.user(), await harness.admin()
    open_post = await _post(alice, "alice's public post")
    secret = await _post(alice, "alice's private post", public=False)
    me = bob.user["id"]
    attempts = [
        {"op": "update", "collection": "posts", "id": open_post["id"], "data": {"text": "bob was here"}},
        {"op": "delete", "collection": "posts", "id": open_post["id"]},
        {"op": "update", "collection": "posts", "id": secret["id"], "data": {"text": "bob was here"}},
        {"op": "create", "collection": "comments", "data": {"post": secret["id"], "author": me, "text": "hi"}},
        {"op": "create", "collection": "likes", "data": {"post": secret["id"], "user": me}},
        {"op": "create", "collection": "posts", "data": {"author": alice.user["id"], "text": "as alice"}},
    ]
    for attempt in attempts:
        single = dict(attempt)
        op = single.pop("op")
        alone = (await bob.request(f"records.{op}", single))["error"]
        error = await _refused(bob, [{"op": "create", "collection": "posts", "data": {"author": me, "text": "ok"}},
                                     attempt])
        assert (error["code"], error["details"]) == (alone["code"], {**alone.get("details", {}), "index": 1})
        assert error["message"].endswith(alone["message"])
    assert await _count(admin, "posts", f'author = "{me}"') == 0
    assert (await admin.call("records.get", {"collection": "posts", "id": open_post["id"]}))["version"] == 1


async def test_after_hooks_run_after_the_commit(harness):
    """likes keep posts.likes in an after_create hook: it runs once the batch committed, once per like."""
    alice, bob = await harness.user(), await harness.user()
    post = await _post(alice, "like me")
    await alice.call("realtime.subscribe", {"collection": "posts", "id": post["id"]})
    for device in (alice, bob):
        await device.call("records.batch", {"ops": [
            {"op": "create", "collection": "likes", "data": {"post": post["id"], "user": device.user["id"]}}]})
    # an event carries the post as it is when delivered, so two quick updates may both read 2: what must hold is
    # that the counter climbs to 2 and no further, one after hook per like
    counts = [(await alice.event("records.change"))["data"]["record"]["likes"]]
    while counts[-1] < 2:
        counts.append((await alice.event("records.change"))["data"]["record"]["likes"])
    assert counts == sorted(counts) and counts[-1] == 2
    assert (await alice.call("records.get", {"collection": "posts", "id": post["id"]}))["likes"] == 2


async def test_references_must_point_back_and_batches_are_bounded(harness):
    alice = await harness.user()
    me = alice.user["id"]
    make = {"op": "create", "collection": "posts", "data": {"author": me, "text": "x"}}
    for ops, index in [
        ([make, {"op": "create", "collection": "comments", "data": {"post": {"$ref": 1}, "author": me,
                                                                    "text": "x"}}], 1),
        ([{"op": "delete", "collection": "posts", "id": {"$ref": 0}}], 0),
        ([make, {"op": "delete", "collection": "posts", "id": {"$ref": "0"}}], 1),
        ([make, {"op": "delete", "collection": "posts", "id": {"$ref": 0, "x": 1}}], 1),
        ([make, {"op": "delete", "collection": "posts", "id": {"$ref": 0}, "data": {}}], 1),
        ([{"op": "create", "collection": "posts", "id": "a", "data": {}}], 0),
    ]:
        error = await _refused(alice, ops)
        assert error["code"] == "BAD_REQUEST" and error["details"]["index"] == index, error
    limit = harness.gateway.app.database.batch_max
    error = await _refused(alice, [make] * (limit + 1))
    assert error["code"] == "BAD_REQUEST" and f"at most {limit}" in error["message"]
    assert (await alice.request("records.batch", {"ops": []}))["error"]["code"] == "BAD_REQUEST"
    error = (await alice.request("records.batch", {"ops": [make], "atomic": False}))["error"]
    assert error["code"] == "BAD_REQUEST" and "atomic" in error["message"]
    assert await _count(await harness.admin(), "posts", f'author = "{me}"') == 0


async def test_each_op_of_a_batch_counts_against_its_own_rate_limit(harness):
    """The test app allows records.create 10 a second per user, in bursts of 20: a batch is no way around it."""
    alice, admin = await harness.user(), await harness.admin()
    me = alice.user["id"]
    error = await _refused(alice, [{"op": "create", "collection": "posts", "data": {"author": me, "text": "x"}}] * 30)
    assert error["code"] == "RATE_LIMITED" and error["details"]["index"] >= 20, error
    assert error["retry_after"] > 0
    assert await _count(admin, "posts", f'author = "{me}"') == 0
    try:   # the batch spent the burst: the single op is refused too
        await _post(alice, "one more")
    except HaptaError as refused:
        assert refused.code == "RATE_LIMITED"
    else:
        raise AssertionError("the batch's creates did not count")
