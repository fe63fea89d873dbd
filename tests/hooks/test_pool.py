"""The worker pool on its own: real worker processes and a real database, no gateway in between."""
from __future__ import annotations

import asyncio
import multiprocessing
import secrets
import textwrap

import asyncpg
import pytest

from hapta.hooks.service import HOOK_WORKERS
from hapta.protocol.errors import HaptaError
from hapta.workers.loading import LoadError
from hapta.workers.messages import Returned, Who
from hapta.workers.pool import WorkerPool

WHO = Who(None, "anon", "records.create", "things", "127.0.0.1")

RULES = '''
import asyncio, os, random, time
from hapta.rules import SqlError

async def before_create(ctx, data):
    if data.get("sleep"):
        time.sleep(data["sleep"])
    if "query" in data:
        try:
            return {"rows": await ctx.sql(data["query"], *data.get("params", []))}
        except SqlError as exc:
            return {"sqlstate": exc.sqlstate}
    await asyncio.sleep(random.random() / 1000)
    return {"echo": data["n"] * 2, "pid": os.getpid()}
'''


@pytest.fixture
def rules(tmp_path):
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "things.py").write_text(textwrap.dedent(RULES))
    return folder


@pytest.fixture
async def database_pool(database):
    pool = await asyncpg.create_pool(database, min_size=1, max_size=4)
    yield pool
    await pool.close()


async def start_pool(rules, **options) -> WorkerPool:
    pool = WorkerPool(HOOK_WORKERS, rules, {"things"}, **{"size": 2, "timeout": 5.0, "queue_limit": 1000, **options})
    await pool.start()
    return pool


def our_workers() -> list:
    """Hook workers this process started and that are still alive, but those of pools that outlive the test (the
    in-process gateway's, tests/harness.py): what a closed pool must not leave behind."""
    return [p for p in multiprocessing.active_children() if p.name == "hapta-hooks" and p.pid not in _SHARED]


_SHARED: set[int] = set()


@pytest.fixture(autouse=True)
def _others_workers():
    _SHARED.clear()
    _SHARED.update(p.pid for p in multiprocessing.active_children() if p.name == "hapta-hooks")


async def test_answers_never_cross_between_calls(rules, database_pool):
    pool = await start_pool(rules, size=3)
    try:
        numbers = [secrets.randbelow(10**12) for _ in range(600)]
        outcomes = await asyncio.gather(*(pool.call("things", "before_create", WHO, [{"n": n}], database_pool.fetch)
                                          for n in numbers))
        assert [o.value["echo"] for o in outcomes] == [n * 2 for n in numbers]
        assert len({o.value["pid"] for o in outcomes}) == 3
        assert pool.status()["calls"] == 600 and pool.status()["live"] == 3
    finally:
        await pool.close()
    assert our_workers() == []


async def test_ctx_sql_reaches_the_database_through_the_gateway(rules, database_pool):
    pool = await start_pool(rules)
    try:
        outcome = await pool.call("things", "before_create", WHO,
                                  [{"query": "SELECT $1::int + 1 AS n, 'x' AS s", "params": [41]}],
                                  database_pool.fetch)
        assert outcome == Returned(outcome.call, {"rows": [{"n": 42, "s": "x"}]})
        broken = await pool.call("things", "before_create", WHO, [{"query": "SELEKT 1"}], database_pool.fetch)
        assert broken.value == {"sqlstate": "42601"}   # a syntax error, handed to the hook as SqlError
    finally:
        await pool.close()


async def test_a_call_never_waits_in_the_queue_past_the_deadline(rules, database_pool):
    pool = await start_pool(rules, size=1, timeout=1.0)
    try:
        hung = asyncio.ensure_future(pool.call("things", "before_create", WHO, [{"sleep": 60, "n": 1}],
                                               database_pool.fetch))
        await asyncio.sleep(0)
        queued = asyncio.ensure_future(pool.call("things", "before_create", WHO, [{"n": 2}], database_pool.fetch))
        results = await asyncio.gather(hung, queued, return_exceptions=True)
        assert [r.code for r in results] == ["TIMEOUT", "UNAVAILABLE"]
        assert results[1].retry_after == 1.0
        while pool.status()["live"] < 1:
            await asyncio.sleep(0.01)
        assert (await pool.call("things", "before_create", WHO, [{"n": 3}], database_pool.fetch)).value["echo"] == 6
    finally:
        await pool.close()
    assert our_workers() == []


async def test_a_restart_lets_calls_under_way_finish_on_the_old_workers(rules, database_pool):
    pool = await start_pool(rules)
    try:
        slow = asyncio.ensure_future(pool.call("things", "before_create", WHO, [{"sleep": 0.5, "n": 1}],
                                               database_pool.fetch))
        await asyncio.sleep(0)
        old = {w.pid for w in pool.workers}
        (rules / "things.py").write_text(RULES.replace('data["n"] * 2', 'data["n"] * 3'))
        await pool.restart()
        assert pool.status()["generation"] == 1 and not {w.pid for w in pool.workers} & old
        assert (await slow).value["echo"] == 2   # answered by the old code, on its old worker
        fresh = await pool.call("things", "before_create", WHO, [{"n": 1}], database_pool.fetch)
        assert fresh.value["echo"] == 3
        assert pool.status()["live"] == 2
    finally:
        await pool.close()
    assert our_workers() == []


async def test_rules_that_do_not_load_stop_the_start_and_leave_no_process(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "things.py").write_text("def before_create(ctx, data):\n    return data\nboom = 1 / 0\n")
    pool = WorkerPool(HOOK_WORKERS, rules, {"things"}, size=2, timeout=1.0, queue_limit=10)
    with pytest.raises(LoadError) as failed:
        await pool.start()
    assert str(failed.value) == "rules/things.py:3: ZeroDivisionError: division by zero"
    assert "Traceback" in failed.value.traceback
    await pool.close()
    assert our_workers() == []


async def test_a_closed_pool_answers_unavailable(rules, database_pool):
    pool = await start_pool(rules)
    await pool.close()
    with pytest.raises(HaptaError) as closed:
        await pool.call("things", "before_create", WHO, [{"n": 1}], database_pool.fetch)
    assert closed.value.code == "UNAVAILABLE"
