"""The development loop: `hapta serve --reload` restarts itself when config.py or migrations/ change (a new
collection and its table appear without a manual restart); `hapta psql`, `hapta reset` and `hapta admin`."""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from hapta.client import Client
from tests.conftest import ADMIN_KEY, gateway_env
from tests.services import APP, write_app

NOTES_MIGRATION = """CREATE TABLE notes (
  id text PRIMARY KEY DEFAULT hapta.new_id(),
  text text NOT NULL,
  created timestamptz NOT NULL DEFAULT now(),
  updated timestamptz NOT NULL DEFAULT now(),
  version bigint NOT NULL DEFAULT 1
);
"""


def hapta(*args: str, env: dict[str, str], input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hapta", *args], env={**os.environ, **env}, input=input,
                          capture_output=True, text=True, timeout=90)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def copy_app(folder) -> None:
    """A test app with migrations of its own (write_app links the shared ones), so this test may add one."""
    (folder / "migrations").unlink()
    (folder / "migrations").mkdir()
    for migration in sorted((APP / "migrations").glob("*.sql")):
        (folder / "migrations" / migration.name).write_text(migration.read_text())


async def wait_for_line(lines: list[str], pattern: str, count: int, within: float = 60.0) -> re.Match:
    deadline = time.monotonic() + within
    while True:
        found = [m for m in (re.search(pattern, line) for line in list(lines)) if m]
        if len(found) >= count:
            return found[count - 1]
        assert time.monotonic() < deadline, "".join(lines)
        await asyncio.sleep(0.05)


async def test_reload_restarts_on_config_and_migrations(tmp_path, pg_admin):
    from tests.services import create_database, drop_database
    dsn = await create_database(pg_admin)
    app = tmp_path / "app"
    config = write_app(app, """
        import runpy
        app = runpy.run_path(APP + "/config.py")["app"]
    """)
    copy_app(app)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "hapta", "serve", "--config", str(config), "--port", str(port),
                             "--reload"], env={**os.environ, **gateway_env(dsn)}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = asyncio.get_running_loop().run_in_executor(None, lambda: lines.extend(iter(proc.stdout.readline, "")))
    try:
        await wait_for_line(lines, r"listening on ws://", 1)
        (app / "migrations" / "0099_notes.sql").write_text(NOTES_MIGRATION)
        config.write_text(config.read_text() + "\nimport dataclasses\nfrom hapta.config import Collection\n"
                          "app = dataclasses.replace(app, collections=[*app.collections, Collection('notes', "
                          "list='', view='', create='', update=None, delete=None)])\n")
        await wait_for_line(lines, r"listening on ws://", 2)
        assert proc.poll() is None and "restarting: config.py or migrations/ changed" in "".join(lines)
        async with await Client.connect(f"ws://127.0.0.1:{port}/ws") as client:
            await client.call("auth.admin", {"key": ADMIN_KEY})
            note = await client.call("records.create", {"collection": "notes", "data": {"text": "hot"}})
            assert (await client.call("records.get", {"collection": "notes", "id": note["id"]}))["text"] == "hot"
    finally:
        proc.terminate()
        proc.wait(20)
        await reader
        await drop_database(pg_admin, dsn)


async def test_psql_reset_and_admin(tmp_path, pg_admin):
    from tests.services import create_database, drop_database
    dsn = await create_database(pg_admin)
    try:
        env = gateway_env(dsn, HAPTA_DATA_DIR=str(tmp_path / "data"))   # no other test's gateway noted there
        config = str(APP / "config.py")
        assert hapta("migrate", "--config", config, env=env).returncode == 0
        counted = hapta("psql", "--config", config, "-Atc", "select count(*) from hapta.migrations", env=env)
        assert counted.returncode == 0 and int(counted.stdout) > 0
        shown = hapta("admin", "--config", config, env=env)
        assert shown.stdout.splitlines() == [f"admin key: {ADMIN_KEY}", "dashboard: http://127.0.0.1:8080/_/"]
        name = dsn.rsplit("/", 1)[1]
        kept = hapta("reset", "--config", config, env=env, input="not the name\n")
        assert kept.returncode != 0 and "nothing was dropped" in kept.stderr
        assert "Type the database's name" in kept.stdout
        assert hapta("psql", "--config", config, "-Atc", "select count(*) from users", env=env).returncode == 0
        dropped = hapta("reset", "--config", config, env=env, input=f"{name}\n")
        assert dropped.returncode == 0, dropped.stderr
        left = hapta("psql", "--config", config, "-Atc",
                     "select count(*) from pg_tables where schemaname in ('public', 'hapta')", env=env)
        assert left.stdout.strip() == "0"
        refused = hapta("reset", "--config", config, "--yes", env={**env, "HAPTA_ENV": "production",
                                                                     "HAPTA_JWT_SECRET": "j" * 40,
                                                                     "HAPTA_ADMIN_KEY": "k" * 40,
                                                                     "HAPTA_ANON_KEY": "a" * 20})
        assert refused.returncode != 0 and "HAPTA_ENV=production refuses it" in refused.stderr
    finally:
        await drop_database(pg_admin, dsn)


@pytest.mark.parametrize("workers", [1, 2])
def test_admin_names_where_the_running_gateway_serves(tmp_path, database, workers):
    """`hapta admin` printed http://127.0.0.1:8080/_/ while the gateway served elsewhere (issue 33): it names the
    address of the `hapta serve` running on the same data directory, or the --host/--port it is given."""
    from tests.services import GatewayProcess
    env = gateway_env(database, HAPTA_DATA_DIR=str(tmp_path / "data"))
    config = str(APP / "config.py")
    process = GatewayProcess(env, workers=workers).start()
    try:
        shown = hapta("admin", "--config", config, env=env)
        assert shown.stdout.splitlines() == [f"admin key: {ADMIN_KEY}", f"dashboard: {process.http}/_/"], shown
        asked = hapta("admin", "--config", config, "--host", "0.0.0.0", "--port", "9999", env=env)
        assert asked.stdout.splitlines()[1] == "dashboard: http://127.0.0.1:9999/_/"
    finally:
        assert process.stop() == 0
    after = hapta("admin", "--config", config, env=env)   # stopped: where `hapta serve` serves by default
    assert after.stdout.splitlines()[1] == "dashboard: http://127.0.0.1:8080/_/"


def postgres_of(data) -> list[int]:
    """The running processes of the embedded PostgreSQL in the data directory `data`."""
    import psutil
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] == "postgres" and str(data / "postgres") in " ".join(proc.info["cmdline"] or ()):
            found.append(proc.pid)
    return found


def stop_left_behind(data) -> None:
    """What a failed test left running (the bug under test): stopped, so that it costs no later test anything."""
    import psutil
    for pid in postgres_of(data):
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()


def embedded_env(data) -> dict[str, str]:
    env = {**os.environ, **gateway_env("", HAPTA_DATA_DIR=str(data))}
    del env["DATABASE_URL"]
    return env


async def wait_until(check, what: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


async def test_a_mistake_in_config_waits_for_its_fix_and_leaves_no_postgres_behind(tmp_path, embedded_data):
    """--reload with a mistake in config.py exited, and left the embedded PostgreSQL running with a dead pid in its
    list of users, so that no later clean stop stopped it (issue 33). It says the mistake, waits for the fix,
    serves again, and its stop stops the server."""
    data = embedded_data
    config = write_app(tmp_path / "app", """
        import runpy
        app = runpy.run_path(APP + "/config.py")["app"]
    """)
    good = config.read_text()
    proc = subprocess.Popen([sys.executable, "-m", "hapta", "serve", "--config", str(config), "--port",
                             str(free_port()), "--reload"], env=embedded_env(data), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = asyncio.get_running_loop().run_in_executor(None, lambda: lines.extend(iter(proc.stdout.readline, "")))
    try:
        await wait_for_line(lines, r"listening on ws://", 1, within=120)
        config.write_text(good + "\napp = dataclasses.replace(app, no_such_field=1)\n")   # NameError: no import
        await wait_for_line(lines, r"waiting for a change to config\.py", 1)
        assert proc.poll() is None and any("config.py" in line and "dataclasses" in line for line in lines), lines
        config.write_text(good)
        await wait_for_line(lines, r"listening on ws://", 2)
        assert postgres_of(data)
        proc.terminate()
        assert await asyncio.to_thread(proc.wait, 20) == 0, "".join(lines)
        await wait_until(lambda: not postgres_of(data), "the embedded PostgreSQL stops with the gateway")
        assert json.loads((data / "postgres" / ".handle_pids.json").read_text()) == []
    finally:
        if proc.poll() is None:
            proc.kill()
        await reader
        stop_left_behind(data)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
async def test_a_stop_while_waiting_for_a_fix_stops_postgres(tmp_path, embedded_data, stop):
    """Ctrl-C, SIGTERM or a closed terminal while --reload waits for a fix: it exits, and the embedded server
    that the restart kept running for it stops."""
    data = embedded_data
    config = write_app(tmp_path / "app", "import runpy\napp = runpy.run_path(APP + '/config.py')['app']\n")
    good = config.read_text()
    proc = subprocess.Popen([sys.executable, "-m", "hapta", "serve", "--config", str(config), "--port",
                             str(free_port()), "--reload"], env=embedded_env(data), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = asyncio.get_running_loop().run_in_executor(None, lambda: lines.extend(iter(proc.stdout.readline, "")))
    try:
        await wait_for_line(lines, r"listening on ws://", 1, within=120)
        config.write_text(good + "\nthis is not python\n")
        await wait_for_line(lines, r"waiting for a change to config\.py", 1)
        proc.send_signal(stop)
        assert await asyncio.to_thread(proc.wait, 20) == 0, "".join(lines)
        await wait_until(lambda: not postgres_of(data), "the embedded PostgreSQL stops with the waiting gateway")
    finally:
        if proc.poll() is None:
            proc.kill()
        await reader
        stop_left_behind(data)


async def test_a_start_stops_a_stale_embedded_postgres_it_owns(tmp_path, embedded_data):
    """A gateway killed outright (SIGKILL) leaves its server running and its pid listed: the next command's start
    finds the server used by no one living, stops it, and its own exit stops the one it started."""
    data = embedded_data
    env = embedded_env(data)
    process = subprocess.Popen([sys.executable, "-m", "hapta", "serve", "--config", str(APP / "config.py"),
                                "--port", str(free_port())], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        for line in process.stdout:
            if "listening on ws://" in line:
                break
        left = postgres_of(data)
        assert left
        process.kill()
        process.wait(20)
        assert postgres_of(data) == left   # the kill left it behind, as a crash would
        migrated = hapta("migrate", "--config", str(APP / "config.py"), env=env)
        assert migrated.returncode == 0, migrated.stderr
        assert "left running by hapta process" in migrated.stderr
        await wait_until(lambda: not postgres_of(data), "the stale server is stopped, and so is the new one")
    finally:
        if process.poll() is None:
            process.kill()
        stop_left_behind(data)


async def test_a_closed_terminal_stops_the_gateway_and_its_postgres(embedded_data):
    """SIGHUP (the terminal closed) ended the process without its stop, and so without the embedded server's."""
    data = embedded_data
    proc = subprocess.Popen([sys.executable, "-m", "hapta", "serve", "--config", str(APP / "config.py"), "--port",
                             str(free_port())], env=embedded_env(data), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = asyncio.get_running_loop().run_in_executor(None, lambda: lines.extend(iter(proc.stdout.readline, "")))
    try:
        await wait_for_line(lines, r"listening on ws://", 1, within=120)
        proc.send_signal(signal.SIGHUP)
        assert await asyncio.to_thread(proc.wait, 20) == 0, "".join(lines)
        await wait_until(lambda: not postgres_of(data), "the embedded PostgreSQL stops with the gateway")
    finally:
        if proc.poll() is None:
            proc.kill()
        await reader
        stop_left_behind(data)
