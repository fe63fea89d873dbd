"""@every: a scheduled function runs once per tick across two gateway processes on one database, and its runs are
recorded for functions.runs. (A 6-field cron, seconds last, keeps the test to seconds.)"""
from __future__ import annotations

import asyncio
import secrets
import textwrap
import time

import asyncpg

from hapta.client import Client
from tests.conftest import ADMIN_KEY, gateway_env
from tests.services import GatewayProcess, next_loopback, write_app


async def test_a_tick_runs_once_across_two_processes_and_is_recorded(database, tmp_path):
    table = f"ticks_{secrets.token_hex(4)}"
    folder = tmp_path / "app"
    config = write_app(folder, """
        import dataclasses, runpy
        app = dataclasses.replace(runpy.run_path(APP + "/config.py")["app"], function_workers=1)
    """)
    (folder / "functions").mkdir()
    (folder / "functions" / "jobs.py").write_text(textwrap.dedent(f'''
        from hapta.functions import every

        @every("* * * * * *")   # every second
        async def stamp(ctx, tick):
            await ctx.sql("CREATE TABLE IF NOT EXISTS {table} (tick text, pid int)")
            import os
            await ctx.sql("INSERT INTO {table} VALUES ($1, $2)", tick["at"], os.getppid())
    '''))
    nodes = [GatewayProcess(gateway_env(database), config=config) for _ in range(2)]
    await asyncio.gather(*(asyncio.to_thread(node.start) for node in nodes))
    conn = await asyncpg.connect(database)
    try:
        deadline = time.monotonic() + 30
        rows: list = []
        while time.monotonic() < deadline:
            exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table)
            rows = await conn.fetch(f"SELECT tick, pid FROM {table}") if exists else []
            if len(rows) >= 6:
                break
            await asyncio.sleep(0.2)
        ticks = [row["tick"] for row in rows]
        assert len(ticks) >= 6, f"only {ticks} ran in 30 s"
        assert len(set(ticks)) == len(ticks), f"a tick ran twice: {sorted(ticks)}"
        runner_pids = {row["pid"] for row in rows}
        assert runner_pids <= {node.proc.pid for node in nodes}   # gateways ran them (ppid of their workers)

        async with await Client.connect(nodes[0].url, local_addr=(next_loopback(), 0)) as admin:
            await admin.call("auth.admin", {"key": ADMIN_KEY})
            runs = (await admin.call("functions.runs", {"name": "stamp"}))["runs"]
            listed = (await admin.call("functions.list"))["functions"]
        assert [f["triggers"] for f in listed if f["name"] == "stamp"] == [["every * * * * * *"]]
        finished = [run for run in runs if run["outcome"] is not None]
        assert finished and all(run["outcome"] == "ok" and run["trigger"] == "every * * * * * *" for run in finished)
        # and it is not callable over the socket: it declares no call trigger
        async with await Client.connect(nodes[1].url, local_addr=(next_loopback(), 0)) as admin:
            await admin.call("auth.admin", {"key": ADMIN_KEY})
            try:
                await admin.call("functions.call", {"name": "stamp"})
            except Exception as error:
                assert getattr(error, "code", None) == "NOT_FOUND"
            else:
                raise AssertionError("a scheduled function was callable")
    finally:
        await conn.close()
        for node in nodes:
            node.stop()
    for node in nodes:
        assert "Traceback" not in node.log_text(), node.log_text()


async def test_reload_picks_up_a_changed_function(database, tmp_path):
    from tests.hooks.conftest import serve_with_reload
    folder = tmp_path / "app"
    config = write_app(folder, """
        import dataclasses, runpy
        app = dataclasses.replace(runpy.run_path(APP + "/config.py")["app"], function_workers=1)
    """)
    (folder / "functions").mkdir()
    source = folder / "functions" / "greet.py"
    version = '''
from hapta.functions import call

@call(allow="")
def greet(ctx, args):
    return "VERSION"
'''
    source.write_text(version.replace("VERSION", "hello"))
    process = await asyncio.to_thread(serve_with_reload(config, gateway_env(database)).start)
    try:
        async with await Client.connect(process.url, local_addr=(next_loopback(), 0)) as client:
            await client.call("auth.admin", {"key": ADMIN_KEY})
            assert await client.call("functions.call", {"name": "greet"}) == "hello"
            source.write_text(version.replace("VERSION", "hello again") + '''
@call(allow="")
def added(ctx, args):
    return "new"
''')
            deadline = time.monotonic() + 30
            while True:   # the gateway notices within its polling interval, then starts new workers
                try:
                    if await client.call("functions.call", {"name": "added"}) == "new":
                        break
                except Exception as error:
                    assert getattr(error, "code", None) == "NOT_FOUND", error
                assert time.monotonic() < deadline, "the changed functions/ was never picked up"
                await asyncio.sleep(0.1)
            assert await client.call("functions.call", {"name": "greet"}) == "hello again"
    finally:
        process.stop()
    assert "functions reloaded: added, greet" in process.log_text()


async def test_a_reload_whose_declarations_are_refused_keeps_the_running_functions(database, tmp_path):
    """A new functions/ that imports but declares what it may not (the gateway's own secret) is refused as a whole:
    the running workers keep serving the version that was accepted, not the refused files."""
    from tests.hooks.conftest import serve_with_reload
    folder = tmp_path / "app"
    config = write_app(folder, """
        import dataclasses, runpy
        app = dataclasses.replace(runpy.run_path(APP + "/config.py")["app"], function_workers=1)
    """)
    (folder / "functions").mkdir()
    source = folder / "functions" / "greet.py"
    version = '''
from hapta.functions import call

@call(allow="", secrets=SECRETS)
def greet(ctx, args):
    return "VERSION"
'''
    source.write_text(version.replace("VERSION", "accepted").replace("SECRETS", "()"))
    process = await asyncio.to_thread(serve_with_reload(config, gateway_env(database)).start)
    try:
        async with await Client.connect(process.url, local_addr=(next_loopback(), 0)) as client:
            await client.call("auth.admin", {"key": ADMIN_KEY})
            assert await client.call("functions.call", {"name": "greet"}) == "accepted"
            source.write_text(version.replace("VERSION", "refused").replace("SECRETS", '("HAPTA_JWT_SECRET",)'))
            deadline = time.monotonic() + 30
            while "functions/ does not load, the running ones stay" not in process.log_text():
                assert time.monotonic() < deadline, "the changed functions/ was never looked at"
                await asyncio.sleep(0.1)
            assert await client.call("functions.call", {"name": "greet"}) == "accepted"
            assert (await client.call("functions.status"))["generation"] == 0
    finally:
        process.stop()
    assert "greet may not read HAPTA_JWT_SECRET" in process.log_text()
