"""A subscriber whose access token expired hears nothing until it signs in again; then events flow again."""
from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

import pytest

from hapta.client import Client, HaptaError
from tests.conftest import ADMIN_KEY, ANON_KEY, PASSWORD, gateway_env
from tests.live.realtime.helpers import change_of, events_until, ids_in, post
from tests.services import APP, GatewayProcess

TOKEN_TTL = 3


@pytest.fixture(scope="module")
def short_tokens(tmp_path_factory, database):
    """The demo app with access tokens valid TOKEN_TTL seconds."""
    app_dir: Path = tmp_path_factory.mktemp("short-tokens")
    for name in ("migrations", "rules"):
        (app_dir / name).symlink_to(APP / name)
    (app_dir / "config.py").write_text(
        "import dataclasses, importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('demo_config', {str(APP / 'config.py')!r})\n"
        "demo = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(demo)\n"
        "from hapta.config import SessionPolicy\n"
        f"app = dataclasses.replace(demo.app, sessions=SessionPolicy(access_token_ttl={TOKEN_TTL}))\n")
    process = GatewayProcess(gateway_env(database), config=app_dir / "config.py").start()
    yield process
    process.stop()
    assert "Traceback" not in process.log_text(), process.log_text()


async def _register(url: str) -> tuple[Client, dict]:
    client = await Client.connect(url)
    name = "e" + secrets.token_hex(5)
    return client, await client.call("auth.register", {"email": f"{name}@example.com", "password": PASSWORD,
                                                       "username": name})


async def test_an_expired_subscriber_hears_nothing_until_it_refreshes(short_tokens):
    subscriber, session = await _register(short_tokens.url)
    witness = await Client.connect(short_tokens.url)   # anon: no token to expire
    await witness.call("auth.anon", {"apikey": ANON_KEY})
    writer, author = await _register(short_tokens.url)
    try:
        await subscriber.call("realtime.subscribe", {"collection": "posts"})
        await witness.call("realtime.subscribe", {"collection": "posts"})
        deadline = time.monotonic() + TOKEN_TTL + 5
        while True:   # until the subscriber's token has expired (the gateway says so)
            try:
                await subscriber.call("records.list", {"collection": "posts", "per_page": 1})
            except HaptaError as error:
                assert error.code == "TOKEN_EXPIRED"
                break
            assert time.monotonic() < deadline, "the access token did not expire"
            await asyncio.sleep(0.2)
        # the writer's own token may have expired by now too: sign it in again
        await writer.call("auth.login", {"identity": author["user"]["username"], "password": PASSWORD})
        unheard = await post(writer, author["user"]["id"], "while expired")
        await events_until(witness, change_of(unheard["id"]))   # delivered by now, in the same pass

        await subscriber.call("auth.refresh", {"refresh_token": session["refresh_token"]})
        heard = await post(writer, author["user"]["id"], "after refresh")
        events = await events_until(subscriber, change_of(heard["id"]))
        assert unheard["id"] not in ids_in(events) and ids_in(events)[-1] == heard["id"]
    finally:
        for client in (subscriber, witness, writer):
            await client.close()


async def test_an_expired_token_ends_channel_memberships(short_tokens):
    """Issue 11, item 3: a membership does not outlive the access token it was joined with. The socket hears
    `channels.left`, the others see it leave, and after a refresh it may join again."""
    member_client, session = await _register(short_tokens.url)
    watcher = await Client.connect(short_tokens.url)   # an admin: no token to expire
    await watcher.call("auth.admin", {"key": ADMIN_KEY})
    room = f"room:{secrets.token_hex(4)}"
    try:
        joined = await member_client.call("channels.join", {"channel": room})
        await watcher.call("channels.join", {"channel": room})
        left = await events_until(member_client, lambda e: e.get("event") == "channels.left",
                                  timeout=TOKEN_TTL + 5)
        assert left[-1]["data"] == {"channel": room, "reason": "token expired"}
        await events_until(watcher, lambda e: e.get("event") == "channels.presence"
                           and e["data"]["action"] == "leave" and e["data"]["member"]["id"] == joined["member"])
        await member_client.call("auth.refresh", {"refresh_token": session["refresh_token"]})
        again = await member_client.call("channels.join", {"channel": room})
        assert again["member"] in [m["id"] for m in again["members"]]
    finally:
        for client in (member_client, watcher):
            await client.close()
