"""The Python client that reconnects (hapta/reconnect.py), against a real gateway behind a proxy the test cuts: the
app's subscription keeps delivering every change, once, in order, across the cut; a change it cannot be given
comes as Reset; a revoked session is not retried; a live query's items stay what records.list answers, resumed
with what it holds."""
from __future__ import annotations

import asyncio
import secrets
import time

import asyncpg
import pytest

from hapta.client import Client
from hapta.protocol.ops import apply
from hapta.reconnect import Hapta, Reset
from tests.conftest import PASSWORD
from tests.live.realtime.helpers import events_until
from tests.services import Balancer, CuttableProxy, free_port, next_loopback


@pytest.fixture
async def proxied(gateway):
    proxy = await CuttableProxy("127.0.0.1", gateway.port, source=next_loopback()).start()   # a device of its own
    yield proxy, f"ws://127.0.0.1:{proxy.port}/ws"
    await proxy.cut()


class Recording(Hapta):
    """A reconnecting client that keeps every request of its sockets with its answer: what a resume sent."""

    async def _open(self) -> Client:
        client = await super()._open()
        call = client.call
        calls = self.__dict__.setdefault("calls", [])

        async def recorded(op, args=None, **options):
            entry = {"op": op, "args": args}
            calls.append(entry)
            entry["data"] = await call(op, args, **options)
            return entry["data"]
        client.call = recorded
        return client


async def _account(gateway_url: str, cls: type[Hapta] = Hapta, **options) -> tuple[Hapta, dict]:
    hapta = await cls.connect(gateway_url, backoff=(0.05, 0.5), **options)
    name = "c" + secrets.token_hex(5)
    session = await hapta.register(email=f"{name}@example.com", password=PASSWORD, username=name)
    return hapta, session["user"]


async def test_a_subscription_goes_on_across_a_cut_socket(gateway, proxied, database):
    proxy, url = proxied
    reader, _ = await _account(url)
    writer, alice = await _account(gateway.url, local_addr=(next_loopback(), 0))
    states: list[str] = []
    reader.on_state.append(states.append)
    tag = "cut" + secrets.token_hex(4)
    feed = await reader.subscribe("posts", filter=f'text ~ "{tag}"')
    made = [(await writer.call("records.create", {"collection": "posts", "data": {
        "author": alice["id"], "text": f"{tag} {i}", "public": True}}))["id"] for i in range(3)]
    got = [(await feed.next(10))["record"]["id"] for _ in range(3)]

    await proxy.cut()   # the socket dies; nothing can reach the reader for a while
    sql = await asyncpg.connect(database)
    try:
        for i in range(3, 10):
            made.append(await sql.fetchval("INSERT INTO posts (author, text, public) VALUES ($1, $2, true) "
                                           "RETURNING id", alice["id"], f"{tag} {i}"))
    finally:
        await sql.close()
    await proxy.start()
    got += [(await feed.next(30))["record"]["id"] for _ in range(7)]
    assert got == made
    assert states == ["reconnecting", "open"] and reader.reconnects == 1
    # it is signed in again as itself
    assert (await reader.call("auth.me"))["user"]["id"] != alice["id"]
    assert feed.queue.empty()
    await reader.close()
    await writer.close()


async def test_events_that_share_a_position_are_each_delivered_once_across_a_cut(gateway, proxied):
    """A post turned private: its two comments leave the reader's view in two events at the post's change's
    position. Both reach the app; after a cut, the resume from that position sends them again, and the client
    passes neither on twice."""
    proxy, url = proxied
    reader, _ = await _account(url)
    writer, alice = await _account(gateway.url, local_addr=(next_loopback(), 0))
    post = await writer.call("records.create", {"collection": "posts", "data": {
        "author": alice["id"], "text": "two comments", "public": True}})
    feed = await reader.subscribe("comments", filter=f'post = "{post["id"]}"')
    made = {(await writer.call("records.create", {"collection": "comments", "data": {
        "post": post["id"], "author": alice["id"], "text": f"comment {i}"}}))["id"] for i in range(2)}
    assert {(await feed.next(10))["record"]["id"] for _ in range(2)} == made

    await writer.call("records.update", {"collection": "posts", "id": post["id"], "data": {"public": False}})
    hidden = [await feed.next(10) for _ in range(2)]
    assert {(c["action"], c["record"]["id"]) for c in hidden} == {("delete", i) for i in made}
    assert hidden[0]["pos"] == hidden[1]["pos"] == feed.pos

    await proxy.cut()
    await proxy.start()
    deadline = time.monotonic() + 30
    while reader.reconnects < 1:   # the socket is back and the subscription resumed
        assert time.monotonic() < deadline, "the client did not reconnect"
        await asyncio.sleep(0.05)
    await writer.call("records.update", {"collection": "posts", "id": post["id"], "data": {"public": True}})
    shown = [await feed.next(10) for _ in range(2)]
    assert {(c["action"], c["record"]["id"]) for c in shown} == {("create", i) for i in made}
    assert feed.queue.empty()
    await reader.close()
    await writer.close()


async def test_a_change_that_cannot_be_replayed_comes_as_reset(gateway, proxied):
    proxy, url = proxied
    reader, _ = await _account(url)
    feed = await reader.subscribe("posts")
    await proxy.cut()
    feed.pos = 10 ** 15   # a position the gateway never handed out: it can only say "refetch"
    await proxy.start()
    with pytest.raises(Reset):
        await feed.next(30)
    writer, alice = await _account(gateway.url, local_addr=(next_loopback(), 0))
    post = await writer.call("records.create", {"collection": "posts", "data": {"author": alice["id"],
                                                                                "text": "after a reset",
                                                                                "public": True}})
    while (change := await feed.next(10))["record"]["id"] != post["id"]:
        pass   # other tests' writes may come first; this one comes, live
    assert change["action"] == "create"
    await reader.close()
    await writer.close()


async def test_a_revoked_session_is_not_retried(gateway, proxied):
    _, url = proxied
    name = "c" + secrets.token_hex(5)
    reader = await Hapta.connect(url, backoff=(0.05, 0.5))
    await reader.register(email=f"{name}@example.com", password=PASSWORD, username=name)
    states: list[str] = []
    reader.on_state.append(states.append)
    feed = await reader.subscribe("posts")
    other = await Hapta.connect(gateway.url, local_addr=(next_loopback(), 0))   # the same user on another device ends this session
    await other.login(f"{name}@example.com", PASSWORD)
    [mine] = [s for s in (await other.call("auth.sessions"))["items"] if not s["current"]]
    await other.call("auth.revoke", {"session": mine["id"]})
    with pytest.raises(ConnectionError):
        await feed.next(10)
    assert states == ["closed"] and reader.reconnects == 0
    with pytest.raises(ConnectionError):
        await reader.call("ping")
    await reader.close()
    await other.close()


async def test_a_handshake_cut_by_a_balancer_is_tried_again(gateway):
    """Behind a balancer that still sends every other connection to a dead node, a reconnect's handshake gets no
    HTTP answer at all (the balancer accepts, then drops it): that is one more try, not the end of reconnecting."""
    front = await Balancer([("127.0.0.1", gateway.port), ("127.0.0.1", free_port())]).start()   # the second: dead
    try:
        hapta = await Hapta.connect(front.url, backoff=(0.05, 0.2), local_addr=(next_loopback(), 0))
        assert front.routed == [0]
        hapta.client.ws.transport.abort()   # the socket drops; the next connection goes to the dead node
        deadline = time.monotonic() + 15
        while hapta.reconnects == 0:
            assert hapta.failure is None and time.monotonic() < deadline, hapta.failure
            await asyncio.sleep(0.02)
        assert front.routed[:3] == [0, 1, 0]
        assert (await hapta.call("ping"))["time"]
        await hapta.close()
    finally:
        await front.close()


async def test_channel_members_stay_right_across_a_cut_socket(gateway, proxied):
    proxy, url = proxied
    room = f"room:{secrets.token_hex(4)}"
    carol, carol_user = await _account(url)
    goes, _ = await _account(gateway.url, local_addr=(next_loopback(), 0))
    watcher = await Client.connect(gateway.url, local_addr=(next_loopback(), 0))
    name = "w" + secrets.token_hex(5)
    watched = await watcher.call("auth.register", {"email": f"{name}@example.com", "password": PASSWORD,
                                                   "username": name})
    first = await goes.join(room)
    await carol.join(room)
    assert {m["user"] for m in carol.members(room)} == {carol_user["id"], goes.members(room)[0]["user"]}
    await watcher.call("channels.join", {"channel": room})
    rejoined: list[dict] = []
    carol.on_event.append(lambda e: rejoined.append(e) if e["event"] == "channels.rejoined" else None)
    await proxy.cut()
    await goes.close()                     # leaves while carol is away
    await events_until(watcher, lambda e: e["event"] == "channels.presence" and e["data"]["action"] == "leave")
    comes, comes_user = await _account(gateway.url, local_addr=(next_loopback(), 0))
    await comes.join(room)                 # and another joins
    await proxy.start()
    while not rejoined:
        await carol.call("ping")           # waits for the socket to be back
    assert "members" not in rejoined[0]["data"]   # told only the difference
    assert first["member"] in [m["id"] for m in rejoined[0]["data"]["left"]]
    assert {m["user"] for m in carol.members(room)} == {carol_user["id"], comes_user["id"],
                                                     watched["user"]["id"]}
    await carol.close()
    await comes.close()
    await watcher.close()


async def test_channel_members_carry_the_declared_profile(gateway):
    """In a channel whose pattern names presence fields (tests/app: "profiles:*" carries username, email and
    created), `members()` holds each member with its profile as this reader may see it: from the join answer and
    from a later join event alike; the guarded email is its owner's alone."""
    channel = f"profiles:{secrets.token_hex(4)}"
    carol, carol_user = await _account(gateway.url, local_addr=(next_loopback(), 0))
    dave, dave_user = await _account(gateway.url, local_addr=(next_loopback(), 0))
    heard = asyncio.Event()
    carol.on_event.append(lambda e: heard.set() if e["event"] == "channels.presence" else None)
    try:
        await carol.join(channel)
        [own] = carol.members(channel)
        assert set(own) == {"id", "user", "role", "profile"} and set(own["profile"]) == {"username", "email", "created"}
        assert own["profile"]["username"] == carol_user["username"] and own["profile"]["email"] == carol_user["email"]
        await dave.join(channel)
        await asyncio.wait_for(heard.wait(), 10)
        shown = {m["user"]: m["profile"] for m in carol.members(channel)}
        assert shown[dave_user["id"]]["username"] == dave_user["username"]
        assert shown[dave_user["id"]]["email"] is None and shown[dave_user["id"]]["created"]
        assert {m["user"]: m["profile"]["email"] for m in dave.members(channel)} == \
            {carol_user["id"]: None, dave_user["id"]: dave_user["email"]}
    finally:
        await carol.close()
        await dave.close()


async def _live_feed(reader: Hapta, writer: Hapta, author: dict, limit: int):
    """`limit` + 2 posts of `author` tagged alike, and `reader` holding the newest `limit` of them live; every
    (items, ops) it heard, and how records.list answers the same now."""
    tag = "lq" + secrets.token_hex(4)
    made = [await writer.records("posts").create({"author": author["id"], "text": f"{tag} {n}", "public": True})
            for n in range(limit + 2)]
    heard: list[tuple[list, list]] = []
    query = {"filter": f'text ~ "{tag}"', "sort": "-created"}
    live = await reader.records("posts").query(limit=limit, on_change=lambda items, ops: heard.append(
        (list(items), ops)), **query)

    async def listed() -> list[dict]:
        return (await reader.records("posts").list(per_page=limit, **query))["items"]
    return tag, made, live, heard, listed


def _heard_in_order(heard: list[tuple[list, list]]) -> None:
    """Each time the items changed, the ops heard turned the items before into the items after."""
    before: list = []
    for items, ops in heard:
        assert apply(before, ops) == items
        before = items


async def test_a_live_query_is_kept_as_records_list_answers_it_across_a_cut_socket(gateway, proxied):
    proxy, url = proxied
    reader, _ = await _account(url, Recording)
    writer, alice = await _account(gateway.url, local_addr=(next_loopback(), 0))
    posts = writer.records("posts")
    tag, made, live, heard, listed = await _live_feed(reader, writer, alice, 4)
    assert live.items == await listed()
    assert [p["id"] for p in live.items] == [p["id"] for p in made[:1:-1]]
    assert len(heard) == 1   # once at the start

    await posts.delete(made[5]["id"])
    newest = await posts.create({"author": alice["id"], "text": f"{tag} newest", "public": True})
    await posts.update(made[3]["id"], {"text": f"{tag} edited"})
    wanted = await listed()
    await live.wait_for(lambda items: items == wanted, 10)

    held = [[p["id"], p["version"]] for p in live.items]
    asked = len(reader.calls)
    await proxy.cut()   # the socket dies; nothing reaches the reader until the proxy is back
    gone = await posts.delete(made[4]["id"])
    edited = await posts.update(made[3]["id"], {"text": f"{tag} edited again"})
    later = await posts.create({"author": alice["id"], "text": f"{tag} while away", "public": True})
    await proxy.start()
    await reader.call("ping")   # waits for the socket, restored
    assert reader.reconnects == 1
    wanted = await listed()
    await live.wait_for(lambda items: items == wanted, 10)
    assert [p["id"] for p in wanted] == [later["id"], newest["id"], made[3]["id"], made[2]["id"]]
    assert gone["id"] not in [p["id"] for p in live.items] and live.items[2] == edited
    [resume] = [c for c in reader.calls[asked:] if c["op"] == "realtime.query"]
    assert resume["args"]["have"] == held
    assert "items" not in resume["data"]   # only what changed meanwhile came
    assert sorted(op["record"]["id"] for op in resume["data"]["ops"] if "record" in op) == sorted(
        [later["id"], edited["id"]])

    last = await posts.create({"author": alice["id"], "text": f"{tag} after", "public": True})
    await live.wait_for(lambda items: items and items[0]["id"] == last["id"], 10)   # and on it goes, live
    assert live.items == await listed()
    _heard_in_order(heard)
    await live.close()
    await reader.close()
    await writer.close()


async def test_a_reset_of_a_live_query_asks_again_with_what_it_holds(gateway, proxied):
    _, url = proxied
    reader, _ = await _account(url, Recording)
    writer, alice = await _account(gateway.url, local_addr=(next_loopback(), 0))
    tag, made, live, heard, listed = await _live_feed(reader, writer, alice, 3)
    held = [[p["id"], p["version"]] for p in live.items]
    old = live.sub
    asked = len(reader.calls)
    # What the gateway sends when it could not keep the query (a read that failed), as it would arrive
    reset = {"event": "realtime.reset", "sub": old, "data": {"subs": [old], "channels": []}}
    reader.client._events.put_nowait(reset)
    def answered(op: str) -> list[dict]:
        return [c for c in reader.calls[asked:] if c["op"] == op and "data" in c]
    while not (answered("realtime.query") and answered("realtime.unsubscribe")):
        await reader.call("ping")   # the reset is read, and the query asked again, in turn with these
    again = reader.calls[asked:]
    assert live.sub not in (None, old)
    assert {"op": "realtime.unsubscribe", "args": {"sub": old}, "data": {}} in again
    [query] = [c for c in again if c["op"] == "realtime.query"]
    assert query["args"]["have"] == held and query["data"]["ops"] == []
    newest = await writer.records("posts").create({"author": alice["id"], "text": f"{tag} new", "public": True})
    await live.wait_for(lambda items: items and items[0]["id"] == newest["id"], 10)
    assert live.items == await listed()
    _heard_in_order(heard)
    await reader.close()
    await writer.close()
