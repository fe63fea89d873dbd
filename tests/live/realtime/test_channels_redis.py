"""With REDIS_URL, channel notices travel through Redis pub/sub: across processes, larger than NOTIFY allows, and
a Redis outage costs publishes (UNAVAILABLE) and then a `realtime.reset`, never the gateway."""
from __future__ import annotations

import asyncio
import secrets

import pytest

from hapta.client import Client, HaptaError
from tests.conftest import PASSWORD, gateway_env
from tests.live.realtime.helpers import events_until
from tests.services import GatewayProcess, RedisServer


@pytest.fixture
def redis_pair(database):
    redis = RedisServer().start()
    env = gateway_env(database, REDIS_URL=redis.url, HAPTA_REDIS_PREFIX=f"hapta-test-{secrets.token_hex(4)}:")
    processes = [GatewayProcess(env).start() for _ in range(2)]
    yield redis, processes
    for process in processes:
        process.stop()
    redis.stop()
    for process in processes:
        assert "Traceback" not in process.log_text(), process.log_text()


async def _signed_in(process: GatewayProcess) -> Client:
    client = await Client.connect(process.url)
    name = "r" + secrets.token_hex(5)
    await client.call("auth.register", {"email": f"{name}@example.com", "password": PASSWORD})
    return client


async def test_channels_over_redis(redis_pair):
    redis, (first, second) = redis_pair
    room = f"room:{secrets.token_hex(4)}"
    alice, bob = await _signed_in(first), await _signed_in(second)
    try:
        await alice.call("channels.join", {"channel": room})
        bob_member = (await bob.call("channels.join", {"channel": room}))["member"]
        await events_until(alice, lambda e: e["event"] == "channels.presence" and e["data"]["member"]["id"] == bob_member)
        big = "x" * 20_000   # more than a NOTIFY could carry
        await bob.call("channels.publish", {"channel": room, "data": big})
        [message] = await events_until(alice, lambda e: e["event"] == "channels.message")
        assert message["data"]["data"] == big

        redis.stop()
        with pytest.raises(HaptaError) as down:
            await bob.call("channels.publish", {"channel": room, "data": "lost"})
        assert down.value.code == "UNAVAILABLE" and down.value.retry_after
        await asyncio.to_thread(redis.start)   # the same port, empty
        [reset] = await events_until(alice, lambda e: e["event"] == "realtime.reset", timeout=20)
        assert reset["data"]["channels"] == [room]
        await events_until(bob, lambda e: e["event"] == "realtime.reset", timeout=20)
        await bob.call("channels.publish", {"channel": room, "data": "back"})
        [message] = await events_until(alice, lambda e: e["event"] == "channels.message")
        assert message["data"]["data"] == "back"
    finally:
        await alice.close()
        await bob.close()


async def test_messages_that_wait_for_a_commit_need_no_redis(redis_pair):
    """A batch's `publish` rides the change feed, not Redis: as large as the bus with Redis allows, across
    processes, and sent while Redis is down."""
    redis, (first, second) = redis_pair
    room = f"room:{secrets.token_hex(4)}"
    alice, bob = await _signed_in(first), await _signed_in(second)
    try:
        await alice.call("channels.join", {"channel": room})
        await bob.call("channels.join", {"channel": room})
        me = (await bob.call("auth.me"))["user"]["id"]
        post = {"op": "create", "collection": "posts", "data": {"author": me, "text": "with a message"}}
        big = "x" * 20_000   # more than a NOTIFY could carry
        await bob.call("records.batch", {"ops": [post], "publish": [{"channel": room, "data": big}]})
        [message] = [e for e in await events_until(alice, lambda e: e["event"] == "channels.message")
                     if e["event"] == "channels.message"]
        assert message["data"]["data"] == big

        redis.stop()
        await bob.call("records.batch", {"ops": [post], "publish": [{"channel": room, "data": "during"}]})
        [message] = [e for e in await events_until(alice, lambda e: e["event"] == "channels.message")
                     if e["event"] == "channels.message"]
        assert message["data"]["data"] == "during"
    finally:
        await alice.close()
        await bob.close()
