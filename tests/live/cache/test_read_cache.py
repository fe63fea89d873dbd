"""The read cache's logic without servers: coalescing, invalidation by generation, and keys per principal."""
from __future__ import annotations

import asyncio

import pytest

from hapta.access.filters import bound_filter, implied, query_key
from hapta.catalog import Column, TableInfo
from hapta.config import App, Collection
from hapta.models import build_models
from hapta.query import FilterError
from hapta.live.cache import ReadCache
from hapta.principal import ADMIN, ANON, USER, Principal


def _info(name: str, columns: dict[str, str], relations: dict[str, str] | None = None) -> TableInfo:
    info = TableInfo(name)
    for column in ("id", "created", "updated", "version", *columns):
        kind = columns.get(column, {"created": "timestamp", "updated": "timestamp", "version": "int"}.get(column, "text"))
        info.columns[column] = Column(column, kind, nullable=column not in ("id", "version"), has_default=True)
    info.relations.update(relations or {})
    return info


@pytest.fixture(scope="module")
def demo():
    app = App(collections=[
        Collection("posts", list="public = true || author = @user.id", view="public = true || author = @user.id"),
        Collection("comments", list="post.public = true", view="post.public = true"),
        Collection("people", list="", view="", guarded={"email": "id = @user.id"}),
        Collection("timed", list="created < @now", view="created < @now"),
    ])
    infos = {"posts": _info("posts", {"author": "text", "public": "bool", "text": "text"}),
             "comments": _info("comments", {"post": "text", "text": "text"}, {"post": "posts"}),
             "people": _info("people", {"email": "text"}),
             "timed": _info("timed", {})}
    return build_models(app, infos)


def _key(demo, collection, principal, filter_text=None, fields=("id",), rule_op="list"):
    schema, models = demo
    found = bound_filter(models[collection], schema, filter_text)
    return query_key(models[collection], rule_op, principal, found, fields, ())


async def _always() -> bool:
    return True


ALICE = Principal(USER, "alice")
BOB = Principal(USER, "bob")


def test_principals_the_rule_tells_apart_get_different_keys(demo):
    assert _key(demo, "posts", ALICE)[0] != _key(demo, "posts", BOB)[0]
    assert _key(demo, "posts", ALICE)[0] != _key(demo, "posts", Principal(ANON))[0]


def test_a_filter_through_a_relation_is_keyed_by_what_the_related_view_rule_reads(demo):
    # comments' own rule reads nothing of the reader; the posts behind them are seen as their view rule says, so
    # two readers of the same filter through `post` must never share an answer
    assert _key(demo, "comments", ALICE)[0] == _key(demo, "comments", BOB)[0]
    assert _key(demo, "comments", ALICE, 'post.author = "alice"')[0] != _key(demo, "comments", BOB,
                                                                                'post.author = "alice"')[0]
    assert _key(demo, "comments", ALICE, 'post.author = "alice"')[1] == ("comments", "posts")


def test_a_filter_that_implies_the_rule_lets_everyone_share_one_entry(demo):
    keys = {_key(demo, "posts", p, "public = true")[0] for p in (ALICE, BOB, Principal(ANON))}
    assert len(keys) == 1
    # ... but not a filter that merely mentions the same field
    assert _key(demo, "posts", ALICE, "public != false")[0] != _key(demo, "posts", BOB, "public != false")[0]


def test_admins_never_share_with_others(demo):
    admin = Principal(ADMIN)
    assert _key(demo, "posts", admin, "public = true")[0] != _key(demo, "posts", ALICE, "public = true")[0]


def test_guarded_fields_make_the_key_personal(demo):
    assert _key(demo, "people", ALICE, fields=("id",))[0] == _key(demo, "people", BOB, fields=("id",))[0]
    assert _key(demo, "people", ALICE, fields=("email",))[0] != _key(demo, "people", BOB, fields=("email",))[0]


def test_relations_add_the_related_table_to_what_invalidates(demo):
    assert _key(demo, "comments", ALICE)[1] == ("comments", "posts")


def test_queries_that_read_the_clock_are_not_cached(demo):
    assert _key(demo, "timed", ALICE)[0] is None
    assert _key(demo, "posts", ALICE, "created < @now")[0] is None


def test_bad_filters_are_refused_before_a_key_is_made(demo):
    # bound once, for the key and the query alike: a bad one never reaches either (the op answers BAD_REQUEST)
    with pytest.raises(FilterError):
        _key(demo, "posts", ALICE, "nope = 1")


def test_implied_is_absorption_only(demo):
    schema, models = demo
    rule = models["posts"].rules["list"]
    table = models["posts"]
    assert implied(bound_filter(table, schema, 'public = true && text = "x"').node, rule)
    assert not implied(bound_filter(table, schema, 'public = true || text = "x"').node, rule)
    assert not implied(None, rule)


async def test_identical_concurrent_misses_make_one_query():
    cache = ReadCache(_always)
    release = asyncio.Event()
    calls = 0

    async def load():
        nonlocal calls
        calls += 1
        await release.wait()
        return {"value": calls}
    readers = [asyncio.ensure_future(cache.read(("k",), ("posts",), load)) for _ in range(50)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*readers)
    assert calls == 1 and all(r == {"value": 1} for r in results)
    assert await cache.read(("k",), ("posts",), load) == {"value": 1}   # served from memory
    assert (cache.loads, cache.hits) == (1, 50)


async def test_a_change_makes_older_answers_unreachable():
    cache = ReadCache(_always)
    version = 1

    async def load():
        return version
    assert await cache.read(("k",), ("posts",), load) == 1
    version = 2
    assert await cache.read(("k",), ("posts",), load) == 1
    cache.invalidate("comments")   # another table: still cached
    assert await cache.read(("k",), ("posts",), load) == 1
    cache.invalidate("posts")
    assert await cache.read(("k",), ("posts",), load) == 2


async def test_an_answer_loaded_across_a_change_is_not_kept():
    cache = ReadCache(_always)
    started, finish = asyncio.Event(), asyncio.Event()
    answers = iter(["stale", "fresh"])

    async def load():
        started.set()
        await finish.wait()
        return next(answers)
    first = asyncio.ensure_future(cache.read(("k",), ("posts",), load))
    await started.wait()
    cache.invalidate("posts")   # the change commits while the first query runs
    finish.set()
    assert await first == "stale"   # that caller asked before the change: fine for it
    assert await cache.read(("k",), ("posts",), load) == "fresh"   # but nobody is served it afterwards


async def test_errors_reach_every_waiter_and_are_not_cached():
    cache = ReadCache(_always)
    release = asyncio.Event()
    calls = 0

    async def load():
        nonlocal calls
        calls += 1
        await release.wait()
        raise LookupError("gone")
    readers = [asyncio.ensure_future(cache.read(("k",), ("t",), load)) for _ in range(3)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*readers, return_exceptions=True)
    assert all(isinstance(r, LookupError) for r in results) and calls == 1
    with pytest.raises(LookupError):
        await cache.read(("k",), ("t",), load)
    assert calls == 2


async def test_nothing_is_served_while_the_feed_is_down():
    connected = True

    async def sync():
        return connected
    cache = ReadCache(sync)
    value = "a"

    async def load():
        return value
    assert await cache.read(("k",), ("t",), load) == "a"
    connected, value = False, "b"
    assert await cache.read(("k",), ("t",), load) == "b"
    connected = True
    cache.flush()   # what the feed's reset does
    assert await cache.read(("k",), ("t",), load) == "b"


async def test_memory_is_bounded_by_the_answers_size():
    cache = ReadCache(_always, max_bytes=10_000)
    loads = 0

    async def big():
        nonlocal loads
        loads += 1
        return {"items": ["x" * 20_000]}
    for _ in range(2):   # larger than the whole cache: served each time, never kept
        assert len((await cache.read(("big",), ("t",), big))["items"][0]) == 20_000
    assert loads == 2 and len(cache.entries) == 0

    async def small():
        return {"items": ["y" * 1_000]}
    for n in range(30):
        await cache.read(("small", n), ("t",), small)
    assert cache.entries.currsize <= 10_000 and 0 < len(cache.entries) < 30
