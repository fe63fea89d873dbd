"""With REDIS_URL the read cache is shared: a worker answers from what another already read, never anything older
than a write either acknowledged, and a Redis that does not answer costs queries, not reads."""
from __future__ import annotations

import re
import secrets
import urllib.request

import pytest

from hapta.client import Client
from tests.live.cache.conftest import RUN_PREFIX
from tests.conftest import PASSWORD, gateway_env
from tests.services import GatewayProcess, free_port


def _reads(process: GatewayProcess) -> dict[str, float]:
    with urllib.request.urlopen(f"{process.http}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {k: float(v) for k, v in re.findall(r'^hapta_cache_reads_total\{result="(\w+)"\} (\S+)$', text, re.M)}


@pytest.fixture(scope="module")
def redis_pair(database, redis_url):
    env = gateway_env(database, REDIS_URL=redis_url, HAPTA_REDIS_PREFIX=f"{RUN_PREFIX}{secrets.token_hex(3)}:")
    processes = [GatewayProcess(env).start() for _ in range(2)]
    yield processes
    for process in processes:
        process.stop()
        assert "Traceback" not in process.log_text(), process.log_text()


async def _signed_in(process: GatewayProcess, token: str | None = None) -> tuple[Client, dict]:
    client = await Client.connect(process.url)
    if token:
        await client.call("auth.resume", {"token": token})
        return client, {}
    name = "s" + secrets.token_hex(5)
    return client, await client.call("auth.register", {"email": f"{name}@example.com", "password": PASSWORD})


async def test_a_worker_answers_from_what_another_already_read(redis_pair):
    first, second = redis_pair
    writer, session = await _signed_in(first)
    reader, _ = await _signed_in(second, session["token"])
    try:
        created = await writer.call("records.create", {"collection": "posts", "data": {
            "author": session["user"]["id"], "text": "shared", "public": True}})
        read = {"collection": "posts", "id": created["id"]}
        page = {"collection": "posts", "filter": "public = true", "per_page": 3}
        for client in (writer, reader):   # both have heard the create before they answer from any cache
            await client.call("records.get", read)
        await writer.call("records.list", page)
        before = _reads(second)
        assert await reader.call("records.list", page) == await writer.call("records.list", page)
        after = _reads(second)
        assert after.get("shared", 0) == before.get("shared", 0) + 1
        assert after.get("load", 0) == before.get("load", 0)

        for round_ in range(1, 10):   # and never older than an acknowledged write, whoever wrote
            updated = await writer.call("records.update", {"collection": "posts", "id": created["id"],
                                                           "data": {"text": f"shared {round_}"}})
            assert await reader.call("records.get", read) == updated
            assert (await reader.call("records.list", page))["items"][0] == updated
    finally:
        await writer.close()
        await reader.close()


async def test_reads_go_on_when_redis_does_not_answer(database):
    env = gateway_env(database, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    process = GatewayProcess(env).start()
    try:
        client, session = await _signed_in(process)
        created = await client.call("records.create", {"collection": "posts", "data": {
            "author": session["user"]["id"], "text": "no redis", "public": True}})
        for _ in range(3):
            assert (await client.call("records.get", {"collection": "posts", "id": created["id"]}))["text"] == "no redis"
        await client.close()
    finally:
        process.stop()
    assert "Traceback" not in process.log_text(), process.log_text()
