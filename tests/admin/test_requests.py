"""The request log (hapta/admin/requests.py) and the recent warnings (hapta/admin/warnings.py): the bounded buffer
alone; rows written for requests through the real request path (tests/harness.py, real PostgreSQL) with the right
fields and no secret; admins only; the chart; retention; a PostgreSQL that is down or slow costs rows (bounded,
counted), never a request."""
from __future__ import annotations

import asyncio
import logging
import secrets
import time

import asyncpg
import pyotp
import pytest

from hapta import metrics
from hapta.admin.requests import PRUNE_CHUNK, RequestBuffer, RequestLog
from hapta.config import RequestLogBounds
from hapta.principal import Principal
from hapta.protocol.errors import HaptaError
from hapta.store.postgres import Database
from tests.harness import PASSWORD
from tests.services import free_port


def row(n: int) -> tuple:
    return (time.time(), f"op{n}", None, "guest", "guest", None, "OK", 0.1, None)


def dropped_total() -> float:
    return metrics.REQUEST_LOG_ROWS.labels("dropped")._value.get()


# ---- the buffer alone ----

def test_a_full_buffer_drops_its_oldest_rows_and_counts_them():
    buffer = RequestBuffer(3)
    before = dropped_total()
    for n in range(5):
        buffer.add(row(n))
    assert [r[1] for r in buffer.rows] == ["op2", "op3", "op4"]
    assert buffer.dropped == 2 and dropped_total() - before == 2


def test_rows_a_write_failed_on_go_back_in_front_as_far_as_the_bound_leaves_room():
    buffer = RequestBuffer(4)
    for n in range(4):
        buffer.add(row(n))
    taken = buffer.take(3)
    assert [r[1] for r in taken] == ["op0", "op1", "op2"] and len(buffer) == 1
    buffer.add(row(4))
    buffer.put_back(taken)   # room for two of three: the oldest goes
    assert [r[1] for r in buffer.rows] == ["op1", "op2", "op3", "op4"] and buffer.dropped == 1
    buffer.put_back(buffer.take(0))
    assert len(buffer) == 4
    full = RequestBuffer(2)
    full.add(row(9))
    full.add(row(10))
    full.put_back([row(7), row(8)])   # no room at all: the failed rows, older than any waiting, go
    assert [r[1] for r in full.rows] == ["op9", "op10"] and full.dropped == 2


# ---- through the request path ----

async def logged(admin, **filters) -> list[dict]:
    return (await admin.call("admin.logs", filters))["items"]


async def test_every_request_leaves_a_row_with_who_what_and_how_it_went_and_no_secret(harness):
    user = await harness.user()
    me = user.user["id"]
    session = await user.call("auth.login", {"identity": user.user["email"], "password": PASSWORD})
    await user.call("auth.refresh", {"refresh_token": session["refresh_token"]})
    post = await user.call("records.create", {"collection": "posts", "data": {
        "author": me, "text": "a body the log must not keep", "public": True}})
    subscribed = await user.call("realtime.subscribe", {"collection": "posts",
                                                        "filter": "text = \"a filter value kept secret\""})
    with pytest.raises(HaptaError):
        await user.call("records.get", {"collection": "posts", "id": "no-such-post"})
    admin = await harness.admin()
    rows = await logged(admin, address=user.peer.address)
    by_op = {r["op"]: r for r in rows}
    assert [r["op"] for r in rows] == ["records.get", "realtime.subscribe", "records.create", "auth.refresh",
                                       "auth.login", "auth.register"]   # newest first
    assert by_op["auth.register"]["principal"] == "guest" and by_op["auth.register"]["role"] == "guest"
    created = by_op["records.create"]
    assert (created["collection"], created["principal"], created["role"], created["code"]) == \
        ("posts", me, "user", "OK")
    assert created["address"] == user.peer.address and created["duration_ms"] >= 0
    assert abs(created["at"] - time.time()) < 30
    assert by_op["realtime.subscribe"]["pos"] == subscribed["pos"]
    assert by_op["records.get"]["code"] == "NOT_FOUND" and by_op["records.create"]["pos"] is None
    # no secret anywhere in the table: the password, the tokens, the body, the filter's value
    table = await harness.gateway.db.fetchval("SELECT string_agg(r::text, ' ') FROM hapta.request_log r")
    for secret in (PASSWORD, session["token"], session["refresh_token"], "a body the log must not keep",
                   "a filter value kept secret", post["id"]):
        assert secret not in table
    # filters: by op, by outcome, keyset paging
    assert [r["op"] for r in await logged(admin, address=user.peer.address, outcome="error")] == ["records.get"]
    assert [r["op"] for r in await logged(admin, address=user.peer.address, op="auth.login")] == ["auth.login"]
    first = await admin.call("admin.logs", {"address": user.peer.address, "limit": 4})
    rest = await admin.call("admin.logs", {"address": user.peer.address, "before": first["next"]})
    assert [r["op"] for r in first["items"] + rest["items"]] == [r["op"] for r in rows] and rest["next"] is None


async def test_an_admins_actions_are_logged_under_the_admins_name(harness):
    admin = await harness.admin()
    user = await harness.user()
    await admin.call("records.create", {"collection": "posts", "data": {"author": user.user["id"], "text": "x"}})
    (row,) = await logged(admin, address=admin.peer.address, op="records.create")
    assert (row["principal"], row["role"], row["collection"]) == ("admin key", "admin", "posts")


async def test_an_admin_accounts_actions_carry_its_email_and_its_sign_in_leaves_no_secret(harness):
    email = f"a{secrets.token_hex(5)}@example.com"
    created = await harness.gateway.admins.create(email, PASSWORD, totp=True)
    code = pyotp.TOTP(created["totp"]["secret"]).now()
    admin = harness.device()
    signed = await admin.call("auth.admin.signin", {"email": email, "password": PASSWORD, "code": code})
    user = await harness.user()
    await admin.call("records.create", {"collection": "posts", "data": {"author": user.user["id"], "text": "y"}})
    rows = await logged(admin, address=admin.peer.address)
    assert [(r["op"], r["principal"], r["role"]) for r in rows if r["op"] != "admin.logs"] == [
        ("records.create", email, "admin"), ("auth.admin.signin", "guest", "guest")]
    table = await harness.gateway.db.fetchval("SELECT string_agg(r::text, ' ') FROM hapta.request_log r")
    for secret in (PASSWORD, signed["token"], created["totp"]["secret"]):   # (not the 6 digits: a time may hold them)
        assert secret not in table


async def test_only_admins_read_the_logs(harness):
    user = await harness.user()
    anon = await harness.anon()
    for device in (user, anon):
        for op in ("admin.logs", "admin.logs.chart", "admin.warnings"):
            with pytest.raises(HaptaError) as refused:
                await device.call(op)
            assert refused.value.code == "FORBIDDEN", op


async def test_the_chart_counts_answered_and_failed_requests_per_bucket(harness):
    user = await harness.user()
    since = time.time() - 1
    for _ in range(3):
        await user.call("ping")
    for _ in range(2):
        with pytest.raises(HaptaError):
            await user.call("records.get", {"collection": "posts", "id": "missing"})
    admin = await harness.admin()
    chart = await admin.call("admin.logs.chart", {"address": user.peer.address, "since": since, "bucket": 3600})
    assert sum(b["ok"] for b in chart["buckets"]) == 3 + 1   # and auth.register
    assert sum(b["errors"] for b in chart["buckets"]) == 2
    with pytest.raises(HaptaError) as refused:
        await admin.call("admin.logs.chart", {"since": 0, "bucket": 1})
    assert refused.value.code == "BAD_REQUEST"


async def test_rows_past_the_retention_are_pruned(harness):
    """Rows older than the retention go, a backlog larger than one DELETE removes (a retention just shortened) in
    one prune; the newer stay. (The gateway prunes by itself once a minute too: the test asks for what is left.)"""
    gateway = harness.gateway
    old = time.time() - gateway.app.request_log.retention - 60
    await gateway.db.execute("INSERT INTO hapta.request_log (at, op, principal, role, code, duration_ms, address) "
                             "SELECT $1, 'ping', 'guest', 'guest', 'OK', 1, 'pruned.example' "
                             "FROM generate_series(1, $2)", old, PRUNE_CHUNK * 2 + 5)
    user = await harness.user()
    await user.call("ping")
    await gateway.requests.prune()
    admin = await harness.admin()
    assert not await logged(admin, address="pruned.example")
    assert [r["op"] for r in await logged(admin, address=user.peer.address)] == ["ping", "auth.register"]


async def test_a_database_that_is_down_costs_rows_not_requests_and_stays_bounded():
    """A log on a PostgreSQL that refuses connections (a port nobody listens on): record never waits, a write fails
    within the pool's acquire timeout, and what waits stays within the bound, the rest counted as dropped."""
    pool = await asyncpg.create_pool(f"postgresql://hapta@127.0.0.1:{free_port()}/none", min_size=0)
    requests = RequestLog(Database(pool, acquire_timeout=0.5), RequestLogBounds(buffer=10, batch=4, interval=0.05))
    before = dropped_total()
    try:
        requests.start()
        started = time.perf_counter()
        for n in range(50):
            requests.record("ping", None, Principal(), "10.0.0.1", "OK", 0.001, {"id": n, "ok": True})
        assert time.perf_counter() - started < 0.05   # no I/O on the request path
        deadline = time.monotonic() + 10
        while not requests.failing:   # the writer has tried and failed
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        assert len(requests.buffer) <= 10
        assert requests.buffer.dropped >= 40 and dropped_total() - before == requests.buffer.dropped
        assert [r[0] for r in requests.buffer.rows] == sorted(r[0] for r in requests.buffer.rows)   # newest kept
    finally:
        await asyncio.wait_for(requests.close(), 5)   # closing does not hang on the dead database either
        await pool.close()


async def test_a_locked_table_slows_the_log_never_a_request(harness, pg_admin):
    """The table held under an exclusive lock by another session: the writer's COPY waits (the pool's
    lock_timeout), requests are answered as before, and once the lock goes the rows land."""
    gateway = harness.gateway
    user = await harness.user()
    locker = await asyncpg.connect(gateway.settings.database_url)
    try:
        transaction = locker.transaction()
        await transaction.start()
        await locker.execute("LOCK TABLE hapta.request_log IN ACCESS EXCLUSIVE MODE")
        for _ in range(20):
            started = time.perf_counter()
            await user.call("ping")
            assert time.perf_counter() - started < 0.5
        await asyncio.sleep(0)   # (one loop turn: the writer may start its COPY, which waits on the lock)
        await transaction.rollback()
    finally:
        await locker.close()
    admin = await harness.admin()
    rows = await logged(admin, address=user.peer.address, op="ping")
    assert len(rows) == 20


async def test_recent_warnings_are_kept_without_local_values(harness):
    admin = await harness.admin()
    logging.getLogger("hapta.test").warning("a warning for the logs page")
    try:
        secret_local = "a local value the page must not show"   # noqa: F841 (a frame's local)
        raise ValueError("it broke")
    except ValueError:
        logging.getLogger("hapta.test").warning("with its traceback", exc_info=True)
    logging.getLogger("elsewhere").warning("not the gateway's")
    answer = await admin.call("admin.warnings")
    newest, older = answer["warnings"][:2]
    assert (older["message"], older["logger"], older["level"]) == ("a warning for the logs page", "hapta.test",
                                                                   "WARNING")
    assert "ValueError: it broke" in newest["exception"]
    assert "a local value" not in newest["exception"]
    assert all(w["logger"] != "elsewhere" for w in answer["warnings"])


def test_the_settings_are_checked_at_start():
    from hapta.config import App, ConfigError, check_app
    check_app(App(collections=[], request_log=RequestLogBounds(enabled=False, retention=3600)))
    for wrong in ({"retention": 0}, {"buffer": 0}, {"batch": -1}, {"interval": 0}, {"enabled": "no"}):
        with pytest.raises(ConfigError, match="request_log"):
            check_app(App(collections=[], request_log=RequestLogBounds(**wrong)))
