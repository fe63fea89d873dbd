"""records.batch's `publish`: channel messages that go out only if the batch commits, after its record changes, to
the channel's members on every gateway process (two `hapta serve` processes on one database, real sockets).

An absence is proved with a marker (helpers.py): after the batch that must publish nothing, the publisher sends a
plain channels.publish, and the first message the listener hears must be that one."""
from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import asyncpg
import pytest

from hapta.client import Client, HaptaError
from tests.conftest import PASSWORD, gateway_env
from tests.live.realtime.helpers import change_of, events_until
from tests.services import GatewayProcess, cuttable_database

Event = dict[str, Any]


def _message(event: Event) -> bool:
    return event.get("event") == "channels.message"


async def _in_room(made: tuple[Client, dict[str, Any]], room: str) -> tuple[Client, str, str]:
    """A user's client (as the `user` fixture makes it) in `room`: (client, user id, member id)."""
    client, session = made
    member = (await client.call("channels.join", {"channel": room}))["member"]
    return client, session["user"]["id"], member


def _post(author: str, text: str, public: bool = True) -> dict[str, Any]:
    return {"op": "create", "collection": "posts", "data": {"author": author, "text": text, "public": public}}


async def _refused(client: Client, args: dict[str, Any]) -> HaptaError:
    with pytest.raises(HaptaError) as refused:
        await client.call("records.batch", args)
    return refused.value


async def _marker_is_next(publisher: Client, listener: Client, room: str) -> None:
    """Nothing was published to `listener` before now: the next message it hears is a marker sent now."""
    marker = secrets.token_hex(4)
    await publisher.call("channels.publish", {"channel": room, "data": {"marker": marker}})
    [message] = [e for e in await events_until(listener, _message) if _message(e)]
    assert message["data"]["data"] == {"marker": marker}, message


async def _count(admin: Client, text: str) -> int:
    page = await admin.call("records.list", {"collection": "posts", "filter": f'text = "{text}"', "count": True})
    return page["total"]


async def test_a_committed_batch_publishes_after_its_changes(user, database):
    room = f"room:{secrets.token_hex(4)}"
    alice, _, _ = await _in_room(await user(), room)
    bob, bob_id, bob_member = await _in_room(await user(), room)
    await alice.call("realtime.subscribe", {"collection": "posts"})
    text = f"batch {secrets.token_hex(4)}"
    answer = await bob.call("records.batch", {
        "ops": [_post(bob_id, text), _post(bob_id, f"{text} too")],
        "publish": [{"channel": room, "data": {"posted": 1}}, {"channel": room, "data": {"posted": 2}}]})
    first, second = (result["id"] for result in answer["results"])

    events = await events_until(alice, lambda e: _message(e) and e["data"]["data"] == {"posted": 2})
    kinds = [(e["event"], e["data"].get("record", {}).get("id")) for e in events
             if e["event"] == "channels.message" or change_of(first)(e) or change_of(second)(e)]
    assert kinds == [("records.change", first), ("records.change", second),
                     ("channels.message", None), ("channels.message", None)]
    changes = [e for e in events if change_of(first)(e) or change_of(second)(e)]
    assert changes[0]["data"]["pos"] < changes[1]["data"]["pos"]
    # the same event a channels.publish makes, from the member that sent the batch
    messages = [e for e in events if _message(e)]
    assert [m["data"] for m in messages] == [
        {"channel": room, "data": {"posted": n}, "from": {"id": bob_member, "user": bob_id, "role": "user"}}
        for n in (1, 2)]

    # in the change log: the messages hold the positions right after the batch's own changes, in the order given
    conn = await asyncpg.connect(database)
    try:
        rows = await conn.fetch("SELECT pos, t, change->>'id' AS id FROM hapta.change_log WHERE change->>'x' = "
                                "(SELECT change->>'x' FROM hapta.change_log WHERE t = 'posts' AND change->>'id' = $1) "
                                "ORDER BY pos", first)
    finally:
        await conn.close()
    assert [(row["t"], row["id"]) for row in rows] == [("posts", first), ("posts", second),
                                                       ("hapta.channels", None), ("hapta.channels", None)]
    assert changes[-1]["data"]["pos"] == rows[1]["pos"]
    assert [row["pos"] for row in rows] == list(range(rows[0]["pos"], rows[0]["pos"] + 4))

    # the sender hears its own messages no more than it would from channels.publish
    await _marker_is_next(alice, bob, room)


async def test_a_refused_batch_publishes_nothing(user, admin):
    room = f"room:{secrets.token_hex(4)}"
    alice, alice_id, _ = await _in_room(await user(), room)
    bob, bob_id, _ = await _in_room(await user(), room)
    text = f"refused {secrets.token_hex(4)}"
    # the second op is refused by the rules (a post as someone else): the first is undone, nothing is published
    error = await _refused(bob, {"ops": [_post(bob_id, text), _post(alice_id, text)],
                                 "publish": [{"channel": room, "data": "never"}]})
    assert (error.code, error.details) == ("FORBIDDEN", {"index": 1})
    # a hook's refusal (the demo refuses blank text) likewise
    error = await _refused(bob, {"ops": [_post(bob_id, text), _post(bob_id, "   ")],
                                 "publish": [{"channel": room, "data": "never"}]})
    assert (error.code, error.details["index"]) == ("RULE_DENIED", 1)
    assert await _count(admin, text) == 0
    await _marker_is_next(bob, alice, room)


async def test_a_replayed_idempotent_batch_publishes_nothing_again(user):
    room = f"room:{secrets.token_hex(4)}"
    alice, _, _ = await _in_room(await user(), room)
    bob, bob_id, _ = await _in_room(await user(), room)
    args = {"ops": [_post(bob_id, f"once {secrets.token_hex(4)}")], "idempotency_key": secrets.token_hex(8),
            "publish": [{"channel": room, "data": "once"}]}
    answer = await bob.call("records.batch", args)
    [message] = [e for e in await events_until(alice, _message) if _message(e)]
    assert message["data"]["data"] == "once"
    assert await bob.call("records.batch", args) == answer    # the stored answer; nothing runs
    await _marker_is_next(bob, alice, room)
    # the same key with other messages is another request
    error = await _refused(bob, {**args, "publish": [{"channel": room, "data": "twice"}]})
    assert (error.code, error.details) == ("CONFLICT", {"field": "idempotency_key"})


async def test_a_refused_publish_refuses_the_whole_batch_before_anything_is_written(user, admin):
    room = f"room:{secrets.token_hex(4)}"
    alice, alice_id, _ = await _in_room(await user(), room)
    bob, bob_id, _ = await _in_room(await user(), room)
    text = f"unsent {secrets.token_hex(4)}"
    ok = {"channel": room, "data": "fine"}

    def batch(*publish: dict[str, Any]) -> dict[str, Any]:
        return {"ops": [_post(bob_id, text)], "publish": [ok, *publish]}

    # a channel bob may not join (alice's own: "user:*" is "part1 = @user.id"), and one he has not joined
    error = await _refused(bob, batch({"channel": f"user:{alice_id}", "data": "hi"}))
    assert (error.code, error.details) == ("FORBIDDEN", {"publish": 1})
    assert error.message == f"publish 1 (to user:{alice_id}) failed: join user:{alice_id} before publishing to it"
    error = await _refused(bob, batch({"channel": "room:elsewhere", "data": "hi"}))
    assert (error.code, error.details) == ("FORBIDDEN", {"publish": 1})
    # what channels.publish refuses, refused alike, naming the entry
    too_big = "x" * 8000
    plain = await _refused_publish(bob, room, too_big)
    error = await _refused(bob, batch({"channel": room, "data": too_big}))
    assert (error.code, error.details) == (plain.code, {"publish": 1}) == ("TOO_LARGE", {"publish": 1})
    assert error.message == f"publish 1 (to {room}) failed: {plain.message}"
    deep: Any = "deep"
    for _ in range(70):
        deep = [deep]
    error = await _refused(bob, batch({"channel": room, "data": deep}))
    assert (error.code, error.details) == ("BAD_REQUEST", {"publish": 1})
    error = await _refused(bob, batch({"channel": "no spaces", "data": 1}))
    assert (error.code, error.details) == ("BAD_REQUEST", {"publish": 1})
    error = await _refused(bob, {"ops": [_post(bob_id, text)], "publish": [ok] * 17})
    assert (error.code, error.details) == ("BAD_REQUEST", {"field": "publish", "max": 16})
    assert await _count(admin, text) == 0
    await _marker_is_next(bob, alice, room)


async def _refused_publish(client: Client, room: str, data: Any) -> HaptaError:
    with pytest.raises(HaptaError) as refused:
        await client.call("channels.publish", {"channel": room, "data": data})
    return refused.value


async def test_each_message_counts_against_the_publish_limit(user, admin):
    """channels.publish allows 40 at once (20 a second): a batch is no way around it."""
    room = f"room:{secrets.token_hex(4)}"
    alice, _, _ = await _in_room(await user(), room)
    bob, bob_id, _ = await _in_room(await user(), room)
    text = f"limited {secrets.token_hex(4)}"
    sent = 0
    for _ in range(4):
        try:
            await bob.call("records.batch", {"ops": [_post(bob_id, text)],
                                             "publish": [{"channel": room, "data": sent + n} for n in range(16)]})
        except HaptaError as error:
            assert error.code == "RATE_LIMITED" and error.details["key"] == "channels.publish", error
            assert 0 <= error.details["publish"] < 16 and error.retry_after > 0
            assert error.message.startswith(f"publish {error.details['publish']} (to {room}) failed: rate limit")
            break
        sent += 16
    else:
        raise AssertionError("64 messages in a moment were not limited")
    assert sent == 32
    heard = [e["data"]["data"] for e in await events_until(alice, lambda e: _message(e) and e["data"]["data"] == 31)
             if _message(e)]
    assert heard == list(range(32))
    assert await _count(admin, text) == 2   # the refused batch wrote nothing


async def test_a_member_on_the_other_process_hears_it_after_the_changes(user, gateway, second_gateway, open_client):
    room = f"room:{secrets.token_hex(4)}"

    elsewhere = await open_client(second_gateway)
    name = "x" + secrets.token_hex(5)
    session = await elsewhere.call("auth.register", {"email": f"{name}@example.com", "password": PASSWORD})
    alice, _, _ = await _in_room((elsewhere, session), room)
    bob, bob_id, bob_member = await _in_room(await user(), room)
    await alice.call("realtime.subscribe", {"collection": "posts"})
    answer = await bob.call("records.batch", {"ops": [_post(bob_id, f"far {secrets.token_hex(4)}")],
                                              "publish": [{"channel": room, "data": {"far": True}}]})
    created = answer["results"][0]["id"]
    events = await events_until(alice, _message)
    assert any(change_of(created, "create")(e) for e in events[:-1]), events
    assert events[-1]["data"] == {"channel": room, "data": {"far": True},
                                  "from": {"id": bob_member, "user": bob_id, "role": "user"}}


async def test_a_process_with_members_and_no_subscriptions_reads_the_messages(user, second_gateway, open_client):
    """A process that holds channel members but no realtime subscription reads no change log for ordinary writes;
    a message doorbell makes it read on until it has told that transaction's messages."""
    room = f"room:{secrets.token_hex(4)}"
    elsewhere = await open_client(second_gateway)
    name = "x" + secrets.token_hex(5)
    session = await elsewhere.call("auth.register", {"email": f"{name}@example.com", "password": PASSWORD})
    alice, _, _ = await _in_room((elsewhere, session), room)
    bob, bob_id, _ = await _in_room(await user(), room)
    for n in range(3):
        await bob.call("records.batch", {"ops": [_post(bob_id, f"quiet {n} {secrets.token_hex(4)}")],
                                         "publish": [{"channel": room, "data": n}]})
    heard = [e["data"]["data"] for e in await events_until(alice, lambda e: _message(e) and e["data"]["data"] == 2)
             if _message(e)]
    assert heard == [0, 1, 2]


async def test_messages_committed_while_the_listener_was_away_are_told_after_it_is_back(database):
    """The doorbell of a message committed while the gateway's connections were cut is never heard: once back,
    the gateway asks the database which messages wait (ChangeFeed._recount), and tells them."""
    proxy, dsn = await cuttable_database(database)
    process = GatewayProcess(gateway_env(dsn))
    await asyncio.to_thread(process.start)   # the proxy lives on this loop: do not block it
    sql = await asyncpg.connect(database)    # the test's own way in, around the proxy
    try:
        async with await Client.connect(process.url) as client:
            name = "o" + secrets.token_hex(5)
            await client.call("auth.register", {"email": f"{name}@example.com", "password": PASSWORD})
            room = f"room:{name}"
            await client.call("channels.join", {"channel": room})
            await proxy.cut()
            # what a committed batch's transaction writes (hapta.publish_messages), from the server
            notice = json.dumps({"k": "msg", "c": room, "m": "server", "u": None, "r": "server", "d": "during"})
            async with sql.transaction():
                await sql.execute("SELECT hapta.publish_messages($1::text[])", [notice])
            await proxy.start()
            events = await events_until(client, _message, timeout=30)
            assert events[-1]["data"] == {"channel": room, "data": "during",
                                          "from": {"id": "server", "user": None, "role": "server"}}
            assert all(e["event"] in ("channels.message", "realtime.reset") for e in events), events
    finally:
        await sql.close()
        await asyncio.to_thread(process.stop)   # the proxy must keep serving while the gateway shuts down
        await proxy.cut()
    assert "Traceback" not in process.log_text(), process.log_text()
