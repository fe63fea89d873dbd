"""Two nodes as one gateway (README, "Scaling out"): two `hapta serve` processes, each with a data folder of its
own, on one PostgreSQL, one Redis and one S3, behind a balancer with no sticky routing (each new connection goes
to the next node). Whatever node a client lands on, it meets the same rate limits, the same sessions, the same
changes and presence, the same cache and the same files as on the other."""
from __future__ import annotations

import asyncio
import secrets

import pytest
import pytest_asyncio

from hapta.client import Client
from hapta.protocol.errors import HaptaError
from tests.conftest import PASSWORD, gateway_env
from tests.files.conftest import png
from tests.live.realtime.helpers import change_of, events_until
from tests.scaleout.conftest import RUN_PREFIX
from tests.services import Balancer, GatewayProcess, next_loopback

NODES = 2


@pytest_asyncio.fixture(scope="module")
async def balancer(database, redis_url, seaweed, tmp_path_factory):
    env = gateway_env(database, REDIS_URL=redis_url, HAPTA_REDIS_PREFIX=f"{RUN_PREFIX}nodes-{secrets.token_hex(3)}:",
                      **seaweed.env(f"hapta-nodes-{secrets.token_hex(4)}"))
    nodes = []
    try:
        for n in range(NODES):
            node = GatewayProcess({**env, "HAPTA_DATA_DIR": str(tmp_path_factory.mktemp(f"node{n}"))})
            nodes.append(await asyncio.to_thread(node.start))
        front = await Balancer([("127.0.0.1", node.port) for node in nodes]).start()
        yield front
        await front.close()
    finally:
        for node in nodes:
            node.stop()
    for node in nodes:
        assert "Traceback" not in node.log_text(), node.log_text()


@pytest_asyncio.fixture
async def connect(balancer):
    """connect(address=None) -> (client, node): a client through the balancer and the node it landed on. Each
    call lands on the other node than the call before."""
    clients: list[Client] = []

    async def make(address: str | None = None) -> tuple[Client, int]:
        client = await Client.connect(balancer.url, local_addr=(address or next_loopback(), 0))
        clients.append(client)
        return client, balancer.routed[-1]
    yield make
    for client in clients:
        await client.close()


async def register(connect) -> tuple[Client, int, dict]:
    client, node = await connect()
    name = "n" + secrets.token_hex(5)
    session = await client.call("auth.register", {"email": f"{name}@example.com", "password": PASSWORD,
                                                  "username": name})
    return client, node, session


async def code_of(coroutine) -> str:
    with pytest.raises(HaptaError) as refused:
        await coroutine
    return refused.value.code


async def until_closed(client: Client, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while client.close_code is None:
            await asyncio.sleep(0.01)


async def test_no_sticky_routing(connect):
    landed = [(await connect())[1] for _ in range(4)]
    assert sorted(set(landed)) == [0, 1] and all(a != b for a, b in zip(landed, landed[1:]))


async def test_a_rate_limit_counts_what_every_node_allowed(connect):
    """auth.login: 5 a minute per client address. One address, alternating nodes: the sixth try is refused on
    both, as one gateway would refuse it (each node alone would allow five)."""
    address = next_loopback()
    (first, node_a), (second, node_b) = await connect(address), await connect(address)
    assert node_a != node_b
    wrong = {"identity": f"nobody-{secrets.token_hex(3)}@example.com", "password": "not the password"}
    for client in (first, second, first, second, first):
        assert await code_of(client.call("auth.login", wrong)) == "INVALID_CREDENTIALS"
    assert await code_of(second.call("auth.login", wrong)) == "RATE_LIMITED"
    assert await code_of(first.call("auth.login", wrong)) == "RATE_LIMITED"


async def test_a_logout_on_one_node_closes_the_session_on_the_other(connect):
    phone, phone_node, session = await register(connect)
    laptop, laptop_node = await connect()
    assert phone_node != laptop_node
    await laptop.call("auth.resume", {"token": session["token"]})
    assert await phone.call("auth.logout") == {}
    assert await laptop.next_event(timeout=5) == {"event": "auth.revoked", "data": {"reason": "logout"}}
    await until_closed(laptop)
    assert laptop.close_code == 1008
    again, _ = await connect()   # and no node takes the token any more
    assert await code_of(again.call("auth.resume", {"token": session["token"]})) == "TOKEN_INVALID"


async def test_a_change_on_one_node_reaches_a_subscriber_on_the_other_and_a_resume_anywhere(connect):
    watcher, watcher_node, session = await register(connect)
    writer, writer_node, author = await register(connect)
    assert watcher_node != writer_node
    tag = "nodes" + secrets.token_hex(4)
    await watcher.call("realtime.subscribe", {"collection": "posts", "filter": f'text ~ "{tag}"'})
    live = await writer.call("records.create", {"collection": "posts", "data": {
        "author": author["user"]["id"], "text": f"{tag} live", "public": True}})
    [heard] = await events_until(watcher, change_of(live["id"]))
    await watcher.close()
    missed = [await writer.call("records.create", {"collection": "posts", "data": {
        "author": author["user"]["id"], "text": f"{tag} missed {i}", "public": True}}) for i in range(3)]

    back, back_node = await connect()   # the watcher's next socket, on whichever node
    await back.call("auth.resume", {"token": session["token"]})
    await back.call("realtime.subscribe", {"collection": "posts", "filter": f'text ~ "{tag}"',
                                           "since": heard["data"]["pos"]})
    events = await events_until(back, change_of(missed[-1]["id"]))
    assert [e["data"]["record"]["id"] for e in events if e["event"] == "records.change"] == \
        [post["id"] for post in missed]


async def test_presence_is_one_room_across_nodes(connect):
    alice, alice_node, alice_session = await register(connect)
    bob, bob_node, bob_session = await register(connect)
    assert alice_node != bob_node
    room = f"room:{secrets.token_hex(4)}"
    await alice.call("channels.join", {"channel": room})
    joined = await bob.call("channels.join", {"channel": room})
    assert [m["user"] for m in joined["members"]] == [alice_session["user"]["id"], bob_session["user"]["id"]]
    await events_until(alice, presence("join", joined["member"]))
    await bob.call("channels.publish", {"channel": room, "data": "typing"})
    [message] = await events_until(alice, lambda e: e["event"] == "channels.message")
    assert message["data"]["data"] == "typing"
    await bob.close()   # a disconnect on one node is a leave on the other
    await events_until(alice, presence("leave", joined["member"]))


def presence(action: str, member: str):
    def matches(event):
        data = event.get("data") or {}
        return event.get("event") == "channels.presence" and data.get("action") == action \
            and data["member"]["id"] == member
    return matches


async def test_the_cache_never_answers_older_than_a_write_another_node_acknowledged(connect):
    writer, writer_node, session = await register(connect)
    reader, reader_node = await connect()
    assert writer_node != reader_node
    await reader.call("auth.resume", {"token": session["token"]})
    post = await writer.call("records.create", {"collection": "posts", "data": {
        "author": session["user"]["id"], "text": "version 0", "public": True}})
    read = {"collection": "posts", "id": post["id"]}
    for version in range(1, 6):
        assert (await reader.call("records.get", read))["text"] == f"version {version - 1}"   # cached from here
        await writer.call("records.update", {**read, "data": {"text": f"version {version}"}})
        assert (await reader.call("records.get", read))["text"] == f"version {version}"


async def test_a_file_stored_through_one_node_is_served_by_the_other(connect):
    uploader, up_node, session = await register(connect)
    downloader, down_node = await connect()
    assert up_node != down_node
    await downloader.call("auth.resume", {"token": session["token"]})
    post = await uploader.call("records.create", {"collection": "posts", "data": {
        "author": session["user"]["id"], "text": "with a picture", "public": True}})
    picture = png(300_000)
    stored = await uploader.upload("posts", post["id"], "media", "a.png", picture, type="image/png")
    name = stored["file"]["name"]
    assert await downloader.download_bytes("posts", post["id"], "media", name) == picture
