"""before_send: a rules/ hook that sees every record before it leaves the gateway, for the principal receiving it,
after the access rules: in records.get and records.list (cached answers included: the cache keeps what the rules
allow, the hook runs per reader), in realtime events and in snapshots. It may mask fields or leave the record out
(Deny); a hook that fails leaves the record out rather than send it unchecked."""
from __future__ import annotations

import secrets
import textwrap

import pytest
import pytest_asyncio

from hapta.client import Client, HaptaError
from hapta.live.window import apply
from tests.conftest import ANON_KEY, PASSWORD, gateway_env
from tests.live.realtime.helpers import change_of, events_until
from tests.services import APP, GatewayProcess, next_loopback

POSTS_HOOKS = '''
from hapta.rules import Deny

def before_send(ctx, record):
    if "[draft]" in (record.get("text") or "") and record.get("author") != ctx.user_id:
        raise Deny("a draft is its author's alone")
    if "[broken]" in (record.get("text") or ""):
        raise RuntimeError("the hook fails on this one")
    if ctx.role == "anon":
        return {**record, "author": None}   # anonymous readers do not learn who wrote it
    return record
'''


@pytest.fixture(scope="module")
def send_gateway(database, tmp_path_factory):
    folder = tmp_path_factory.mktemp("send-app") / "app"
    folder.mkdir()
    (folder / "migrations").symlink_to(APP / "migrations")
    (folder / "rules").mkdir()
    (folder / "rules" / "posts.py").write_text(textwrap.dedent(POSTS_HOOKS))
    (folder / "config.py").write_text(f"import runpy\napp = runpy.run_path({str(APP / 'config.py')!r})['app']\n")
    process = GatewayProcess(gateway_env(database), config=folder / "config.py").start()
    yield process
    process.stop()


@pytest_asyncio.fixture
async def connect(send_gateway):
    clients: list[Client] = []

    async def make(role: str = "user") -> tuple[Client, dict]:
        client = await Client.connect(send_gateway.url, local_addr=(next_loopback(), 0))
        clients.append(client)
        if role == "anon":
            await client.call("auth.anon", {"apikey": ANON_KEY})
            return client, {}
        name = "s" + secrets.token_hex(5)
        session = await client.call("auth.register", {"email": f"{name}@example.com", "password": PASSWORD})
        return client, session["user"]
    yield make
    for client in clients:
        await client.close()


async def post(client: Client, author: dict, text: str) -> dict:
    return await client.call("records.create", {"collection": "posts", "data": {
        "author": author["id"], "text": text, "public": True}})


async def test_reads_pass_through_the_hook_for_each_reader(connect):
    alice_client, alice = await connect()
    bob_client, _ = await connect()
    anon_client, _ = await connect("anon")
    tag = secrets.token_hex(4)
    draft = await post(alice_client, alice, f"{tag} [draft] not yet")
    shown = await post(alice_client, alice, f"{tag} for everyone")
    page = {"collection": "posts", "filter": f'text ~ "{tag}"', "sort": "created"}
    for _ in range(2):   # the second round is answered from the cache: the hook still runs per reader
        assert [r["id"] for r in (await alice_client.call("records.list", page))["items"]] == [draft["id"], shown["id"]]
        assert [r["id"] for r in (await bob_client.call("records.list", page))["items"]] == [shown["id"]]
        anon_page = (await anon_client.call("records.list", page))["items"]
        assert [(r["id"], r["author"]) for r in anon_page] == [(shown["id"], None)]
        assert (await alice_client.call("records.get", {"collection": "posts", "id": draft["id"]}))["text"] \
            == f"{tag} [draft] not yet"
        with pytest.raises(HaptaError) as hidden:
            await bob_client.call("records.get", {"collection": "posts", "id": draft["id"]})
        assert hidden.value.code == "NOT_FOUND"   # as if it were not there, like a record the rules hide


async def test_a_failing_hook_leaves_the_record_out(connect):
    alice_client, alice = await connect()
    tag = secrets.token_hex(4)
    broken = await post(alice_client, alice, f"{tag} [broken]")
    fine = await post(alice_client, alice, f"{tag} fine")
    page = (await alice_client.call("records.list", {"collection": "posts", "filter": f'text ~ "{tag}"'}))["items"]
    assert [r["id"] for r in page] == [fine["id"]]
    with pytest.raises(HaptaError) as hidden:
        await alice_client.call("records.get", {"collection": "posts", "id": broken["id"]})
    assert hidden.value.code == "NOT_FOUND"


async def test_realtime_events_and_snapshots_pass_through_the_hook(connect):
    alice_client, alice = await connect()
    bob_client, _ = await connect()
    anon_client, _ = await connect("anon")
    tag = secrets.token_hex(4)
    watch = {"collection": "posts", "filter": f'text ~ "{tag}"'}
    for client in (alice_client, bob_client, anon_client):
        await client.call("realtime.subscribe", watch)
    draft = await post(alice_client, alice, f"{tag} [draft]")
    marker = await post(alice_client, alice, f"{tag} marker")
    [*_, heard] = await events_until(alice_client, change_of(marker["id"]))
    bob_events = await events_until(bob_client, change_of(marker["id"]))
    assert draft["id"] not in [e["data"]["record"]["id"] for e in bob_events]
    anon_events = await events_until(anon_client, change_of(marker["id"]))
    assert [e["data"]["record"]["author"] for e in anon_events] == [None]
    assert heard["data"]["record"]["author"] == alice["id"]
    snapshot = await bob_client.call("realtime.subscribe", {**watch, "snapshot": True})
    assert [r["id"] for r in snapshot["items"]] == [marker["id"]]


async def test_expand_passes_related_records_through_their_collections_before_send(connect):
    alice, alice_user = await connect()
    bob, bob_user = await connect()
    draft = await alice.call("records.create", {"collection": "posts", "data": {
        "author": alice_user["id"], "text": "[draft] soon", "public": True}})
    comment = await bob.call("records.create", {"collection": "comments", "data": {
        "post": draft["id"], "author": bob_user["id"], "text": "first!"}})
    for reader, sees in ((alice, True), (bob, False)):
        got = await reader.call("records.get", {"collection": "comments", "id": comment["id"], "expand": ["post"]})
        assert ("post" in got["expand"]) is sees   # the draft is its author's alone, embedded or not


async def test_a_live_query_holds_what_the_hook_lets_each_reader_see(connect):
    alice_client, alice = await connect()
    bob_client, _ = await connect()
    tag = secrets.token_hex(4)
    query = {"collection": "posts", "filter": f'text ~ "{tag}"', "sort": "-created", "limit": 3}
    page = {"collection": "posts", "filter": f'text ~ "{tag}"', "sort": "-created", "per_page": 3}
    first = await post(alice_client, alice, f"{tag} one")
    answer = await bob_client.call("realtime.query", query)
    assert answer["items"] == [first]
    items, pos = answer["items"], answer["pos"]
    draft = await post(alice_client, alice, f"{tag} [draft] hers alone")
    second = await post(alice_client, alice, f"{tag} two")
    wanted = (await bob_client.call("records.list", page))["items"]
    assert [r["id"] for r in wanted] == [second["id"], first["id"]]   # as records.list: the draft is left out
    while items != wanted:
        event = await bob_client.next_event(timeout=10)
        if event["event"] == "realtime.diff" and event["sub"] == answer["sub"]:
            assert event["data"]["pos"] > pos
            pos = event["data"]["pos"]
            items = apply(items, event["data"]["ops"])
            assert draft["id"] not in [r["id"] for r in items]
    mine = await alice_client.call("realtime.query", query)
    assert [r["id"] for r in mine["items"]] == [second["id"], draft["id"], first["id"]]
