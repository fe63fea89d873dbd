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
