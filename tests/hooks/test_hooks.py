"""Rule hooks through a real gateway (tests/apps/hooks): what a client sees, and that the pool heals itself.

Each failure mode is followed by a request that must work and by the pool back at full size (rules.status).
"""
from __future__ import annotations

import asyncio
import secrets

import pytest

from hapta.client import HaptaError
from hapta.isolation import keep_environ
from tests.conftest import ADMIN_KEY, ANON_KEY, gateway_env
from tests.hooks.conftest import (announced_tracebacks_only, eventually, full_pool, hooks_app_copy, log_shows,
                                  serve_with_reload)
from tests.services import GatewayProcess


@pytest.fixture
async def anon(client_of, hooks_gateway):
    return await client_of(hooks_gateway)


@pytest.fixture
async def admin(client_of, hooks_gateway):
    return await client_of(hooks_gateway, "admin")


def create(client, action: str, text: str = "", **data):
    return client.call("records.create", {"collection": "items", "data": {"action": action, "text": text, **data}})


async def still_works(client, admin) -> None:
    """The next request works and every worker is back."""
    item = await create(client, "edit", " next ")
    assert item["text"] == "NEXT" and item["tag"] == "edited"
    await full_pool(admin)


async def test_a_hook_edits_the_data(anon):
    item = await create(anon, "edit", "  hello  ")
    assert item["text"] == "HELLO" and item["tag"] == "edited"
    assert (await anon.call("records.get", {"collection": "items", "id": item["id"]}))["text"] == "HELLO"


async def test_a_hook_gets_and_returns_timestamps(anon):
    item = await create(anon, "later", due="2024-02-28T12:00:00Z")
    assert item["due"] == "2024-02-29T12:00:00Z"


async def test_a_hook_denies(anon, admin):
    text = secrets.token_hex(4)
    with pytest.raises(HaptaError) as refused:
        await create(anon, "deny", text)
    assert refused.value.code == "RULE_DENIED" and str(refused.value) == "items may not say that"
    page = await anon.call("records.list", {"collection": "items", "filter": f'text = "{text}"'})
    assert page["items"] == []
    await still_works(anon, admin)


async def test_a_hook_knows_who_asks_and_no_secret(anon, hooks_gateway):
    item = await create(anon, "whoami")
    assert item["text"].split(" ")[:4] == ["anon", "records.create", "items", "None"]
    assert item["text"].split(" ")[4].startswith("127.")   # the client's address
    environ = (await create(anon, "environ"))["text"]
    names = {line.split("=", 1)[0] for line in environ.splitlines()}
    assert "PATH" in names
    assert all(keep_environ()(name) for name in names), names   # the allowlist, nothing else
    for name in ("HAPTA_JWT_SECRET", "HAPTA_ADMIN_KEY", "HAPTA_ANON_KEY", "DATABASE_URL"):
        assert hooks_gateway.env[name] not in environ   # not under another name either
    assert ADMIN_KEY not in environ and ANON_KEY not in environ


async def test_a_hook_past_its_deadline_is_killed_and_replaced(anon, admin):
    before = await admin.call("rules.status")
    with pytest.raises(HaptaError) as late:
        await create(anon, "hang")
    assert late.value.code == "TIMEOUT"
    assert "items.before_create" in str(late.value)
    await still_works(anon, admin)
    assert (await admin.call("rules.status"))["timeouts"] == before["timeouts"] + 1


async def test_a_worker_that_exits_is_replaced(anon, admin):
    before = await admin.call("rules.status")
    with pytest.raises(HaptaError) as died:
        await create(anon, "exit")
    assert died.value.code == "UNAVAILABLE" and died.value.retry_after > 0
    await still_works(anon, admin)
    assert (await admin.call("rules.status"))["deaths"] == before["deaths"] + 1


async def test_a_hook_that_raises_is_internal_for_the_client_and_a_traceback_for_the_operator(
        anon, admin, hooks_gateway):
    before = await admin.call("rules.status")
    with pytest.raises(HaptaError) as failed:
        await create(anon, "raise")
    assert failed.value.code == "INTERNAL" and str(failed.value) == "internal error"
    await eventually(log_shows(hooks_gateway, 'raise ValueError("a bug in the hook")'))
    log = hooks_gateway.log_text()
    assert "ERROR hapta.hooks: hook items.before_create failed:\nTraceback" in log
    assert "ValueError: a bug in the hook" in log
    announced_tracebacks_only(log)
    await still_works(anon, admin)
    after = await admin.call("rules.status")
    assert after["deaths"] == before["deaths"]   # an exception costs the call, not the worker


async def test_a_value_that_cannot_travel_is_internal(anon, admin, hooks_gateway):
    with pytest.raises(HaptaError) as failed:
        await create(anon, "odd")
    assert failed.value.code == "INTERNAL"
    await still_works(anon, admin)


async def test_a_slow_hook_does_not_hold_calls_from_other_connections(client_of, hooks_gateway, admin):
    slow_client, fast_client, releaser = [await client_of(hooks_gateway) for _ in range(3)]
    key = secrets.token_hex(6)
    slow = asyncio.ensure_future(create(slow_client, "hold", key))
    await eventually(lambda: _busy(admin, 1))
    for i in range(5):
        item = await create(fast_client, "edit", f"fast {i}")
        assert item["text"] == f"FAST {i}"
    assert not slow.done()   # it is still held: the fast calls went past it
    await releaser.call("records.create", {"collection": "plain", "data": {"text": key}})
    held = await slow
    assert held["tag"] == "released" and held["text"] == key
    await still_works(fast_client, admin)


async def _busy(admin, count: int) -> bool:
    return (await admin.call("rules.status"))["busy"] >= count


async def test_replies_never_cross(client_of, hooks_gateway, admin):
    """200 calls from 20 connections through 2 workers, each payload distinct, each reply checked against it."""
    clients = [await client_of(hooks_gateway) for _ in range(20)]
    run = secrets.token_hex(4)

    async def one_client(n: int, client) -> list[str]:
        async def one(i: int) -> str:
            payload = f"{run}-{n}-{i}-{secrets.token_hex(8)}"
            item = await create(client, "echo", payload)
            assert item["text"] == payload[::-1] and item["action"] == "echo"
            return item["tag"]
        return await asyncio.gather(*(one(i) for i in range(10)))

    workers = [pid for pids in await asyncio.gather(*(one_client(n, c) for n, c in enumerate(clients)))
               for pid in pids]
    assert len(workers) == 200
    assert len(set(workers)) == 2   # both workers served, and none besides them
    status = await full_pool(admin)
    assert status["rejected"] == 0 and status["queued"] == 0


async def test_a_collection_without_hooks_costs_no_call(anon, admin):
    before = await admin.call("rules.status")
    assert before["hooks"] == {"counted": ["after_create"],
                               "items": ["before_create", "before_delete", "before_update"]}
    for i in range(5):
        record = await anon.call("records.create", {"collection": "plain", "data": {"text": f"p{i}"}})
        await anon.call("records.update", {"collection": "plain", "id": record["id"], "data": {"text": "q"}})
        await anon.call("records.delete", {"collection": "plain", "id": record["id"]})
    assert (await admin.call("rules.status"))["calls"] == before["calls"]


async def test_before_update_sql_runs_in_the_writes_transaction(anon):
    item = await create(anon, "plain", "one")
    updated = await anon.call("records.update", {"collection": "items", "id": item["id"], "data": {"text": "two"}})
    # The hook's UPDATE of the same (locked) row went through at once: it runs inside the write's transaction.
    assert updated["text"] == "two" and updated["tag"] == "touched in the transaction"


async def test_a_statement_past_the_deadline_rolls_the_write_back(anon, admin):
    item = await create(anon, "plain", "one")
    with pytest.raises(HaptaError) as late:
        await anon.call("records.update", {"collection": "items", "id": item["id"],
                                           "data": {"action": "slow-sql", "text": "two"}})
    assert late.value.code == "TIMEOUT"
    again = await anon.call("records.get", {"collection": "items", "id": item["id"]})
    assert again["text"] == "one" and again["tag"] is None and again["version"] == item["version"]
    updated = await anon.call("records.update", {"collection": "items", "id": item["id"], "data": {"text": "three"}})
    assert updated["text"] == "three"
    await full_pool(admin)


async def test_before_delete_may_refuse(anon):
    kept, other = await create(anon, "keep"), await create(anon, "plain")
    with pytest.raises(HaptaError) as refused:
        await anon.call("records.delete", {"collection": "items", "id": kept["id"]})
    assert refused.value.code == "RULE_DENIED" and str(refused.value) == "this item is kept"
    assert (await anon.call("records.get", {"collection": "items", "id": kept["id"]}))["id"] == kept["id"]
    assert await anon.call("records.delete", {"collection": "items", "id": other["id"]}) == {"id": other["id"]}


async def test_after_hooks_run_after_the_reply(anon, admin, hooks_gateway):
    key = secrets.token_hex(4)
    for _ in range(3):
        await anon.call("records.create", {"collection": "counted", "data": {"text": key}})

    async def counted():
        try:
            return (await admin.call("records.get", {"collection": "tallies", "id": key}))["n"] == 3
        except HaptaError:
            return False
    await eventually(counted)
    # A failing after hook cannot take back a reply that is already sent; the operator sees the traceback.
    record = await anon.call("records.create", {"collection": "counted", "data": {"text": "raise"}})
    assert record["text"] == "raise"
    await eventually(log_shows(hooks_gateway, "RuntimeError: a bug in an after hook"))
    assert "hook counted.after_create failed:" in hooks_gateway.log_text()


async def test_rules_status_is_for_admins(anon):
    with pytest.raises(HaptaError) as refused:
        await anon.call("rules.status")
    assert refused.value.code == "FORBIDDEN"


async def test_a_full_queue_answers_unavailable_at_once(tmp_path, hooks_database, client_of):
    config = hooks_app_copy(tmp_path / "app", rule_queue=2, hook_timeout=10.0)
    process = GatewayProcess(gateway_env(hooks_database), config=config).start()
    try:
        admin, releaser = await client_of(process, "admin"), await client_of(process)
        clients = [await client_of(process) for _ in range(5)]
        key = secrets.token_hex(6)
        held = [asyncio.ensure_future(create(c, "hold", key)) for c in clients[:2]]
        await eventually(lambda: _busy(admin, 2))
        queued = [asyncio.ensure_future(create(c, "edit", "queued")) for c in clients[2:4]]
        await eventually(lambda: _queued(admin, 2))
        with pytest.raises(HaptaError) as busy:
            await create(clients[4], "edit", "one too many")
        assert busy.value.code == "UNAVAILABLE" and busy.value.retry_after > 0
        await releaser.call("records.create", {"collection": "plain", "data": {"text": key}})
        assert [r["tag"] for r in await asyncio.gather(*held)] == ["released", "released"]
        assert [r["text"] for r in await asyncio.gather(*queued)] == ["QUEUED", "QUEUED"]
        assert (await create(clients[4], "edit", "now"))["text"] == "NOW"
        assert (await admin.call("rules.status"))["rejected"] == 1
    finally:
        process.stop()
    announced_tracebacks_only(process.log_text())


async def _queued(admin, count: int) -> bool:
    return (await admin.call("rules.status"))["queued"] >= count


async def test_reload_restarts_the_workers_when_a_rules_file_changes(tmp_path, hooks_database, client_of):
    config = hooks_app_copy(tmp_path / "app", copy_rules=True)
    rules = config.parent / "rules" / "items.py"
    process = serve_with_reload(config, gateway_env(hooks_database)).start()
    try:
        anon, admin = await client_of(process), await client_of(process, "admin")
        assert (await create(anon, "edit", "Hello"))["text"] == "HELLO"
        rules.write_text(rules.read_text().replace("text.strip().upper()", "text.strip().lower()"))

        async def lowered():
            return (await create(anon, "edit", "Hello"))["text"] == "hello"
        await eventually(lowered)
        status = await full_pool(admin)
        assert status["generation"] == 1

        # A broken edit is reported and changes nothing: the running workers stay.
        rules.write_text(rules.read_text() + "\ndef broken(:\n")
        await eventually(log_shows(process, "rules/ does not load, the running workers stay: rules/items.py:"))
        assert (await create(anon, "edit", "Still")) ["text"] == "still"
        assert (await admin.call("rules.status"))["generation"] == 1
    finally:
        process.stop()
    assert "SyntaxError" in process.log_text()
