"""Realtime that survives a dropped socket (docs/realtime.md, "Positions"), through real sockets: a subscriber that
resumes with `since` gets exactly what it missed and may see, in commit order, once; a transaction that committed
late is not skipped; a snapshot and its live events neither overlap nor leave a gap; a PostgreSQL restart in the
gap costs nothing; a `since` the log no longer reaches gets `realtime.reset`."""
from __future__ import annotations

import asyncio
import json
import secrets
import time

import asyncpg
import pytest
from websockets.asyncio.client import connect as ws_connect

from hapta.client import JSON, Client
from hapta.protocol.errors import HaptaError
from tests.conftest import ADMIN_KEY, PASSWORD, gateway_env
from tests.live.realtime.helpers import change_of, events_until
from tests.services import GatewayProcess, PrivatePostgres, create_database, drop_database, write_app

CHANGE = "records.change"


async def _register(open_client, process) -> tuple[Client, dict]:
    client = await open_client(process)
    name = "r" + secrets.token_hex(5)
    session = await client.call("auth.register", {"email": f"{name}@example.com", "password": PASSWORD,
                                                  "username": name})
    return client, {"id": session["user"]["id"], "email": f"{name}@example.com"}


async def _login(open_client, process, who: dict) -> Client:
    client = await open_client(process)
    await client.call("auth.login", {"identity": who["email"], "password": PASSWORD})
    return client


async def _admin(open_client, process) -> Client:
    client = await open_client(process)
    await client.call("auth.admin", {"key": ADMIN_KEY})
    return client


async def _create(client: Client, author: str, text: str, public: bool = True) -> dict:
    return await client.call("records.create", {"collection": "posts", "data": {
        "author": author, "text": text, "public": public}})


def _changes(events: list[dict], sub: str) -> list[tuple[str, str]]:
    return [(e["data"]["record"]["id"], e["data"]["action"]) for e in events if e["event"] == CHANGE
            and e.get("sub") == sub]


def _rising(events: list[dict]) -> bool:
    positions = [e["data"]["pos"] for e in events if e["event"] == CHANGE]
    return all(a < b for a, b in zip(positions, positions[1:]))


async def test_a_dropped_subscriber_resumes_with_exactly_what_it_may_see(gateway, second_gateway, open_client,
                                                                         database):
    alice_client, alice = await _register(open_client, gateway)
    bob_client, bob = await _register(open_client, gateway)
    tag = "gap" + secrets.token_hex(4)
    watch = {"collection": "posts", "filter": f'text ~ "{tag}"'}
    seen = await _create(alice_client, alice["id"], f"{tag} seen, then private")
    hidden = await _create(alice_client, alice["id"], f"{tag} private, then public", public=False)
    doomed = await _create(alice_client, alice["id"], f"{tag} seen, then deleted")
    await bob_client.call("realtime.subscribe", watch)
    before = await _create(alice_client, alice["id"], f"{tag} the last one bob hears live")
    [heard] = await events_until(bob_client, change_of(before["id"]))
    since = heard["data"]["pos"]
    await bob_client.close()

    # The gap: 1,000 writes, through both gateway processes and straight in SQL, each in its own transaction.
    # What bob must get for each record, in the order of its last change (several changes of one record in the
    # gap come as one event: its first action, as it stands now).
    admins = [await _admin(open_client, gateway), await _admin(open_client, second_gateway)]
    expected: dict[str, str] = {}
    for i in range(400):
        record = await _create(admins[i % 2], alice["id"], f"{tag} gateway {i}", public=i % 3 != 0)
        if record["public"]:
            expected[record["id"]] = "create"
    sql = await asyncpg.connect(database)
    try:
        for i in range(500):
            record_id = await sql.fetchval("INSERT INTO posts (author, text, public) VALUES ($1, $2, $3) RETURNING id",
                                           alice["id"], f"{tag} sql {i}", i % 2 == 0)
            if i % 2 == 0:
                expected[record_id] = "create"
        edited = list(expected)[:97]
        for record_id in edited:   # an edit of a record created in the gap: still one create, now at its edit
            await sql.execute("UPDATE posts SET text = text || ' (edited)' WHERE id = $1", record_id)
            expected[record_id] = expected.pop(record_id)
        await sql.execute("UPDATE posts SET public = false WHERE id = $1", seen["id"])
        expected[seen["id"]] = "delete"       # it left bob's view: a delete with its id alone
        await sql.execute("UPDATE posts SET public = true WHERE id = $1", hidden["id"])
        expected[hidden["id"]] = "update"     # it came into view
        await sql.execute("DELETE FROM posts WHERE id = $1", doomed["id"])
        expected[doomed["id"]] = "delete"
    finally:
        await sql.close()

    again = await _login(open_client, second_gateway, bob)   # on the other process
    resumed = await again.call("realtime.subscribe", {**watch, "since": since})
    assert resumed["pos"] == since
    after = await _create(alice_client, alice["id"], f"{tag} after the resume")
    events = await events_until(again, change_of(after["id"]), timeout=30)
    assert [e["event"] for e in events] == [CHANGE] * len(events)
    assert _changes(events, resumed["sub"]) == [*expected.items(), (after["id"], "create")]
    assert _rising(events) and events[0]["data"]["pos"] > since
    turned_private = next(e for e in events if e["data"]["record"]["id"] == seen["id"])
    assert turned_private["data"]["record"] == {"id": seen["id"]}
    assert "edited" in next(e for e in events if e["data"]["record"]["id"] == edited[0])["data"]["record"]["text"]


async def test_the_reply_comes_before_what_is_replayed(gateway, open_client, database):
    writer, alice = await _register(open_client, gateway)
    reader, bob = await _register(open_client, gateway)
    tag = "order" + secrets.token_hex(4)
    watch = {"collection": "posts", "filter": f'text ~ "{tag}"'}
    since = (await reader.call("realtime.subscribe", watch))["pos"]
    await reader.close()
    made = [await _create(writer, alice["id"], f"{tag} {i}") for i in range(3)]
    async with ws_connect(gateway.url, subprotocols=[JSON]) as ws:
        await ws.send(json.dumps({"id": 1, "op": "auth.login", "args": {"identity": bob["email"],
                                                                        "password": PASSWORD}}))
        assert json.loads(await ws.recv())["ok"]
        await ws.send(json.dumps({"id": 2, "op": "realtime.subscribe", "args": {**watch, "since": since}}))
        messages: list[dict] = []
        while len(messages) < 4:   # one frame may carry several messages (a batch), in order
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            messages += frame if isinstance(frame, list) else [frame]
    assert messages[0]["id"] == 2 and messages[0]["ok"]
    assert [m["data"]["record"]["id"] for m in messages[1:]] == [m["id"] for m in made]


async def test_a_transaction_that_commits_late_is_not_skipped(gateway, open_client, database):
    """Two transactions interleaved by hand: the one that wrote first commits last. A subscriber that saw the
    other's change and then dropped must still get it on resume, and a live one gets it after the other."""
    _, alice = await _register(open_client, gateway)
    stays, bob = await _register(open_client, gateway)
    drops = await _login(open_client, gateway, bob)
    tag = "late" + secrets.token_hex(4)
    watch = {"collection": "posts", "filter": f'text ~ "{tag}"'}
    live_sub = (await stays.call("realtime.subscribe", watch))["sub"]
    await drops.call("realtime.subscribe", watch)
    first, second = await asyncpg.connect(database), await asyncpg.connect(database)
    insert = "INSERT INTO posts (author, text, public) VALUES ($1, $2, true) RETURNING id"
    try:
        slow = first.transaction()
        await slow.start()
        early = await first.fetchval(insert, alice["id"], f"{tag} written first, committed last")
        quick = second.transaction()
        await quick.start()
        later = await second.fetchval(insert, alice["id"], f"{tag} written second, committed first")
        await quick.commit()
        [heard] = await events_until(drops, change_of(later))   # only it: the other has not committed
        await drops.close()
        await slow.commit()
    finally:
        await first.close()
        await second.close()

    events = await events_until(stays, change_of(early))
    assert _changes(events, live_sub) == [(later, "create"), (early, "create")] and _rising(events)
    assert events[-1]["data"]["pos"] > heard["data"]["pos"]

    back = await _login(open_client, gateway, bob)
    resumed = (await back.call("realtime.subscribe", {**watch, "since": heard["data"]["pos"]}))["sub"]
    [event] = await events_until(back, change_of(early))
    assert (event["sub"], event["data"]["action"]) == (resumed, "create")


async def test_a_snapshot_and_its_events_neither_overlap_nor_leave_a_gap(gateway, open_client, database):
    reader, _ = await _register(open_client, gateway)
    _, alice = await _register(open_client, gateway)
    tag = "snap" + secrets.token_hex(4)
    watch = {"collection": "posts", "filter": f'text ~ "{tag}"', "snapshot": True, "per_page": 500,
             "sort": "created"}
    sql = await asyncpg.connect(database)
    made: list[str] = []
    halfway = asyncio.Event()

    async def write() -> None:
        for i in range(300):
            made.append(await sql.fetchval("INSERT INTO posts (author, text, public) VALUES ($1, $2, true) "
                                           "RETURNING id", alice["id"], f"{tag} {i}"))
            if i == 100:
                halfway.set()
    try:
        writing = asyncio.ensure_future(write())
        await halfway.wait()
        snapshot = await reader.call("realtime.subscribe", watch)   # while the writes go on
        await writing
        marker = await sql.fetchval("INSERT INTO posts (author, text, public) VALUES ($1, $2, true) RETURNING id",
                                    alice["id"], f"{tag} marker")
    finally:
        await sql.close()
    events = await events_until(reader, change_of(marker))
    shown = [item["id"] for item in snapshot["items"]]
    heard = [record_id for record_id, _ in _changes(events, snapshot["sub"])][:-1]
    assert 100 < len(shown) < 300 and shown == made[:len(shown)]   # a consistent cut, in commit order
    assert heard == made[len(shown):]                             # then exactly the rest, once each
    assert all(e["data"]["pos"] > snapshot["pos"] for e in events) and _rising(events)


async def test_a_change_committed_but_not_yet_numbered_is_in_the_snapshot_and_not_heard_again(
        gateway, open_client, database):
    """Numbering is held back (its lock taken by the test): a committed change waits in the inbox. The snapshot
    shows it; once it is numbered its event must not come as well."""
    reader, _ = await _register(open_client, gateway)
    _, alice = await _register(open_client, gateway)
    tag = "inbox" + secrets.token_hex(4)
    insert = "INSERT INTO posts (author, text, public) VALUES ($1, $2, true) RETURNING id"
    sql, lock = await asyncpg.connect(database), await asyncpg.connect(database)
    try:
        await lock.execute("SELECT pg_advisory_lock(hashtext('hapta.change_log'))")
        waiting = await sql.fetchval(insert, alice["id"], f"{tag} waiting to be numbered")
        snapshot = await reader.call("realtime.subscribe", {"collection": "posts", "filter": f'text ~ "{tag}"',
                                                            "snapshot": True})
        assert [item["id"] for item in snapshot["items"]] == [waiting]
        await lock.execute("SELECT pg_advisory_unlock(hashtext('hapta.change_log'))")
        marker = await sql.fetchval(insert, alice["id"], f"{tag} marker")
    finally:
        await sql.close()
        await lock.close()
    events = await events_until(reader, change_of(marker))
    assert _changes(events, snapshot["sub"]) == [(marker, "create")]


async def _until_answered(call, attempts: int = 100):
    """What a client does while a server restarts: try again after the retry_after it is given."""
    for _ in range(attempts):
        try:
            return await call()
        except (HaptaError, OSError) as exc:
            if isinstance(exc, HaptaError) and exc.code not in ("UNAVAILABLE", "TIMEOUT"):
                raise
            await asyncio.sleep(getattr(exc, "retry_after", None) or 0.2)
    raise AssertionError("the gateway never answered again")


@pytest.fixture
def private_pg():
    server = PrivatePostgres().start()
    yield server
    server.remove()


async def test_a_postgresql_restart_in_the_gap_loses_nothing(private_pg, open_client):
    process = GatewayProcess(gateway_env(private_pg.dsn))
    await asyncio.to_thread(process.start)
    try:
        reader, bob = await _register(open_client, process)
        writer, alice = await _register(open_client, process)
        tag = "restart" + secrets.token_hex(4)
        watch = {"collection": "posts", "filter": f'text ~ "{tag}"'}
        await reader.call("realtime.subscribe", watch)
        first = await _create(writer, alice["id"], f"{tag} heard live")
        [heard] = await events_until(reader, change_of(first["id"]))
        await reader.close()

        insert = "INSERT INTO posts (author, text, public) VALUES ($1, $2, true) RETURNING id"
        sql = await asyncpg.connect(private_pg.dsn)
        made = [await sql.fetchval(insert, alice["id"], f"{tag} before the restart {i}") for i in range(3)]
        await sql.close()
        await asyncio.to_thread(private_pg.stop)
        await asyncio.to_thread(private_pg.start)
        sql = await asyncpg.connect(private_pg.dsn)
        made += [await sql.fetchval(insert, alice["id"], f"{tag} after the restart {i}") for i in range(3)]
        await sql.close()

        back = await _until_answered(lambda: _login(open_client, process, bob))
        resumed = await _until_answered(lambda: back.call("realtime.subscribe", {**watch,
                                                                                   "since": heard["data"]["pos"]}))
        events = await events_until(back, change_of(made[-1]), timeout=30)
        assert _changes(events, resumed["sub"]) == [(record_id, "create") for record_id in made]
    finally:
        await asyncio.to_thread(process.stop)
    assert "Traceback" not in process.log_text(), process.log_text()


SHORT_LOG = """
    import dataclasses, runpy
    from hapta.config import RealtimeBounds
    app = dataclasses.replace(runpy.run_path(APP + "/config.py")["app"], realtime=RealtimeBounds(log_retention=0.5))
"""


async def test_a_since_the_log_no_longer_reaches_gets_reset(pg_admin, tmp_path_factory, open_client):
    dsn = await create_database(pg_admin)
    process = GatewayProcess(gateway_env(dsn), config=write_app(tmp_path_factory.mktemp("short-log"), SHORT_LOG))
    await asyncio.to_thread(process.start)
    try:
        reader, bob = await _register(open_client, process)
        writer, alice = await _register(open_client, process)
        watch = {"collection": "posts"}
        since = (await reader.call("realtime.subscribe", watch))["pos"]
        await reader.close()
        gone = await _create(writer, alice["id"], "kept half a second")
        sql = await asyncpg.connect(dsn)
        try:
            deadline = time.monotonic() + 20
            while await sql.fetchval("SELECT pruned FROM hapta.change_horizon") <= since:
                assert time.monotonic() < deadline, "the change log was never pruned"
                await asyncio.sleep(0.1)
            head = await sql.fetchval("SELECT greatest(max(pos), (SELECT pruned FROM hapta.change_horizon)) "
                                      "FROM hapta.change_log")
        finally:
            await sql.close()

        back = await _login(open_client, process, bob)
        for asked in (since, head + 1000):   # pruned past it; a position the log never reached
            sub = (await back.call("realtime.subscribe", {**watch, "since": asked}))["sub"]
            reset = await back.next_event()
            assert reset == {"event": "realtime.reset", "sub": sub, "data": {"subs": [sub], "channels": []}}
        after = await _create(writer, alice["id"], "heard live after the reset")
        events = await events_until(back, change_of(after["id"]))
        assert gone["id"] not in [record_id for record_id, _ in _changes(events, sub)]
    finally:
        await asyncio.to_thread(process.stop)
        await drop_database(pg_admin, dsn)
    assert "Traceback" not in process.log_text(), process.log_text()
