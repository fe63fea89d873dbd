"""Issue 34: read replicas. A primary and an asynchronous streaming standby; the gateway has DATABASE_URL=primary
and DATABASE_REPLICA_URLS=standby. Cache misses of records.get/list/aggregate are served by the standby when it is
proven to have replayed every commit made before the read began; every read after an acknowledged write (any
client's) sees it, under writes; with replay paused on the standby the reads go to the primary, and the metric says
why; frozen, then stopped, the standby costs no read its answer nor its deadline, and started again it serves again."""
from __future__ import annotations

import asyncio
import re
import secrets
import time
import urllib.request

import pytest

from tests.conftest import ADMIN_KEY, gateway_env
from tests.security.conftest import register
from tests.security.test_faults import COMBINED, DEADLINE, clean
from tests.services import GatewayProcess, PrivatePostgres, write_app


@pytest.fixture(scope="module")
def servers():
    primary = PrivatePostgres().start()
    standby = None
    try:
        standby = primary.standby(synchronous=False)
        yield primary, standby
    finally:
        for server in (standby, primary):
            if server is not None:
                server.remove()


@pytest.fixture(scope="module")
def gateway(servers, tmp_path_factory):
    primary, standby = servers
    config = write_app(tmp_path_factory.mktemp("replicas"), COMBINED)
    (config.parent / "rules").unlink()
    (config.parent / "rules").mkdir()
    process = GatewayProcess(gateway_env(primary.dsn, DATABASE_REPLICA_URLS=standby.dsn), config=config).start()
    yield process
    process.stop()
    clean(process)


def replica_reads(process: GatewayProcess) -> dict[tuple[str, str], float]:
    """hapta_replica_reads_total by (target, why), from the gateway's /metrics."""
    with urllib.request.urlopen(f"{process.http}/metrics", timeout=10) as response:
        text = response.read().decode()
    found = {}
    for target, why, value in re.findall(r'hapta_replica_reads_total\{target="(\w+)",why="([\w ]+)"\} (\S+)', text):
        found[(target, why)] = float(value)
    return found


async def reads_now(process) -> dict[tuple[str, str], float]:
    return await asyncio.to_thread(replica_reads, process)


def delta(after: dict, before: dict, key: tuple[str, str]) -> float:
    return after.get(key, 0.0) - before.get(key, 0.0)


async def people(open_client, process, readers: int = 3):
    """An admin who writes (no rate limit to pace the loop) as a user, and readers signed in as other users."""
    admin = await open_client(process)
    await admin.call("auth.admin", {"key": ADMIN_KEY})
    author = await open_client(process)
    author_id = (await register(author))["user"]["id"]
    clients = []
    for _ in range(readers):
        client = await open_client(process)
        await register(client)
        clients.append(client)
    return admin, author_id, clients


async def background_writes(admin, author: str, tag: str, stop: asyncio.Event) -> int:
    """Writes that keep the primary's WAL moving while the test reads (each a commit the standby must replay)."""
    n = 0
    while not stop.is_set():
        await admin.call("records.create", {"collection": "posts", "data": {"author": author,
                                                                           "text": f"{tag} noise {n}"}})
        n += 1
    return n


async def write_then_read(admin, author: str, readers: list, tag: str, rounds: int) -> list[float]:
    """`rounds` times: a public post created (acknowledged), then read by another client at once, three ways, each a
    cache miss (a filter and an id never asked before). Every read must see it. The reads' latencies, in seconds."""
    latencies = []
    for i in range(rounds):
        text = f"{tag} {i}"
        made = await admin.call("records.create", {"collection": "posts", "data": {
            "author": author, "text": text, "public": True}})
        reader = readers[i % len(readers)]
        started = time.monotonic()
        listed = await reader.call("records.list", {"collection": "posts", "filter": f'text = "{text}"'})
        latencies.append(time.monotonic() - started)
        assert [item["id"] for item in listed["items"]] == [made["id"]], (i, listed)
        started = time.monotonic()
        got = await reader.call("records.get", {"collection": "posts", "id": made["id"]})
        latencies.append(time.monotonic() - started)
        assert got["text"] == text
        if i % 5 == 0:
            counted = await reader.call("records.aggregate", {"collection": "posts", "filter": f'text = "{text}"'})
            assert counted["groups"] == [{"key": {}, "count": 1}], counted
    return latencies


async def test_reads_go_to_the_fresh_replica_and_every_read_sees_every_write_before_it(
        servers, gateway, open_client):
    primary, standby = servers
    admin, author, readers = await people(open_client, gateway)
    tag = "replica" + secrets.token_hex(4)
    before = await reads_now(gateway)
    stop = asyncio.Event()
    noise = asyncio.ensure_future(background_writes(admin, author, tag, stop))
    try:
        await write_then_read(admin, author, readers, tag, 150)
    finally:
        stop.set()
        written = await noise
    after = await reads_now(gateway)
    served = delta(after, before, ("replica", "fresh"))
    total = sum(after.values()) - sum(before.values())
    print(f"\n{served:.0f} of {total:.0f} reads on the replica; {written} writes beside; "
          f"{ {key: delta(after, before, key) for key in after} }")
    assert served > 0 and total >= 300, (served, total)
    # the replica's own pool is there, by its name (and the primary has none of it)
    assert int(standby.sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'hapta-replica'")) > 0
    assert int(primary.sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'hapta-replica'")) == 0


async def test_with_replay_paused_every_read_still_sees_every_write_and_goes_to_the_primary(
        servers, gateway, open_client):
    primary, standby = servers
    admin, author, readers = await people(open_client, gateway)
    tag = "paused" + secrets.token_hex(4)
    standby.sql("SELECT pg_wal_replay_pause()")
    try:
        before = await reads_now(gateway)
        latencies = await write_then_read(admin, author, readers, tag, 40)
        after = await reads_now(gateway)
    finally:
        standby.sql("SELECT pg_wal_replay_resume()")
    assert delta(after, before, ("replica", "fresh")) == 0
    assert delta(after, before, ("primary", "lagging")) >= 80, after
    assert max(latencies) < DEADLINE, max(latencies)
    # once replay goes on, the replica serves again
    before = await reads_now(gateway)
    for i in range(200):
        await write_then_read(admin, author, readers, f"{tag} again {i}", 1)
        if delta(await reads_now(gateway), before, ("replica", "fresh")) > 0:
            break
    assert delta(await reads_now(gateway), before, ("replica", "fresh")) > 0


async def test_a_frozen_then_stopped_replica_costs_no_read_its_answer_nor_its_deadline(
        servers, gateway, open_client):
    primary, standby = servers
    admin, author, readers = await people(open_client, gateway)
    tag = "frozen" + secrets.token_hex(4)
    standby.freeze()
    try:
        before = await reads_now(gateway)
        latencies = await write_then_read(admin, author, readers, tag, 40)
        after = await reads_now(gateway)
    finally:
        standby.thaw()
    assert delta(after, before, ("replica", "fresh")) == 0
    skipped = delta(after, before, ("primary", "no replica")) + delta(after, before, ("primary", "lagging"))
    assert skipped >= 80, after
    assert max(latencies) < DEADLINE, max(latencies)
    print(f"\nfrozen: slowest read {max(latencies) * 1000:.0f} ms; "
          f"{ {key: delta(after, before, key) for key in after} }")

    # thawed, it is sampled again once its rest is over, and serves again
    before = await reads_now(gateway)
    deadline = time.monotonic() + 30
    i = 0
    while delta(await reads_now(gateway), before, ("replica", "fresh")) == 0:
        assert time.monotonic() < deadline, "the thawed replica serves again within 30 s"
        await write_then_read(admin, author, readers, f"{tag} thawed {i}", 1)
        i += 1

    # stopped for good: reads answer from the primary
    await asyncio.to_thread(standby.stop)
    before = await reads_now(gateway)
    latencies = await write_then_read(admin, author, readers, f"{tag} stopped", 40)
    after = await reads_now(gateway)
    assert delta(after, before, ("replica", "fresh")) == 0
    assert max(latencies) < DEADLINE, max(latencies)

    # started again (its replay goes on from its last restartpoint): it serves again once proven, and meanwhile
    # every read still sees every write before it
    await asyncio.to_thread(standby.start)
    before = await reads_now(gateway)
    deadline = time.monotonic() + 30
    i = 0
    while delta(await reads_now(gateway), before, ("replica", "fresh")) == 0:
        assert time.monotonic() < deadline, "the restarted replica serves again within 30 s"
        latencies = await write_then_read(admin, author, readers, f"{tag} restarted {i}", 1)
        assert max(latencies) < DEADLINE, max(latencies)
        i += 1
    await write_then_read(admin, author, readers, f"{tag} restarted", 20)
