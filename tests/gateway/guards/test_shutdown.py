"""SIGTERM, for one process and for a supervisor with two workers: the gateway stops accepting, a request in
flight still gets its reply, new requests on open sockets get UNAVAILABLE, then every socket closes with 1001 and
everything has exited within 10 s."""
from __future__ import annotations

import asyncio
import secrets
import signal
import time
import contextlib
from contextlib import asynccontextmanager

import asyncpg
import pytest

from hapta.client import Client, HaptaError
from tests.conftest import ADMIN_KEY, ANON_KEY, PASSWORD, gateway_env
from tests.gateway.guards.conftest import alive, eventually, two_pids
from tests.services import GatewayProcess, next_loopback


@asynccontextmanager
async def posts_locked(dsn: str):
    """Hold an exclusive lock on posts, so that a records.list on it waits: a request kept in flight."""
    conn = await asyncpg.connect(dsn)
    try:
        transaction = conn.transaction()
        await transaction.start()
        await conn.execute("LOCK TABLE posts IN ACCESS EXCLUSIVE MODE")
        yield
        await transaction.rollback()
    finally:
        await conn.close()


async def waiting_on_lock(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                   "AND wait_event_type = 'Lock'")
    finally:
        await conn.close()


def refuses_connections(process: GatewayProcess) -> bool:
    try:
        process.health(timeout=1)
    except OSError:
        return True
    return False


async def sigterm_with_a_request_in_flight(process: GatewayProcess, database: str) -> None:
    client = await Client.connect(process.url, local_addr=(next_loopback(), 0))
    try:
        await client.call("auth.anon", {"apikey": ANON_KEY})
        async with posts_locked(database):
            in_flight = asyncio.ensure_future(client.call("records.list", {"collection": "posts", "per_page": 1}))
            await eventually(lambda: waiting_on_lock(database), what="the request waits on the lock")
            signalled = time.monotonic()
            process.proc.send_signal(signal.SIGTERM)
            await eventually(lambda: refuses_connections(process), what="new connections are refused")
            with pytest.raises(HaptaError) as refused:   # the socket is open, but the server is draining
                await client.call("ping")
            assert refused.value.code == "UNAVAILABLE" and refused.value.retry_after
            assert not in_flight.done()
        page = await asyncio.wait_for(in_flight, 10)   # the lock is gone: the reply arrives ...
        assert page["page"] == 1
        await asyncio.wait_for(client.ws.wait_closed(), 10)   # ... and only then the close
        assert client.close_code == 1001
        code = await asyncio.to_thread(process.proc.wait, 15)
        assert time.monotonic() - signalled < 10
        assert code == 0
    finally:
        await client.close()


async def test_sigterm_drains_one_process(database):
    process = GatewayProcess(gateway_env(database)).start()
    try:
        await sigterm_with_a_request_in_flight(process, database)
    finally:
        process.stop()
    assert "Traceback" not in process.log_text(), process.log_text()


async def test_sigterm_drains_a_supervisor_and_its_workers(database):
    process = GatewayProcess(gateway_env(database), workers=2).start()
    try:
        workers = await eventually(lambda: two_pids(process), what="both workers answer")
        await sigterm_with_a_request_in_flight(process, database)
        assert not any(alive(pid) for pid in workers)
    finally:
        process.stop()
    assert "Traceback" not in process.log_text(), process.log_text()


async def test_sigterm_under_load_closes_every_socket_with_1001_and_serves_nothing_unanswered(database):
    """280 sockets writing when SIGTERM comes (issue 11, item 13): every one closes with 1001 (none sees 1006), and
    what the gateway did is exactly what it answered: every create with an OK reply is stored, and no other."""
    process = GatewayProcess(gateway_env(database)).start()
    clients = []
    try:
        author = await Client.connect(process.url, local_addr=(next_loopback(), 0))
        session = await author.call("auth.register", {"email": f"drain-{secrets.token_hex(4)}@example.com",
                                                      "password": PASSWORD})
        tag = "drain-" + secrets.token_hex(4)
        for _ in range(280):
            client = await Client.connect(process.url, local_addr=(next_loopback(), 0))
            await client.call("auth.admin", {"key": ADMIN_KEY})
            clients.append(client)
        ok: list[str] = []

        async def write(client, n: int) -> None:
            batch = 0
            while True:
                batch += 1
                texts = [f"{tag} {n} {batch} {i}" for i in range(3)]
                replies = await asyncio.gather(*(client.call("records.create", {"collection": "posts", "data": {
                    "author": session["user"]["id"], "text": text}}) for text in texts), return_exceptions=True)
                for text, reply in zip(texts, replies):
                    if isinstance(reply, dict):
                        ok.append(text)
                    elif isinstance(reply, HaptaError):
                        assert reply.code == "UNAVAILABLE" and reply.retry_after, reply
                if any(isinstance(reply, ConnectionError) for reply in replies):
                    return
        writers = [asyncio.ensure_future(write(client, n)) for n, client in enumerate(clients)]
        await eventually(lambda: len(ok) > 2000, what="the writers are under way")
        process.proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(asyncio.gather(*writers), 20)
        assert await asyncio.to_thread(process.proc.wait, 15) == 0
        codes = {client.close_code for client in clients}
        assert codes == {1001}, codes
        conn = await asyncpg.connect(database)
        try:
            stored = {r["text"] for r in await conn.fetch("SELECT text FROM posts WHERE text LIKE $1", tag + " %")}
        finally:
            await conn.close()
        assert stored == set(ok)
    finally:
        for client in clients:
            await client.close()
        process.stop()
    assert "Traceback" not in process.log_text(), process.log_text()


SLOW_HOOK = '''
import time
from hapta.functions import http

@http("POST", "/hooks/slow", timeout=8)
def slow(ctx, request):
    time.sleep(1.5)
    return {"slept": True}
'''


async def test_sigterm_answers_a_webhook_in_flight_and_closes_idle_http(database, tmp_path_factory):
    """Plain HTTP (h11's connections, which websockets does not know of) on SIGTERM: a webhook whose function is
    running gets its answer, with Connection: close; a kept-alive connection waiting for its next request is
    closed at once; the process exits within 10 s."""
    import textwrap
    from tests.http1 import Raw, post
    from tests.services import write_app
    folder = tmp_path_factory.mktemp("shutdown-http") / "app"
    config = write_app(folder, """
        import runpy
        app = runpy.run_path(APP + "/config.py")["app"]
    """)
    (folder / "functions").mkdir()
    (folder / "functions" / "hooks.py").write_text(textwrap.dedent(SLOW_HOOK))
    process = GatewayProcess(gateway_env(database), config=config).start()
    try:
        async with await Raw.open(process.port) as idle, await Raw.open(process.port) as busy:
            await idle.send(post("/nowhere", b""))
            assert (await idle.answer()).status == 404   # kept alive: it now waits for its next request
            await busy.send(post("/hooks/slow", b"{}"))

            async def running() -> bool:
                conn = await asyncpg.connect(database)
                try:
                    return bool(await conn.fetchval("SELECT count(*) FROM hapta.function_runs WHERE name = 'slow' "
                                                    "AND finished IS NULL"))
                finally:
                    await conn.close()
            await eventually(running, what="the webhook's run to start")
            signalled = time.monotonic()
            process.proc.send_signal(signal.SIGTERM)
            assert await idle.closed(3)
            answer = await busy.answer(10)
            assert answer.status == 200 and answer.json() == {"slept": True}
            assert answer.headers["connection"] == "close" and await busy.closed(3)
        code = await asyncio.to_thread(process.proc.wait, 15)
        assert time.monotonic() - signalled < 10 and code == 0
    finally:
        process.stop()
    assert "Traceback" not in process.log_text(), process.log_text()


# What a stop said that it must not: workers replaced as if they had died, asyncio's unretrieved futures, a
# supervisor restarting what was told to stop.
NOISE = ("while idle", "starting another", "never retrieved", "restarting it", "could not start", "Traceback")


def app_with_functions(folder) -> "Path":
    """The test app (tests/app: the demo's rules and migrations) with a functions/ folder of its own, so that it
    runs function workers beside the rule workers. Not the app at the repository's root: only tests/demo reads that
    (a user replaces it)."""
    from tests.services import APP
    for part in ("migrations", "rules"):
        (folder / part).symlink_to(APP / part)
    (folder / "functions").mkdir()
    (folder / "functions" / "tick.py").write_text(
        "from hapta.functions import every\n\n\n@every('0 * * * *')\nasync def tick(ctx, when):\n    pass\n")
    # not a link: the gateway takes the app's folder from where config.py really is
    (folder / "config.py").write_text(f"import runpy\napp = runpy.run_path({str(APP / 'config.py')!r})['app']\n")
    return folder / "config.py"


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_to_every_process_at_once_stops_quietly(pg_admin, workers, tmp_path):
    """systemd's default stop (KillMode=control-group) sends SIGTERM to every process of the service at once: the
    gateway's process group and the rule and function workers, which lead groups of their own. Each stops without
    a word of alarm, and all of them are gone."""
    import os
    import psutil
    from tests.services import create_database, drop_database
    dsn = await create_database(pg_admin)   # an app with rules/ and functions/, on a database of its own
    config = app_with_functions(tmp_path)
    process = GatewayProcess(gateway_env(dsn), config=config, workers=workers, own_group=True).start()
    try:
        everyone = psutil.Process(process.proc.pid).children(recursive=True)
        assert len(everyone) >= 4 * workers   # 2 rule and 2 function workers per gateway process (App defaults)
        os.killpg(process.proc.pid, signal.SIGTERM)
        for child in everyone:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.proc.wait, 15)
        assert code == 0, process.log_text()
        await eventually(lambda: not any(alive(child.pid) for child in everyone), what="every worker is gone")
    finally:
        process.stop()
        await drop_database(pg_admin, dsn)
    text = process.log_text()
    assert "shutting down" in text and not [line for line in text.splitlines() if any(n in line for n in NOISE)], text
