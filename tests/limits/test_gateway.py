"""Rate limits and metrics through real `hapta serve` processes: RATE_LIMITED and limits.status over the wire, the
demo app's limits, two processes sharing one budget through Redis, and GET /metrics."""
from __future__ import annotations

import asyncio
import secrets
import time

import pytest

from hapta.client import HaptaError
from hapta.settings import Settings, SettingsError
from tests.conftest import ADMIN_KEY, gateway_env
from tests.limits.wire import (N, SCARCE_POSTS, T, new_post, outcomes, register, sample, scrape, start_all,
                               stop_all)
from tests.services import GatewayProcess, next_loopback, write_app


@pytest.fixture(scope="module")
def pair(tmp_path_factory, database, redis_url):
    """Two processes on one database and one Redis, as two workers (one metrics directory) would be."""
    config = write_app(tmp_path_factory.mktemp("limits-app"), SCARCE_POSTS)
    env = gateway_env(database, REDIS_URL=redis_url, HAPTA_REDIS_PREFIX=f"hapta-test-{secrets.token_hex(4)}:",
                      PROMETHEUS_MULTIPROC_DIR=str(tmp_path_factory.mktemp("prometheus")))
    processes = start_all([GatewayProcess(env, config=config) for _ in range(2)])
    yield processes
    stop_all(processes)


# ---- one limit, two processes ------------------------------------------------------------------------------

async def test_a_burst_across_two_workers_lets_exactly_n_through(pair, clients):
    a, b = await clients(pair[0]), await clients(pair[1])
    session = await register(a)
    await b.call("auth.resume", {"token": session["token"]})
    started = time.monotonic()
    burst = await asyncio.gather(a.batch([new_post(session, f"a{i}") for i in range(8)]),
                                 b.batch([new_post(session, f"b{i}") for i in range(7)]))
    elapsed = time.monotonic() - started
    results = [r for side in burst for r in side]
    refused = [r for r in results if isinstance(r, HaptaError)]
    assert len(results) - len(refused) == N and len(refused) == 5
    for error in refused:
        assert error.code == "RATE_LIMITED"
        assert T - elapsed - 1 <= error.retry_after <= T     # the moment the next post may go, to the microsecond
        assert error.details["key"] == "records.create:posts" and error.details["remaining"] == 0
    other = await clients(pair[1])   # another user has a budget of their own
    assert isinstance((await outcomes(other, [new_post(await register(other))]))[0], dict)


async def test_limits_status_reports_the_shared_standing(pair, clients):
    a, b = await clients(pair[0]), await clients(pair[1])
    session = await register(a)
    await b.call("auth.resume", {"token": session["token"]})
    assert await a.call("limits.status", {"op": "records.create:posts"}) == {"limit": N, "remaining": N, "reset": 0}
    await a.call(*new_post(session))
    for client in (a, b, a):   # looking spends nothing, and both processes see the same standing
        standing = await client.call("limits.status", {"op": "records.create:posts"})
        assert standing["limit"] == N and standing["remaining"] == N - 1
        assert T - 5 < standing["reset"] <= T
    demo_create = await a.call("limits.status", {"op": "records.create"})   # the op's own bucket: untouched
    assert demo_create == {"limit": 20, "remaining": 20, "reset": 0}
    assert await a.call("limits.status", {"op": "records.list"}) == {"limit": None, "remaining": None, "reset": 0}
    for bad in ("no.such.op", "", "x" * 200):
        with pytest.raises(HaptaError) as refused:
            await a.call("limits.status", {"op": bad})
        assert refused.value.code == "BAD_REQUEST"
    guest = await clients(pair[0])
    with pytest.raises(HaptaError) as refused:
        await guest.call("limits.status", {"op": "auth.login"})
    assert refused.value.code == "UNAUTHENTICATED"      # guests may only call auth.* and ping (PROTOCOL.md)
    admin = await clients(pair[0])
    await admin.call("auth.admin", {"key": ADMIN_KEY})
    assert (await admin.call("limits.status", {"op": "records.create"}))["limit"] is None   # admins: unlimited


# ---- the demo app's limits, on the session's gateway ---------------------------------------------------------

async def test_demo_login_limit_is_five_a_minute_per_client_address(connect):
    address = next_loopback()
    first = await connect(local_addr=(address, 0))
    attempts = [("auth.login", {"identity": f"nobody{i}@example.com", "password": "wrong password"})
                for i in range(6)]
    started = time.monotonic()
    assert await outcomes(first, attempts[:5]) == ["INVALID_CREDENTIALS"] * 5
    same_address = await connect(local_addr=(address, 0))     # a new socket from there gains nothing
    with pytest.raises(HaptaError) as refused:
        await same_address.call(*attempts[5])
    assert refused.value.code == "RATE_LIMITED"
    assert 12 - (time.monotonic() - started) - 1 <= refused.value.retry_after <= 12   # one more every 12 s
    elsewhere = await connect()
    assert await outcomes(elsewhere, attempts[5:]) == ["INVALID_CREDENTIALS"]


async def test_demo_create_limit_is_ten_a_second_with_a_burst_of_twenty(user):
    client, session = await user()
    started = time.monotonic()
    results = await outcomes(client, [new_post(session, f"p{i}") for i in range(30)])
    elapsed = time.monotonic() - started
    created = sum(isinstance(r, dict) for r in results)
    assert 20 <= created <= 20 + int(elapsed * 10) + 1           # the burst, plus what refilled meanwhile
    assert all(r == "RATE_LIMITED" for r in results if not isinstance(r, dict))
    standing = await client.call("limits.status", {"op": "records.create"})
    refilled = int((time.monotonic() - started) * 10) + 1           # at most this much came back since the burst
    assert standing["limit"] == 20 and standing["remaining"] <= min(refilled, 19)
    other_client, other = await user()   # a second user is not slowed by the first
    assert all(isinstance(r, dict) for r in await outcomes(other_client, [new_post(other) for _ in range(20)]))


# ---- GET /metrics -------------------------------------------------------------------------------------------

async def test_metrics_count_requests_by_op_and_code_across_workers(pair, clients):
    _, _, before = await asyncio.to_thread(scrape, pair[0])
    a, b = await clients(pair[0]), await clients(pair[1])
    session = await register(b)
    results = await outcomes(b, [("ping", None)] * 7 + [new_post(session) for _ in range(N + 2)]
                             + [("records.get", {"collection": "posts", "id": "missing"}), ("no.such.op", None)])
    assert results.count("RATE_LIMITED") == 2
    await a.call("ping")
    status, content_type, after = await asyncio.to_thread(scrape, pair[0])   # asked of the other process
    assert status == 200 and content_type.startswith("text/plain; version=0.0.4")

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)
    assert grew("hapta_requests_total", op="ping", code="OK") == 8
    assert grew("hapta_requests_total", op="records.create", code="OK") == N
    assert grew("hapta_requests_total", op="records.create", code="RATE_LIMITED") == 2
    assert grew("hapta_requests_total", op="records.get", code="NOT_FOUND") == 1
    assert grew("hapta_requests_total", op="unknown", code="UNKNOWN_OP") == 1
    assert grew("hapta_rate_limited_total", key="records.create:posts") == 2
    assert grew("hapta_request_duration_seconds_count", op="records.create") == N + 2
    assert sample(after, "hapta_request_duration_seconds_bucket", op="ping", le="+Inf") >= 8
    assert sample(after, "hapta_connections") >= 2                         # a and b, on two processes
    assert sample(after, "hapta_limiter_redis_down") == 0 and "# HELP hapta_limiter_redis_down" in after
    for name in ("hapta_upstream_errors", "hapta_workers", "hapta_worker_restarts"):
        assert f"# HELP {name}" in after
    assert session["token"] not in after and "missing" not in after


async def test_metrics_need_the_admin_key_unless_asked_locally(pair):
    process = pair[0]
    assert (await asyncio.to_thread(scrape, process))[0] == 200                  # from 127.0.0.1
    proxied = {"X-Forwarded-For": "198.51.100.7"}                               # a local proxy relays the world
    status, challenge, body = await asyncio.to_thread(scrape, process, **proxied)
    assert status == 401 and challenge.startswith("Bearer") and "hapta_" not in body
    wrong = await asyncio.to_thread(scrape, process, Authorization="Bearer not-the-key", **proxied)
    assert wrong[0] == 401
    right = await asyncio.to_thread(scrape, process, Authorization=f"Bearer {ADMIN_KEY}", **proxied)
    assert right[0] == 200 and "hapta_requests_total" in right[2]


def test_metrics_networks_setting(tmp_path):
    base = {"HAPTA_JWT_SECRET": "s" * 40, "HAPTA_ANON_KEY": "a", "HAPTA_ADMIN_KEY": "b"}
    assert Settings.load(tmp_path, base).metrics_networks == ("127.0.0.0/8", "::1/128")
    assert Settings.load(tmp_path, {**base, "HAPTA_METRICS_NETWORKS": "none"}).metrics_networks == ()
    assert Settings.load(tmp_path, {**base, "HAPTA_METRICS_NETWORKS": "10.0.0.0/8, ::1"}).metrics_networks == (
        "10.0.0.0/8", "::1")
    with pytest.raises(SettingsError, match="HAPTA_METRICS_NETWORKS"):
        Settings.load(tmp_path, {**base, "HAPTA_METRICS_NETWORKS": "everyone"})
    assert Settings.load(tmp_path, {**base, "HAPTA_REDIS_PREFIX": "app1:"}).redis_prefix == "app1:"
