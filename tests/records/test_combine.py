"""Combined creates (hapta/records/combine.py), in-process on real PostgreSQL: creates that wait for one collection
go as one INSERT, each row judged by its own writer's rule, a refused row refusing only its own request with the
error it would have had alone, and one connection's creates kept in order.

To hold creates waiting, deterministically, the first (lone) create is made to block in PostgreSQL: the test locks
its author's row, which the foreign key check of the INSERT must share."""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import pytest

from hapta.records.combine import MAX_FLIGHTS


async def _until(condition, what: str) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


def _post(device, **data: Any) -> dict[str, Any]:
    return {"collection": "posts", "data": {"author": device.user["id"], "text": "hi", "public": True, **data}}


@asynccontextmanager
async def _held(harness, devices: list, collection: str, make) -> AsyncIterator[list[asyncio.Task]]:
    """A lone create of each of `devices` under way on `collection` and blocked (their users' rows locked) while
    the block runs: every statement the combiner may have under way at once is taken, so what the block sends
    waits. Yields the list the block adds its own request tasks to, awaited once the locks are gone."""
    combiner = harness.gateway.writes.combiner
    assert len(devices) == MAX_FLIGHTS
    tasks: list[asyncio.Task] = []
    async with harness.gateway.db.pool.acquire() as locker:
        async with locker.transaction():
            await locker.execute("SELECT 1 FROM users WHERE id = ANY($1::text[]) FOR UPDATE",
                                 [device.user["id"] for device in devices])
            first = [asyncio.ensure_future(device.request("records.create", make(device))) for device in devices]
            await _until(lambda: combiner.flights.get(collection) == MAX_FLIGHTS, "the lone creates are under way")
            yield tasks
            await _until(lambda: len(combiner.waiting.get(collection, [])) >= len(tasks), "the others wait")
    for request in first:
        assert (await request)["ok"]


async def _xmin(harness, table: str, ids: list[str]) -> set[str]:
    rows = await harness.gateway.db.fetch(f"SELECT xmin::text AS x FROM {table} WHERE id = ANY($1::text[])", ids)
    assert len(rows) == len(ids)
    return {row["x"] for row in rows}


async def test_waiting_creates_are_written_by_one_statement_each_as_its_writer_reads_it(harness):
    alice = await harness.user()
    others = [await harness.user() for _ in range(3)]
    admin = await harness.admin()
    async with _held(harness, [alice, await harness.user()], "posts", _post) as tasks:
        for device in others:
            tasks.append(asyncio.ensure_future(device.call("records.create", _post(device, text=device.user["id"]))))
        tasks.append(asyncio.ensure_future(admin.call("records.create", _post(others[0], text="by the admin"))))
    made = await asyncio.gather(*tasks)
    assert [post["text"] for post in made[:3]] == [device.user["id"] for device in others]
    assert [post["author"] for post in made] == [d.user["id"] for d in others] + [others[0].user["id"]]
    assert len({post["id"] for post in made}) == 4 and all(len(post["id"]) == 15 for post in made)
    assert len(await _xmin(harness, "posts", [post["id"] for post in made])) == 1   # one statement, one transaction
    for device, post in zip(others, made):   # and each is there, as its writer was told
        assert await device.call("records.get", {"collection": "posts", "id": post["id"]}) == post


async def test_a_refused_row_refuses_only_its_own_request_with_its_own_error(harness):
    alice, bob, carol, dave = [await harness.user() for _ in range(4)]
    alone = {}
    for name, args in [("forbidden", _post(bob, author=carol.user["id"])),
                       ("missing", _post(bob, author="nosuchuser0000"))]:
        alone[name] = (await bob.request("records.create", args))["error"]
    assert alone["forbidden"]["code"] == "FORBIDDEN" and alone["missing"]["code"] == "VALIDATION_FAILED"
    async with _held(harness, [alice, await harness.user()], "posts", _post) as tasks:
        for device, args in [(carol, _post(carol, text="fine")), (bob, _post(bob, author=carol.user["id"])),
                             (bob, _post(bob, author="nosuchuser0000")), (dave, _post(dave, text="fine too"))]:
            tasks.append(asyncio.ensure_future(device.request("records.create", args)))
    fine, forbidden, missing, fine_too = await asyncio.gather(*tasks)
    assert fine["ok"] and fine_too["ok"]
    assert forbidden["error"] == alone["forbidden"] and missing["error"] == alone["missing"]
    assert fine["data"]["author"] == carol.user["id"] and fine_too["data"]["author"] == dave.user["id"]


async def test_a_unique_value_taken_twice_in_one_statement_conflicts_once(harness):
    alice, bob, carol = [await harness.user() for _ in range(3)]
    post = await alice.call("records.create", _post(alice))
    like = lambda device: {"collection": "likes", "data": {"post": post["id"], "user": device.user["id"]}}  # noqa
    async with _held(harness, [alice, await harness.user()], "likes", like) as tasks:
        for device in (bob, bob, carol):
            tasks.append(asyncio.ensure_future(device.request("records.create", like(device))))
    first, second, other = await asyncio.gather(*tasks)
    assert first["ok"] and other["ok"]
    assert second["error"]["code"] == "CONFLICT"
    admin = await harness.admin()
    page = await admin.call("records.list", {"collection": "likes", "filter": f'post = "{post["id"]}"', "count": True})
    assert page["total"] == 4   # the two held ones, one of bob's, carol's


async def test_creates_keep_the_order_they_came_in(harness):
    """Pipelined requests run side by side (PROTOCOL.md: replies in any order), so the order that counts is the one
    in which they reach the combiner: the statement writes them in it, and their positions follow it."""
    alice, bob = await harness.user(), await harness.user()
    await bob.call("realtime.subscribe", {"collection": "posts", "filter": f'author = "{bob.user["id"]}"'})
    texts = [str(n) for n in range(6)]
    waiting = harness.gateway.writes.combiner.waiting
    async with _held(harness, [alice, await harness.user()], "posts", _post) as tasks:
        messages = [{"id": 100 + n, "op": "records.create", "args": _post(bob, text=text)}
                    for n, text in enumerate(texts)]
        tasks.append(asyncio.ensure_future(bob.send(messages)))
        await _until(lambda: len(waiting.get("posts", [])) == len(texts), "bob's creates wait")
        came = [create.values["text"] for create in waiting["posts"]]
    (replies,) = await asyncio.gather(*tasks)
    assert sorted(reply["data"]["text"] for reply in replies) == texts
    heard = [(await bob.event("records.change"))["data"]["record"]["text"] for _ in texts]
    assert heard == came


async def test_a_create_whose_deadline_passes_while_waiting_is_left_out(harness):
    alice, bob, carol = [await harness.user() for _ in range(3)]
    combiner = harness.gateway.writes.combiner
    async with _held(harness, [alice, await harness.user()], "posts", _post) as tasks:
        gone = asyncio.ensure_future(bob.call("records.create", _post(bob, text="gone")))
        tasks.append(asyncio.ensure_future(carol.call("records.create", _post(carol, text="stays"))))
        await _until(lambda: len(combiner.waiting.get("posts", [])) == 2, "both wait")
        gone.cancel()   # what the request's deadline does to its task
        with pytest.raises(asyncio.CancelledError):
            await gone
    (stays,) = await asyncio.gather(*tasks)
    assert stays["text"] == "stays"
    admin = await harness.admin()
    page = await admin.call("records.list", {"collection": "posts", "filter": f'author = "{bob.user["id"]}"',
                                             "count": True})
    assert page["total"] == 0


async def test_a_connection_with_a_create_under_way_has_its_next_wait_for_it(harness):
    """Room for another statement is not taken by a connection whose earlier create has not landed: its creates
    are written in the order it sent them."""
    alice = await harness.user()
    combiner = harness.gateway.writes.combiner
    await alice.call("realtime.subscribe", {"collection": "posts", "filter": f'author = "{alice.user["id"]}"'})
    async with harness.gateway.db.pool.acquire() as locker:
        async with locker.transaction():
            await locker.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", alice.user["id"])
            first = asyncio.ensure_future(alice.call("records.create", _post(alice, text="first")))
            await _until(lambda: combiner.flights.get("posts") == 1, "the first is under way")
            second = asyncio.ensure_future(alice.call("records.create", _post(alice, text="second")))
            await _until(lambda: len(combiner.waiting.get("posts", [])) == 1, "the second waits")
            assert combiner.flights["posts"] == 1 < MAX_FLIGHTS   # though there is room
    made = [await first, await second]
    assert [post["text"] for post in made] == ["first", "second"]
    heard = [(await alice.event("records.change"))["data"]["record"]["text"] for _ in made]
    assert heard == ["first", "second"]


async def test_a_statement_kept_for_rows_of_one_shape_judges_each_batch_by_its_own_writers(harness):
    """The text of a combined statement is kept per shape of its rows and filled per batch: the next batch of the
    same shape is judged by its own writers' variables, not the first one's."""
    combiner = harness.gateway.writes.combiner
    rounds = []
    for _ in range(2):
        writers = [await harness.user() for _ in range(2)]
        async with _held(harness, [await harness.user(), await harness.user()], "posts", _post) as tasks:
            tasks.append(asyncio.ensure_future(writers[0].request("records.create", _post(writers[0]))))
            tasks.append(asyncio.ensure_future(writers[1].request("records.create", _post(writers[1]))))
        rounds.append((writers, await asyncio.gather(*tasks)))
        kept = len(combiner.templates)
    (first_writers, first), (writers, second) = rounds
    assert all(reply["ok"] for reply in first + second)
    assert [reply["data"]["author"] for reply in second] == [w.user["id"] for w in writers]
    async with _held(harness, [await harness.user(), await harness.user()], "posts", _post) as tasks:
        tasks.append(asyncio.ensure_future(writers[0].request("records.create", _post(writers[0]))))
        tasks.append(asyncio.ensure_future(first_writers[0].request("records.create", _post(writers[1]))))
    own, forged = await asyncio.gather(*tasks)
    assert own["ok"] and forged["error"]["code"] == "FORBIDDEN"
    assert len(combiner.templates) == kept   # the same text all along


async def test_nothing_is_kept_of_a_connection_once_its_creates_landed(harness):
    combiner = harness.gateway.writes.combiner
    async with _held(harness, [await harness.user(), await harness.user()], "posts", _post) as tasks:
        for device in [await harness.user() for _ in range(3)]:
            tasks.append(asyncio.ensure_future(device.call("records.create", _post(device))))
    await asyncio.gather(*tasks)
    await _until(lambda: not combiner.flights.get("posts"), "every statement landed")
    assert not combiner.sending["posts"] and not combiner.waiting.get("posts")


# ---- updates and deletes -------------------------------------------------------------------------------------
# Held the same way: lone creates of the collection blocked on their authors' rows take every statement the
# combiner may have under way on it, so the updates and deletes sent meanwhile wait and go together. Comments and
# likes have no before_update or before_delete hook in the test app (posts do: theirs are never combined).

def _comment(post: dict[str, Any]):
    return lambda device, **data: {"collection": "comments", "data": {
        "post": post["id"], "author": device.user["id"], "text": "held", **data}}


async def _public_post(harness) -> dict[str, Any]:
    owner = await harness.user()
    return await owner.call("records.create", _post(owner))


async def _written_by(harness, table: str, action: str, ids: list[str]) -> set[str]:
    """The transactions that made these changes, read from the change log once all of them are numbered there."""
    query = ("SELECT change->>'x' AS x FROM hapta.change_log WHERE t = $1 AND change->>'a' = $2 "
             "AND change->>'id' = ANY($3::text[])")
    found: list = []

    async def numbered() -> bool:
        found[:] = await harness.gateway.db.fetch(query, table, action, ids)
        return len(found) == len(ids)
    for _ in range(500):
        if await numbered():
            return {row["x"] for row in found}
        await asyncio.sleep(0.01)
    raise AssertionError(f"the {action}s of {ids} were never numbered")


def _update(collection: str, record: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"collection": collection, "id": record["id"], **extra}


async def test_waiting_updates_are_written_by_one_statement_each_as_its_writer_reads_it(harness):
    post = await _public_post(harness)
    comment = _comment(post)
    writers = [await harness.user() for _ in range(3)]
    mine = [await device.call("records.create", comment(device, text="before")) for device in writers]
    by_admin = await writers[0].call("records.create", comment(writers[0], text="the admin edits this"))
    admin = await harness.admin()
    async with _held(harness, [await harness.user(), await harness.user()], "comments", comment) as tasks:
        for n, (device, record) in enumerate(zip(writers, mine)):
            expects = {"version": 1} if n == 1 else {}
            tasks.append(asyncio.ensure_future(device.call("records.update", _update(
                "comments", record, data={"text": f"after {n}"}, **expects))))
        tasks.append(asyncio.ensure_future(admin.call("records.update", _update(
            "comments", by_admin, data={"text": "edited by the admin"}))))
    updated = await asyncio.gather(*tasks)
    assert [c["text"] for c in updated] == ["after 0", "after 1", "after 2", "edited by the admin"]
    assert [c["author"] for c in updated] == [d.user["id"] for d in writers] + [writers[0].user["id"]]
    assert all(c["version"] == 2 and c["updated"] > c["created"] for c in updated)
    assert len(await _xmin(harness, "comments", [c["id"] for c in updated])) == 1   # one statement
    for device, record in zip(writers, updated):   # each is there as its writer was told
        assert await device.call("records.get", {"collection": "comments", "id": record["id"]}) == record


async def test_waiting_deletes_are_written_by_one_statement_and_their_after_hooks_run(harness):
    """likes' after_delete hook (tests/app/rules/likes.py) counts the post's likes down: it gets each deleted
    record as its writer read it, as for a lone delete."""
    post = await _public_post(harness)
    like = lambda device: {"collection": "likes", "data": {"post": post["id"], "user": device.user["id"]}}  # noqa
    likers = [await harness.user() for _ in range(4)]
    liked = [await device.call("records.create", like(device)) for device in likers]
    admin = await harness.admin()

    async def likes() -> int:
        return (await admin.call("records.get", {"collection": "posts", "id": post["id"]}))["likes"]
    await _until_async(lambda: likes(), lambda n: n == 4, "the likes are counted")
    async with _held(harness, [await harness.user(), await harness.user()], "likes", like) as tasks:
        for device, record in zip(likers, liked):
            tasks.append(asyncio.ensure_future(device.call("records.delete", _update("likes", record))))
    assert await asyncio.gather(*tasks) == [{"id": record["id"]} for record in liked]
    assert len(await _written_by(harness, "likes", "delete", [r["id"] for r in liked])) == 1   # one statement
    await _until_async(lambda: likes(), lambda n: n == 2, "the deleted likes are counted out (the held two stay)")
    for device, record in zip(likers, liked):
        gone = await device.request("records.get", {"collection": "likes", "id": record["id"]})
        assert gone["error"]["code"] == "NOT_FOUND"


async def _until_async(read, condition, what: str) -> None:
    for _ in range(500):
        if condition(await read()):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def test_an_update_or_delete_not_written_gets_its_own_error_while_the_others_are(harness):
    """Rows the statement does not write (absent, refused as they stand, at another version) run again alone and
    get exactly what they would have alone; the rest are written by the one statement."""
    post = await _public_post(harness)
    comment = _comment(post)
    bob, carol, dave, erin = [await harness.user() for _ in range(4)]
    carols = await carol.call("records.create", comment(carol))
    daves = await dave.call("records.create", comment(dave))
    erins = await erin.call("records.create", comment(erin))
    extra = await erin.call("records.create", comment(erin, text="erin's other"))
    wrong = [(bob, "records.update", _update("comments", carols, data={"text": "bob was here"})),
             (bob, "records.update", _update("comments", {"id": "nosuchcomment00"}, data={"text": "x"})),
             (dave, "records.update", _update("comments", daves, data={"text": "late"}, version=7)),
             (bob, "records.delete", _update("comments", erins)),
             (bob, "records.delete", _update("comments", {"id": "nosuchcomment00"}))]
    alone = [(await device.request(op, args))["error"] for device, op, args in wrong]
    assert [e["code"] for e in alone] == ["FORBIDDEN", "NOT_FOUND", "CONFLICT", "FORBIDDEN", "NOT_FOUND"]
    assert alone[2]["details"] == {"version": 1}
    async with _held(harness, [await harness.user(), await harness.user()], "comments", comment) as tasks:
        updates = [(carol, "records.update", _update("comments", carols, data={"text": "carol's"})),
                   *wrong[:3],
                   (erin, "records.update", _update("comments", erins, data={"text": "erin's"}, version=1))]
        for device, op, args in updates:
            tasks.append(asyncio.ensure_future(device.request(op, args)))
    replies = await asyncio.gather(*tasks)
    assert [reply.get("error") for reply in replies[1:4]] == alone[:3]
    fine = [replies[0]["data"], replies[4]["data"]]
    assert [c["text"] for c in fine] == ["carol's", "erin's"]
    assert len(await _xmin(harness, "comments", [c["id"] for c in fine])) == 1
    async with _held(harness, [await harness.user(), await harness.user()], "comments", comment) as tasks:
        for device, op, args in [(erin, "records.delete", _update("comments", extra)), *wrong[3:]]:
            tasks.append(asyncio.ensure_future(device.request(op, args)))
    gone, *refused = await asyncio.gather(*tasks)
    assert gone["data"] == {"id": extra["id"]} and [reply["error"] for reply in refused] == alone[3:]


async def test_a_statement_refused_for_one_row_runs_each_alone_and_refuses_only_that_one(harness):
    """A refusal inside the statement (a row that may not stand as updated, a value the table refuses) undoes it
    all: each update runs again alone, and only the refused ones are refused, each with its own error."""
    post = await _public_post(harness)
    comment = _comment(post)
    carol, dave, erin = [await harness.user() for _ in range(3)]
    hidden = await carol.call("records.create", _post(carol, public=False))   # dave may not view it
    carols, daves, erins = [await d.call("records.create", comment(d)) for d in (carol, dave, erin)]
    wrong = [(dave, _update("comments", daves, data={"post": hidden["id"]})),   # onto a post he cannot see
             (erin, _update("comments", erins, data={"text": ""}))]             # the table's CHECK
    alone = [(await device.request("records.update", args))["error"] for device, args in wrong]
    assert [e["code"] for e in alone] == ["VALIDATION_FAILED", "VALIDATION_FAILED"]
    assert [e["details"]["field"] for e in alone] == ["post", "text"]
    async with _held(harness, [await harness.user(), await harness.user()], "comments", comment) as tasks:
        for device, args in [(carol, _update("comments", carols, data={"text": "fine"})), *wrong]:
            tasks.append(asyncio.ensure_future(device.request("records.update", args)))
    fine, *refused = await asyncio.gather(*tasks)
    assert fine["data"]["text"] == "fine" and [reply["error"] for reply in refused] == alone
    admin = await harness.admin()
    for record in (daves, erins):   # untouched
        assert (await admin.call("records.get", {"collection": "comments", "id": record["id"]}))["version"] == 1


async def test_a_connections_updates_and_deletes_keep_the_order_they_came_in(harness):
    """As for creates, the order that counts is the one in which they reach the combiner; it is read here from the
    change log's positions (realtime would fold an update and a delete of one record into one event)."""
    post = await _public_post(harness)
    comment = _comment(post)
    bob = await harness.user()
    first, second = [await bob.call("records.create", comment(bob, text=t)) for t in ("first", "second")]
    waiting = harness.gateway.writes.combiner.waiting
    async with _held(harness, [await harness.user(), await harness.user()], "comments", comment) as tasks:
        messages = [{"id": 200, "op": "records.update", "args": _update("comments", first, data={"text": "1"})},
                    {"id": 201, "op": "records.delete", "args": _update("comments", first)},
                    {"id": 202, "op": "records.update", "args": _update("comments", second, data={"text": "2"})},
                    {"id": 203, "op": "records.create", "args": comment(bob, text="third")},
                    {"id": 204, "op": "records.delete", "args": _update("comments", second)}]
        tasks.append(asyncio.ensure_future(bob.send(messages)))
        await _until(lambda: len(waiting.get("comments", [])) == len(messages), "bob's writes wait")
        came = [(write.kind, write.key or write.values["text"]) for write in waiting["comments"]]
    (replies,) = await asyncio.gather(*tasks)
    assert all(reply["ok"] for reply in replies), replies
    third = next(reply["data"]["id"] for reply in replies if reply["id"] == 203)
    came = [(kind, third if what == "third" else what) for kind, what in came]
    query = ("SELECT change->>'a' AS a, change->>'id' AS id FROM hapta.change_log WHERE t = 'comments' "
             "AND change->>'id' = ANY($1::text[]) AND pos > $2 ORDER BY pos")
    start = await harness.gateway.db.fetchval("SELECT coalesce(max(pos), 0) FROM hapta.change_log "
                                              "WHERE change->>'id' = $1 AND change->>'a' = 'create'", second["id"])
    written: list = []

    async def log() -> list:
        written[:] = [(row["a"], row["id"]) for row in await harness.gateway.db.fetch(
            query, [first["id"], second["id"], third], start)]
        return written
    await _until_async(log, lambda found: len(found) == len(came), "every change is numbered")
    assert written == came
    assert {kind for kind, _ in came} == {"create", "update", "delete"}


async def test_two_writes_of_one_record_go_one_after_the_other(harness):
    """One statement never writes a record twice (it would be an arbitrary one of the two): the second waits for
    the next, and a version it expects is then checked against the first's result."""
    post = await _public_post(harness)
    comment = _comment(post)
    carol = await harness.user()
    record = await carol.call("records.create", comment(carol))
    other = await harness.user()   # carol on a second connection: not ordered with the first
    other.user = carol.user
    await other.call("auth.login", {"identity": f'{carol.user["username"]}@example.com',
                                    "password": "correct horse battery"})
    async with _held(harness, [await harness.user(), await harness.user()], "comments", comment) as tasks:
        for device, text in ((carol, "one"), (other, "two")):
            tasks.append(asyncio.ensure_future(device.request("records.update", _update(
                "comments", record, data={"text": text}, version=1))))
    one, two = await asyncio.gather(*tasks)
    assert one["data"]["text"] == "one" and one["data"]["version"] == 2
    assert two["error"]["code"] == "CONFLICT" and two["error"]["details"] == {"version": 2}


async def test_an_update_with_a_before_hook_is_not_combined(harness):
    """posts.before_update (tests/app/rules/posts.py) runs inside the update's transaction, with the record locked:
    such an update runs as ever, by itself, and does not wait for the creates of posts under way."""
    alice = await harness.user()
    mine = await alice.call("records.create", _post(alice))
    async with _held(harness, [await harness.user(), await harness.user()], "posts", _post):
        updated = await alice.call("records.update", _update("posts", mine, data={"text": "  trimmed by the hook  "}))
        assert updated["text"] == "trimmed by the hook"


async def test_a_kept_update_statement_judges_each_batch_by_its_own_writers(harness):
    """The UPDATE's text is kept per shape of its rows too: a later batch of the same shape checks its own writers'
    rules, not the first batch's (a forged update of another's comment is refused, as alone)."""
    post = await _public_post(harness)
    comment = _comment(post)
    combiner = harness.gateway.writes.combiner
    writers = [await harness.user() for _ in range(3)]
    records = [await device.call("records.create", comment(device)) for device in writers]
    forged = (await writers[2].request("records.update", _update("comments", records[0], data={"text": "x"})))
    assert forged["error"]["code"] == "FORBIDDEN"
    rounds = [[(writers[0], records[0]), (writers[1], records[1])],
              [(writers[1], records[1]), (writers[2], records[0])]]
    replies = []
    for n, batch in enumerate(rounds):
        async with _held(harness, [await harness.user(), await harness.user()], "comments", comment) as tasks:
            for device, record in batch:
                tasks.append(asyncio.ensure_future(device.request("records.update", _update(
                    "comments", record, data={"text": f"round {n}"}))))
        replies.append(await asyncio.gather(*tasks))
        if n == 0:
            kept = len(combiner.templates)
    assert all(reply["ok"] for reply in replies[0]) and replies[1][0]["ok"]
    assert replies[1][1]["error"] == forged["error"]
    assert len(combiner.templates) == kept   # the same text for both rounds


async def test_updates_that_set_different_columns_go_in_different_statements(harness):
    """A row of a combined UPDATE sets only what its own update sets: an app's trigger `BEFORE UPDATE OF` a column
    fires for the updates that set it, as alone."""
    post, other_post = await _public_post(harness), await _public_post(harness)
    comment = _comment(post)
    carol, dave, erin = [await harness.user() for _ in range(3)]
    records = [await device.call("records.create", comment(device)) for device in (carol, dave, erin)]
    async with _held(harness, [await harness.user(), await harness.user()], "comments", comment) as tasks:
        for device, record, data in [(carol, records[0], {"text": "new text"}),
                                     (dave, records[1], {"post": other_post["id"]}),
                                     (erin, records[2], {"text": "new too"})]:
            tasks.append(asyncio.ensure_future(device.call("records.update", _update("comments", record, data=data))))
    texts, moved, too = await asyncio.gather(*tasks)
    assert (texts["text"], moved["post"], moved["text"], too["text"]) == ("new text", other_post["id"], "held",
                                                                          "new too")
    assert len(await _xmin(harness, "comments", [texts["id"], too["id"]])) == 1
    assert len(await _xmin(harness, "comments", [texts["id"], moved["id"]])) == 2
