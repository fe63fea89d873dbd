"""realtime.query against a real gateway: the items are records.list's first page, and every diff keeps them so,
for writes through the gateway and straight in SQL, for what the rules show each reader, and across a resume."""
from __future__ import annotations

import secrets
import time
from typing import Any

import asyncpg

from hapta.client import Client, HaptaError
from hapta.live.window import apply
from tests.conftest import PASSWORD
from tests.live.realtime.helpers import post

DIFF = "realtime.diff"


class Held:
    """What a client holds of one live query: the items, kept by applying its diffs in order."""

    def __init__(self, client: Client, answer: dict[str, Any]):
        self.client = client
        self.sub = answer["sub"]
        self.pos = answer["pos"]
        self.items = answer["items"]
        self.diffs: list[dict] = []

    async def until(self, wanted: list[dict], timeout: float = 10.0) -> None:
        """Apply diffs until the items are `wanted` (failing if they never are, or a diff's position goes back)."""
        deadline = time.monotonic() + timeout
        while self.items != wanted:
            left = deadline - time.monotonic()
            assert left > 0, f"items {ids(self.items)} never became {ids(wanted)}"
            event = await self.client.next_event(timeout=left)
            if event["event"] != DIFF or event["sub"] != self.sub:
                continue
            assert event["data"]["pos"] > self.pos, event
            self.pos = event["data"]["pos"]
            self.diffs.append(event["data"])
            self.items = apply(self.items, event["data"]["ops"])


def ids(items: list[dict]) -> list[Any]:
    return [item["id"] for item in items]


async def listed(client: Client, **query: Any) -> list[dict]:
    args = {"collection": query.pop("collection", "posts"), "per_page": query.pop("limit"), **query}
    return (await client.call("records.list", args))["items"]


async def test_a_live_query_is_the_first_page_and_its_diffs_keep_it_so(user):
    writer, alice = await user()
    reader, _ = await user()
    tag = "q" + secrets.token_hex(4)
    query = {"filter": f'text ~ "{tag}"', "sort": "-created", "limit": 3}
    made = [await post(writer, alice["user"]["id"], f"{tag} {n}") for n in range(5)]
    answer = await reader.call("realtime.query", {"collection": "posts", **query})
    assert answer["items"] == await listed(reader, **query) == made[:1:-1]
    held = Held(reader, answer)

    await writer.call("records.delete", {"collection": "posts", "id": made[4]["id"]})
    await held.until(await listed(reader, **query))   # the next one enters as the newest leaves
    assert ids(held.items) == [made[3]["id"], made[2]["id"], made[1]["id"]]
    assert held.diffs[-1]["ops"] == [{"op": "delete", "id": made[4]["id"]},
                                     {"op": "insert", "index": 2, "record": made[1]}]

    edited = await writer.call("records.update", {"collection": "posts", "id": made[2]["id"],
                                                  "data": {"text": f"{tag} edited"}})
    await held.until(await listed(reader, **query))
    assert held.diffs[-1]["ops"] == [{"op": "update", "id": edited["id"], "record": edited}]

    await writer.call("records.update", {"collection": "posts", "id": made[3]["id"], "data": {"text": "untagged"}})
    newest = await post(writer, alice["user"]["id"], f"{tag} newest")
    await held.until(await listed(reader, **query))
    assert ids(held.items) == [newest["id"], made[2]["id"], made[1]["id"]]


async def test_a_record_that_moves_in_the_order_is_moved(user):
    writer, alice = await user()
    tag = "m" + secrets.token_hex(4)
    query = {"filter": f'text ~ "{tag}"', "sort": "text", "limit": 4}
    made = [await post(writer, alice["user"]["id"], f"{tag} {letter}") for letter in "bcde"]
    held = Held(writer, await writer.call("realtime.query", {"collection": "posts", **query}))
    assert ids(held.items) == ids(made)
    moved = await writer.call("records.update", {"collection": "posts", "id": made[3]["id"],
                                                 "data": {"text": f"{tag} a"}})
    await held.until(await listed(writer, **query))
    assert held.diffs[-1]["ops"] == [{"op": "move", "id": moved["id"], "index": 0, "record": moved}]


async def test_each_reader_holds_only_what_the_list_rule_shows_them(user):
    writer, alice = await user()
    reader, _ = await user()
    tag = "v" + secrets.token_hex(4)
    query = {"filter": f'text ~ "{tag}"', "sort": "-created", "limit": 5}
    hidden = await post(writer, alice["user"]["id"], f"{tag} private", public=False)
    theirs = Held(reader, await reader.call("realtime.query", {"collection": "posts", **query}))
    own = Held(writer, await writer.call("realtime.query", {"collection": "posts", **query}))
    assert theirs.items == [] and own.items == [hidden]

    shown = await writer.call("records.update", {"collection": "posts", "id": hidden["id"], "data": {"public": True}})
    await theirs.until([shown])
    await own.until([shown])
    await writer.call("records.update", {"collection": "posts", "id": hidden["id"], "data": {"public": False}})
    await theirs.until([])
    assert theirs.diffs[-1]["ops"] == [{"op": "delete", "id": hidden["id"]}]


async def test_sql_writes_outside_the_gateway_reach_live_queries(user, database):
    writer, alice = await user()
    tag = "s" + secrets.token_hex(4)
    query = {"filter": f'text ~ "{tag}"', "sort": "-created", "limit": 2}
    held = Held(writer, await writer.call("realtime.query", {"collection": "posts", **query}))
    conn = await asyncpg.connect(database)
    try:
        for n in range(3):
            await conn.execute("INSERT INTO posts (author, text, public) VALUES ($1, $2, true)",
                               alice["user"]["id"], f"{tag} sql {n}")
        await conn.execute("DELETE FROM posts WHERE text = $1", f"{tag} sql 2")
    finally:
        await conn.close()
    await held.until(await listed(writer, **query))
    assert [item["text"] for item in held.items] == [f"{tag} sql 1", f"{tag} sql 0"]


async def test_a_resume_with_have_sends_only_what_changed(user):
    writer, alice = await user()
    tag = "r" + secrets.token_hex(4)
    query = {"collection": "posts", "filter": f'text ~ "{tag}"', "sort": "-created", "limit": 4}
    made = [await post(writer, alice["user"]["id"], f"{tag} {n}") for n in range(4)]
    first = await writer.call("realtime.query", query)
    held = first["items"]
    await writer.call("realtime.unsubscribe", {"sub": first["sub"]})
    # while away: one deleted, one edited, one new
    await writer.call("records.delete", {"collection": "posts", "id": made[0]["id"]})
    edited = await writer.call("records.update", {"collection": "posts", "id": made[2]["id"],
                                                  "data": {"text": f"{tag} edited"}})
    newest = await post(writer, alice["user"]["id"], f"{tag} new")
    again = await writer.call("realtime.query", {**query, "have": [[r["id"], r["version"]] for r in held]})
    assert "items" not in again and again["pos"] > first["pos"]
    sent = [op.get("record", {}).get("id") for op in again["ops"] if "record" in op]
    assert sorted(sent) == sorted([newest["id"], edited["id"]])   # nothing it already holds as it is
    assert apply(held, again["ops"]) == await listed(writer, **{**query, "collection": "posts"})


async def test_a_live_query_stops_at_unsubscribe(user):
    writer, alice = await user()
    tag = "u" + secrets.token_hex(4)
    held = Held(writer, await writer.call("realtime.query", {"collection": "posts", "filter": f'text ~ "{tag}"',
                                                             "sort": "-created", "limit": 2}))
    await writer.call("realtime.unsubscribe", {"sub": held.sub})
    await post(writer, alice["user"]["id"], f"{tag} after")
    marker = await writer.call("realtime.subscribe", {"collection": "posts", "filter": f'text ~ "{tag}"'})
    last = await post(writer, alice["user"]["id"], f"{tag} marker")
    while True:   # every event up to the marker's: no diff among them
        event = await writer.next_event(timeout=10)
        assert event["event"] != DIFF, event
        if event["event"] == "records.change" and event["data"]["record"]["id"] == last["id"]:
            assert event["sub"] == marker["sub"]
            break


async def test_what_a_live_query_cannot_be_is_refused_precisely(user):
    client, _ = await user()
    base = {"collection": "posts", "sort": "-created", "limit": 10}
    cases = [
        ({"collection": "posts", "limit": 10}, "BAD_REQUEST", "sort"),
        ({**base, "limit": 0}, "BAD_REQUEST", "limit"),
        ({**base, "limit": 501}, "BAD_REQUEST", "limit"),
        ({**base, "sort": "@rank", "filter": 'text @@ "hello"'}, "BAD_REQUEST", "@@"),
        ({**base, "sort": "nothere"}, "BAD_REQUEST", "nothere"),
        ({**base, "fields": ["text"]}, "BAD_REQUEST", "id and version"),
        ({**base, "have": [["a", 1]] * 11}, "BAD_REQUEST", "have"),
        ({**base, "collection": "nothere"}, "NOT_FOUND", "nothere"),
    ]
    for args, code, words in cases:
        try:
            await client.call("realtime.query", args)
        except HaptaError as error:
            assert error.code == code and words in error.message, (args, error)
        else:
            raise AssertionError(f"{args} was accepted")


async def test_a_connection_signed_in_as_someone_else_holds_only_what_they_may_see(user, connect):
    alice_client, alice = await user()
    _, bob = await user()
    tag = "w" + secrets.token_hex(4)
    query = {"filter": f'text ~ "{tag}"', "sort": "-created", "limit": 5}
    secret = await post(alice_client, alice["user"]["id"], f"{tag} alice's own", public=False)
    device = await connect()
    await device.call("auth.login", {"identity": alice["user"]["email"], "password": PASSWORD})
    held = Held(device, await device.call("realtime.query", {"collection": "posts", **query}))
    assert held.items == [secret]
    await device.call("auth.login", {"identity": bob["user"]["email"], "password": PASSWORD})
    shown = await post(alice_client, alice["user"]["id"], f"{tag} public")
    await held.until([shown])   # read again for bob: alice's private post is gone
    assert ids(held.items) == ids(await listed(device, **query))


async def test_a_live_query_expands_its_relations_as_records_list_does(user):
    writer, alice = await user()
    reader, _ = await user()
    tag = "e" + secrets.token_hex(4)
    query = {"filter": f'text ~ "{tag}"', "sort": "-created", "limit": 2, "expand": ["author"]}
    await post(writer, alice["user"]["id"], f"{tag} one")
    held = Held(reader, await reader.call("realtime.query", {"collection": "posts", **query}))
    assert held.items == await listed(reader, **query)
    assert held.items[0]["expand"]["author"]["id"] == alice["user"]["id"]
    await post(writer, alice["user"]["id"], f"{tag} two")
    await held.until(await listed(reader, **query))
    assert all(item["expand"]["author"]["id"] == alice["user"]["id"] for item in held.items)
