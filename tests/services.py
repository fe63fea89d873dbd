"""The real servers the tests talk to: PostgreSQL (the local one, or an embedded one) and gateway processes."""
from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


async def _answers(dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=3)
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError):
        return False
    await conn.close()
    return True


async def admin_dsn() -> str:
    """A DSN with the right to create databases: $HAPTA_TEST_DATABASE_URL, the local server, or an embedded one."""
    configured = os.environ.get("HAPTA_TEST_DATABASE_URL")
    if configured:
        return configured
    if await _answers(LOCAL_POSTGRES):
        return LOCAL_POSTGRES
    from hapta.store.embedded import start_embedded
    data_dir = Path(os.environ.get("HAPTA_TEST_DATA_DIR", Path(tempfile.gettempdir()) / "hapta-test-data"))
    dsn = await asyncio.to_thread(start_embedded, data_dir)
    return dsn.replace("/hapta?", "/postgres?")


def with_database(dsn: str, name: str) -> str:
    """The same server, another database."""
    if "?" in dsn:
        base, query = dsn.split("?", 1)
        return re.sub(r"/[^/]*$", f"/{name}", base) + "?" + query
    return re.sub(r"/[^/]*$", f"/{name}", dsn)


async def create_database(admin: str) -> str:
    name = f"hapta_test_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(admin, name)


async def drop_database(admin: str, dsn: str) -> None:
    name = dsn.split("?")[0].rsplit("/", 1)[1]
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


class GatewayProcess:
    """`hapta serve` in a child process on a free port, with its own environment."""

    def __init__(self, env: dict[str, str], config: Path = ROOT / "config.py", workers: int = 1,
                 command: list[str] | None = None, drop: tuple[str, ...] = ()):
        self.env = {key: value for key, value in {**os.environ, **env}.items() if key not in drop}
        self.command = command or [sys.executable, "-m", "hapta"]
        self.config = config
        self.workers = workers
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.output: list[str] = []

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> "GatewayProcess":
        self.proc = subprocess.Popen(
            [*self.command, "serve", "--config", str(self.config), "--port", "0",
             "--workers", str(self.workers)],
            env=self.env, cwd=str(self.config.parent), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.output.append(line)
            found = re.search(r"listening on ws://[^:]+:(\d+)/ws", line)
            if found:
                self.port = int(found.group(1))
                # keep draining output so the child never blocks on a full pipe
                import threading
                threading.Thread(target=self._drain, daemon=True).start()
                return self
        self.stop()
        raise RuntimeError("gateway did not start:\n" + "".join(self.output))

    def _drain(self) -> None:
        assert self.proc and self.proc.stdout
        for line in self.proc.stdout:
            self.output.append(line)

    def stop(self, timeout: float = 15) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def log_text(self) -> str:
        return "".join(self.output)


class CuttableProxy:
    """A TCP proxy on 127.0.0.1 that a test can cut (drop every connection, refuse new ones) and restore:
    an upstream that dies and comes back, without touching the real server."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.server: asyncio.base_events.Server | None = None
        self.port: int | None = None
        self.links: set[asyncio.StreamWriter] = set()

    async def start(self) -> "CuttableProxy":
        self.server = await asyncio.start_server(self._link, "127.0.0.1", self.port or 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()
        for writer in list(self.links):
            writer.transport.abort()
        self.links.clear()

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.links.update((writer, up_writer))

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                sink.transport.abort()
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
