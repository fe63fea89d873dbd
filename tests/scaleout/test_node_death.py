"""Issue 34: a node dies. Three nodes behind a balancer with no sticky routing (which keeps sending every third new
connection to the dead node, as a balancer does until its health check notices). Signed-in clients (the
reconnecting Python client: hapta/reconnect.py) write, subscribe and sit in a channel on every node; one node is
killed with SIGKILL mid-traffic. Its clients reconnect to the others and resume: every write acknowledged (sent
with an idempotency key, again after a drop) is stored once, every subscriber hears each of them once and in order,
the dead node's channel members leave within PROCESS_TIMEOUT (and a heartbeat), and the change feed's numbering
goes on whichever node led it."""
from __future__ import annotations

import asyncio
import secrets
import signal
import time
from collections import Counter

import asyncpg
import pytest_asyncio

from hapta.client import Client
from hapta.live.channels import HEARTBEAT, PROCESS_TIMEOUT
from hapta.reconnect import Hapta
from tests.conftest import PASSWORD, gateway_env
from tests.scaleout.conftest import RUN_PREFIX
from tests.services import Balancer, GatewayProcess, next_loopback

NODES = 3
PRESENCE_BOUND = PROCESS_TIMEOUT + 2 * HEARTBEAT + 10   # the dead node's members are gone within this (seconds)


@pytest_asyncio.fixture
async def three_nodes(database, redis_url, tmp_path_factory):
    env = gateway_env(database, REDIS_URL=redis_url, HAPTA_REDIS_PREFIX=f"{RUN_PREFIX}death-{secrets.token_hex(3)}:")
    nodes: list[GatewayProcess] = []
    try:
        for n in range(NODES):
            node = GatewayProcess({**env, "HAPTA_DATA_DIR": str(tmp_path_factory.mktemp(f"dying{n}"))})
            nodes.append(await asyncio.to_thread(node.start))
        front = await Balancer([("127.0.0.1", node.port) for node in nodes]).start()
        yield nodes, front
        await front.close()
    finally:
        for node in nodes:
            node.stop()
    for node in nodes[1:]:
        assert "Traceback" not in node.log_text(), node.log_text()


async def until(condition, what: str, seconds: float) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, f"within {seconds} s: {what}"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_a_node_killed_under_load_loses_nothing_acknowledged_and_its_clients_resume(three_nodes, database):
    nodes, front = three_nodes
    tag = "death" + secrets.token_hex(4)
    room = f"room:{secrets.token_hex(4)}"
    clients: list[Hapta] = []

    async def user() -> tuple[Hapta, int, dict]:
        hapta = await Hapta.connect(front.url, backoff=(0.05, 0.5), local_addr=(next_loopback(), 0))
        clients.append(hapta)
        name = "d" + secrets.token_hex(5)
        session = await hapta.register(email=f"{name}@example.com", password=PASSWORD, username=name)
        return hapta, front.routed[-1], session["user"]

    try:
        # Three watchers, one per node: a subscription to the tag's posts, and the room.
        watchers = []
        for _ in range(NODES):
            hapta, node, _ = await user()
            subscription = await hapta.subscribe("posts", filter=f'text ~ "{tag}"')
            await hapta.join(room)
            watchers.append((hapta, node, subscription))
        assert sorted(node for _, node, _ in watchers) == list(range(NODES))
        # A plain client (no reconnect) in the room on the node that dies: its member must leave for the others.
        doomed = 0
        while True:
            plain = await Client.connect(front.url, local_addr=(next_loopback(), 0))
            if front.routed[-1] == doomed:
                break
            await plain.close()
        await plain.call("auth.guest")
        stranded = (await plain.call("channels.join", {"channel": room}))["member"]

        # Six writers, two per node, each creating posts with idempotency keys until told to stop.
        acknowledged: dict[str, str] = {}   # text -> id
        failures: list[BaseException] = []
        stop = asyncio.Event()

        async def write(hapta: Hapta, author: str, n: int) -> None:
            i = 0
            while not stop.is_set():
                i += 1
                text = f"{tag} w{n} #{i}"
                try:
                    done = await hapta.write("records.create", {"collection": "posts", "data": {
                        "author": author, "text": text, "public": True}}, attempts=10)
                except Exception as exc:   # noqa: BLE001  what a write could not do is counted, never hidden
                    failures.append(exc)
                    await asyncio.sleep(0.2)
                    continue
                acknowledged[text] = done["id"]
                await asyncio.sleep(0.15)   # under the demo's 10 creates a second per user

        running = []
        for n in range(2 * NODES):
            hapta, _, author = await user()
            running.append(asyncio.ensure_future(write(hapta, author["id"], n)))
        await until(lambda: len(acknowledged) >= 60, "writes go through on every node", 60)

        nodes[doomed].proc.send_signal(signal.SIGKILL)
        living = [hapta for hapta, node, _ in watchers if node != doomed]
        departed = asyncio.ensure_future(until(
            lambda: all(m["id"] != stranded for hapta in living for m in hapta.members(room)),
            "the dead node's member leaves", PRESENCE_BOUND))
        before = len(acknowledged)
        recovered = await until(lambda: len(acknowledged) >= before + 60, "writes go on after the kill", 60)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*running), 60)   # each writer's last write is answered

        # Every acknowledged write is stored once.
        sql = await asyncpg.connect(database)
        try:
            rows = await sql.fetch("SELECT id, text FROM posts WHERE text LIKE $1", f"{tag} %")
        finally:
            await sql.close()
        assert max(Counter(row["text"] for row in rows).values()) == 1
        stored = {row["text"]: row["id"] for row in rows}
        for text, record_id in acknowledged.items():
            assert stored[text] == record_id
        # Each watcher, including the one whose node died, hears every stored post once, in order.
        for hapta, node, subscription in watchers:
            heard: list[dict] = []

            async def drain() -> None:
                while {c["record"]["id"] for c in heard} < set(stored.values()):
                    heard.append(await subscription.next(timeout=30))
            await asyncio.wait_for(drain(), 60)
            creates = [c["record"]["id"] for c in heard if c["action"] == "create"]
            assert Counter(creates) == Counter(stored.values()), f"the watcher on node {node}"
            positions = [c["pos"] for c in heard]
            assert positions == sorted(positions) and len(set(positions)) == len(positions)
        # The dead node's member is gone for the living, within the bound.
        assert await departed < PRESENCE_BOUND
        assert recovered < 60 and not [f for f in failures if not isinstance(f, (ConnectionError, OSError))], \
            failures[:3]
    finally:
        for hapta in clients:
            await hapta.close()
