"""Live queries against an oracle: random writes by several users (creates, updates, deletes, posts turned private
and public, which hide and show their comments and likes; writes straight in SQL; a gateway restart in the
middle), each reader's client applying every diff. After the writes stop, every client's items equal a fresh
records.list with the same arguments, for every query; and after every diff, no client holds a post its reader
may not see (a post's own fields say who may)."""
from __future__ import annotations

import asyncio
import random
import secrets
import time
from typing import Any

import asyncpg

from hapta.client import Client, HaptaError
from hapta.live.window import apply
from tests.conftest import PASSWORD, gateway_env
from tests.services import GatewayProcess, write_app

DIFF = "realtime.diff"
FAST = """
    import dataclasses, runpy
    from hapta.config import Limit
    demo = runpy.run_path(APP + "/config.py")["app"]
    app = dataclasses.replace(demo, limits={op: Limit(10_000, per=1) for op in (
        "records.create", "records.update", "records.delete", "realtime.query", "auth.login")})
"""


def queries(tag: str) -> list[dict[str, Any]]:
    return [
        {"collection": "posts", "filter": f'text ~ "{tag}"', "sort": "-created", "limit": 4},
        {"collection": "posts", "filter": f'text ~ "{tag}"', "sort": "text,-created", "limit": 3},
        {"collection": "posts", "filter": f'text ~ "{tag}" && public = false', "sort": "-updated", "limit": 5},
        {"collection": "comments", "filter": f'text ~ "{tag}"', "sort": "-created", "limit": 4},
        {"collection": "likes", "sort": "-created", "limit": 6},
    ]


class Reader:
    """A user's client holding every query, applying every diff, checking each post it holds after each diff."""

    def __init__(self, email: str, user_id: str, tag: str):
        self.email, self.user_id, self.tag = email, user_id, tag
        self.client: Client | None = None
        self.held: dict[str, dict[str, Any]] = {}     # sub -> {"query", "items", "pos"}
        self.pump: asyncio.Task | None = None
        self.failures: list[str] = []

    async def connect(self, url: str) -> None:
        self.client = await Client.connect(url)
        await self.client.call("auth.login", {"identity": self.email, "password": PASSWORD})
        earlier = list(self.held.values())
        self.held = {}
        for number, query in enumerate(queries(self.tag)):
            before = earlier[number] if earlier else None
            if before is None:
                answer = await self.client.call("realtime.query", query)
                items = answer["items"]
            else:   # resume: only the differences travel
                have = [[item["id"], item["version"]] for item in before["items"]]
                answer = await self.client.call("realtime.query", {**query, "have": have})
                items = answer["items"] if "items" in answer else apply(before["items"], answer["ops"])
            self.held[answer["sub"]] = {"query": query, "items": items, "pos": answer["pos"]}
            self.check(items, query)
        self.pump = asyncio.ensure_future(self._pump())

    async def _pump(self) -> None:
        assert self.client is not None
        while True:
            try:
                event = await self.client.next_event(timeout=3600)
            except (ConnectionError, asyncio.TimeoutError):
                return
            if event["event"] != DIFF:
                if event["event"] == "realtime.reset":
                    self.failures.append(f"reset: {event}")
                continue
            held = self.held[event["sub"]]
            if event["data"]["pos"] <= held["pos"]:
                self.failures.append(f"position went back: {event['data']['pos']} after {held['pos']}")
            held["pos"] = event["data"]["pos"]
            held["items"] = apply(held["items"], event["data"]["ops"])
            self.check(held["items"], held["query"])

    def check(self, items: list[dict], query: dict) -> None:
        if len(items) > query["limit"]:
            self.failures.append(f"{len(items)} items for a limit of {query['limit']}")
        if query["collection"] == "posts":
            for item in items:
                if not item["public"] and item["author"] != self.user_id:
                    self.failures.append(f"{self.email} held private post {item['id']}")

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
        if self.pump is not None:
            await asyncio.gather(self.pump, return_exceptions=True)


async def settled(readers: list[Reader], timeout: float = 30.0) -> None:
    """Wait until every query of every reader equals records.list for its reader (or fail with the difference)."""
    deadline = time.monotonic() + timeout
    while True:
        differ = []
        for reader in readers:
            for sub, held in reader.held.items():
                query = dict(held["query"])
                args = {"collection": query.pop("collection"), "per_page": query.pop("limit"), **query}
                listed = (await reader.client.call("records.list", args))["items"]
                if listed != held["items"]:
                    differ.append((reader.email, held["query"], [i["id"] for i in held["items"]],
                                   [i["id"] for i in listed]))
        if not differ:
            return
        assert time.monotonic() < deadline, differ
        await asyncio.sleep(0.1)   # diffs still on their way: look again (bounded by the deadline)


async def write_randomly(rng: random.Random, writers: list[tuple[Client, str]], tag: str, count: int,
                         made: dict[str, list[str]], sql: asyncpg.Connection) -> None:
    """`count` random writes: creates, edits (some moving a record in its order), deletes, privacy flips, likes,
    and some straight in SQL."""
    for step in range(count):
        client, user_id = rng.choice(writers)
        roll = rng.random()
        mine = [p for p in made["posts"] if made["author"][p] == user_id]
        try:
            if roll < 0.25 or not made["posts"]:
                record = await client.call("records.create", {"collection": "posts", "data": {
                    "author": user_id, "text": f"{tag} {rng.choice('abcdef')} {step}", "public": rng.random() < 0.6}})
                made["posts"].append(record["id"])
                made["author"][record["id"]] = user_id
            elif roll < 0.4 and mine:
                await client.call("records.update", {"collection": "posts", "id": rng.choice(mine),
                                                     "data": {"public": rng.random() < 0.5}})
            elif roll < 0.5 and mine:
                await client.call("records.update", {"collection": "posts", "id": rng.choice(mine),
                                                     "data": {"text": f"{tag} {rng.choice('abcdef')} edit {step}"}})
            elif roll < 0.58 and mine:
                gone = rng.choice(mine)
                await client.call("records.delete", {"collection": "posts", "id": gone})
                made["posts"].remove(gone)
            elif roll < 0.75:
                await client.call("records.create", {"collection": "comments", "data": {
                    "post": rng.choice(made["posts"]), "author": user_id, "text": f"{tag} c{step}"}})
            elif roll < 0.85:
                await client.call("records.create", {"collection": "likes", "data": {
                    "post": rng.choice(made["posts"]), "user": user_id}})
            elif roll < 0.95:
                await sql.execute("UPDATE posts SET public = NOT public, text = $2 WHERE id = $1",
                                  rng.choice(made["posts"]), f"{tag} sql {step}")
            else:
                await sql.execute("INSERT INTO comments (post, author, text) VALUES ($1, $2, $3)",
                                  rng.choice(made["posts"]), user_id, f"{tag} sql comment {step}")
        except HaptaError as error:   # a comment on a post its writer cannot see, a like given twice: refused
            assert error.code in ("FORBIDDEN", "CONFLICT", "VALIDATION_FAILED", "NOT_FOUND"), error


async def test_live_queries_agree_with_records_list_through_random_writes_and_a_restart(database, tmp_path):
    config = write_app(tmp_path, FAST)
    process = GatewayProcess(gateway_env(database), config=config).start()
    tag = "o" + secrets.token_hex(4)
    rng = random.Random(29)
    readers: list[Reader] = []
    writers: list[tuple[Client, str]] = []
    sql = await asyncpg.connect(database)
    try:
        for n in range(3):
            client = await Client.connect(process.url)
            name = f"oracle{n}{secrets.token_hex(4)}"
            session = await client.call("auth.register", {"email": f"{name}@example.com", "password": PASSWORD,
                                                          "username": name})
            writers.append((client, session["user"]["id"]))
            readers.append(Reader(f"{name}@example.com", session["user"]["id"], tag))
        for reader in readers:
            await reader.connect(process.url)
        made: dict[str, Any] = {"posts": [], "author": {}}
        await write_randomly(rng, writers, tag, 120, made, sql)
        await settled(readers)

        # A restart in the middle: the readers come back with what they hold; SQL writes meanwhile.
        for reader in readers:
            await reader.close()
        for client, _ in writers:
            await client.close()
        process.stop()
        for step in range(5):
            await sql.execute("UPDATE posts SET public = NOT public WHERE id = $1", rng.choice(made["posts"]))
        process = GatewayProcess(gateway_env(database), config=config).start()
        writers = [(await Client.connect(process.url), user_id) for _, user_id in writers]
        for (client, _), reader in zip(writers, readers):
            await client.call("auth.login", {"identity": reader.email, "password": PASSWORD})
        for reader in readers:
            await reader.connect(process.url)
        await write_randomly(rng, writers, tag, 120, made, sql)
        await settled(readers)
        assert [failure for reader in readers for failure in reader.failures] == []
        assert sum(len(held["items"]) for reader in readers for held in reader.held.values()) > 20
    finally:
        for reader in readers:
            await reader.close()
        for client, _ in writers:
            await client.close()
        await sql.close()
        process.stop()
    assert "Traceback" not in process.log_text(), process.log_text()
