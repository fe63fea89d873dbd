"""bench/livequery.py without servers: the client-side window an app keeps from records.change events (checked
against the result it stands for, through random writes), the writes' workload, a client's refetch while events
keep coming, and the table."""
from __future__ import annotations

import argparse
import asyncio
import json
import random

from bench.livequery import ClientWindow, Reader, Workload, key, latencies, summary


def first(table: dict[str, dict], limit: int) -> list[dict]:
    return sorted(table.values(), key=key)[:limit]


def record(record_id: str, likes: int, version: int = 1) -> dict:
    return {"id": record_id, "likes": likes, "version": version}


def test_the_client_window_takes_what_enters_and_asks_again_when_a_record_leaves():
    window = ClientWindow(3)
    window.fill([record("a", 90), record("b", 80), record("c", 70)], complete=False)
    assert window.apply("create", record("d", 85)) == "changed"
    assert window.ids() == ["a", "d", "b"]                           # c pushed past the limit
    assert window.apply("create", record("e", 10)) is None          # past the last one: not shown
    assert window.apply("update", record("d", 95, 2)) == "changed"  # moved within
    assert window.ids() == ["d", "a", "b"]
    assert window.apply("update", record("d", 94, 1)) is None       # older than what it holds
    assert window.apply("update", record("b", 5, 2)) == "short"     # fell past the last: what comes next?
    assert window.apply("delete", {"id": "zz"}) is None             # never held
    window.fill([record("a", 90), record("d", 95, 2)], complete=True)   # the whole result
    assert window.apply("delete", {"id": "a"}) == "changed"
    assert window.apply("create", record("f", 1)) == "changed" and window.ids() == ["d", "f"]


def test_the_client_window_with_refetches_is_always_the_first_page():
    rng = random.Random(7)
    limit = 5
    table = {f"r{n}": record(f"r{n}", rng.randrange(50)) for n in range(12)}
    window = ClientWindow(limit)
    window.fill(first(table, limit), complete=len(table) <= limit)
    refetches = 0
    for step in range(2000):
        choice = rng.random()
        if choice < 0.3 or not table:
            new = record(f"n{step}", rng.randrange(50))
            table[new["id"]] = new
            event = ("create", new)
        elif choice < 0.7:
            old = table[rng.choice(sorted(table))]
            new = table[old["id"]] = record(old["id"], rng.randrange(50), old["version"] + 1)
            event = ("update", new)
        else:
            gone = table.pop(rng.choice(sorted(table)))
            event = ("delete", {"id": gone["id"]})
        if window.apply(*event) == "short":
            refetches += 1
            page = first(table, limit + 1)
            window.fill(page[:limit], complete=len(page) <= limit)
        assert window.ids() == [r["id"] for r in first(table, limit)], step
    assert 0 < refetches < 2000


def test_the_workload_writes_every_kind_and_knows_every_posts_author():
    rng = random.Random(3)
    authors = ["a0", "a1", "a2"]
    posts = {n: [f"p{n}-{i}" for i in range(4)] for n in range(3)}
    owner = {post: n for n, ids in posts.items() for post in ids}
    workload = Workload(authors, posts, rng)
    made = 0
    kinds: dict[str, int] = {}
    for _ in range(400):
        write = workload.next()
        kinds[write.kind] = kinds.get(write.kind, 0) + 1
        if write.kind == "create":
            assert write.args[0] == authors[write.source] and write.sql.startswith("INSERT")
            made += 1
            post = f"new{made}"
            owner[post] = write.source
        else:
            post = write.args[0]
            assert owner[post] == write.source   # a post of the author it chose
            if write.kind == "filter":
                assert write.target != write.source and write.args[1] == authors[write.target]
                owner[post] = write.target
            elif write.kind == "delete":
                del owner[post]
        assert "pg_current_xact_id()" in write.sql
        workload.done(write, post)
    assert set(kinds) == {"create", "sort", "filter", "delete"}
    assert {p: n for n, ids in posts.items() for p in ids} == owner


class Transport:
    def __init__(self):
        self.sent: list[dict] = []

    def write(self, data: bytes) -> None:
        self.sent.append(json.loads(data[8:] if data[1] & 0x7F == 126 else data[6:]))


async def reader(mode: str, limit: int = 2) -> Reader:
    client = Reader(1, "token", mode, 'author = "a"', limit, asyncio.get_running_loop().create_future())
    client.transport = Transport()
    client.upgraded = True
    return client


async def test_a_subscriber_asks_for_the_page_again_and_applies_what_came_meanwhile():
    client = await reader("subscribe")
    client.message({"id": 1, "ok": True, "data": {}}, 0.0)
    assert client.transport.sent[-1]["op"] == "realtime.subscribe"
    client.message({"id": 2, "ok": True, "data": {"sub": "s1", "pos": 1, "items": [record("a", 9), record("b", 8)],
                                                   "next": "x"}}, 0.0)
    change = lambda pos, action, rec: {"event": "records.change", "sub": "s1",  # noqa: E731
                                       "data": {"pos": pos, "action": action, "record": rec}}
    client.message(change(2, "create", record("c", 10)), 1.0)
    assert client.window.ids() == ["c", "a"] and client.stamps == [(2, 1.0)]
    client.message(change(3, "delete", {"id": "a"}), 2.0)            # left: which is second now?
    asked = client.transport.sent[-1]
    assert asked["op"] == "records.list" and asked["args"]["per_page"] == 2 and client.refetches == 1
    client.message(change(4, "update", record("c", 11, 2)), 2.5)     # meanwhile
    client.message(change(5, "create", record("d", 9)), 2.6)         # meanwhile, and on the page already
    client.message(change(6, "create", record("e", 1)), 2.7)         # meanwhile, past the window: not shown
    client.message({"id": asked["id"], "ok": True, "data": {"items": [record("c", 10), record("d", 9)],
                                                            "next": "y"}}, 3.0)
    assert client.window.ids() == ["c", "d"] and client.window.records[0]["version"] == 2
    assert sorted(client.stamps) == [(2, 1.0), (3, 3.0), (4, 3.0), (5, 3.0)]
    # events the page showed before they came (the feed lags behind the page's read): shown when the page came
    client.message(change(8, "update", record("d", 9, 1)), 4.0)      # d at the version the page has
    client.message(change(9, "update", record("zz", 1, 1)), 4.0)     # never on a page, past the window
    assert sorted(client.stamps)[-1] == (8, 3.0) and len(client.stamps) == 5
    assert client.events == 7 and client.refetches == 1
    client.paged["gone"] = (None, 3.5)                                # left the window at a page
    assert client.paged_at({"action": "delete", "record": {"id": "gone"}}) == 3.5
    assert client.paged_at({"action": "update", "record": record("gone", 1, 7)}) is None
    assert client.paged_at({"action": "update", "record": record("d", 9, 2)}) is None   # newer than the page


async def test_a_live_query_applies_its_diffs():
    client = await reader("query")
    client.message({"id": 1, "ok": True, "data": {}}, 0.0)
    assert client.transport.sent[-1]["op"] == "realtime.query"
    client.message({"id": 2, "ok": True, "data": {"sub": "s1", "pos": 1, "items": [record("a", 9)]}}, 0.0)
    client.message([{"event": "realtime.diff", "sub": "s1",
                     "data": {"pos": 5, "ops": [{"op": "insert", "index": 0, "record": record("b", 10)}]}}][0], 1.0)
    client.message({"event": "records.change", "sub": "s2", "data": {}}, 1.0)   # another subscription's
    assert client.held() == ["b", "a"] and client.stamps == [(5, 1.0)] and client.events == 1


def test_latencies_are_matched_by_position_and_the_table_has_both_rows():
    commits = {"100": 10.0, "101": 11.0}
    xacts = {7: "100", 8: "101"}
    lat, unknown = latencies([{"stamps": [[7, 10.25], [8, 11.5], [3, 9.0]]}], commits, xacts)
    assert lat == [0.25, 0.5] and unknown == 1

    args = argparse.Namespace(queries=10, filters=2, limit=5, rate=20.0, seconds=2.0, modes=["query", "subscribe"],
                              most=60.0, tree=".")
    base = {"queries": 10, "write_rate": 20.0, "changes_per_s": 30.0, "events_per_s": 30.0, "p50_ms": 5.0,
            "p99_ms": 9.0, "drain_s": 1.0, "behind": False, "gateway_us": 100.0, "load_us": 20.0, "reads_per_write": 0.1, "refetches": 0,
            "resets": 0, "right": 10, "clients": 10, "writes": 40, "round": 0,
            "cpu": {"gateway": 0.004, "pool": 0.001, "listener": 0.0001}}
    text = summary([{**base, "mode": "query"}, {**base, "mode": "subscribe", "events_per_s": 90.0}], args)
    lines = text.splitlines()
    assert any(line.startswith("| `realtime.query` (live query) | 20 | 30 | 30 | 5.0 | 9.0 | 1.0 | 100 | 20 | 0.100")
               for line in lines)
    assert any(line.startswith("| `realtime.subscribe` + client-side window | 20 | 30 | 90 |") for line in lines)
    assert any(line.startswith("| query | 20 | 128 | 100 | 25 | 2 |") for line in lines)   # µs per write by role
