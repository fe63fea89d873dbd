"""`hapta serve --workers N`: N gateway processes on one port, and the process that keeps them.

Each worker is a whole `hapta serve` with its own event loop and database pool, bound to the same port with
SO_REUSEPORT: the kernel spreads new connections over the workers' listening sockets. The supervisor does what
must happen once: the embedded PostgreSQL (when there is no DATABASE_URL; the cli starts it) and the migrations,
the port (port 0 becomes a real one, held here so that it stays ours while a worker restarts), and a fresh
PROMETHEUS_MULTIPROC_DIR for the workers' metrics. Then it starts the workers one after another (their start-up
DDL never races), restarts one that dies, and passes SIGTERM/SIGINT on: the workers drain and exit (server.py), and
whatever still runs after SHUTDOWN_SECONDS is killed. What is shared between workers and what is not:
docs/operations.md.
"""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

log = logging.getLogger("hapta.supervisor")

SHUTDOWN_SECONDS = 9.5      # a worker exits within 9 s (server.EXIT_DEADLINE); the supervisor within 10
START_SECONDS = 60.0        # for one worker to be listening
RESTART_DELAY = (0.5, 10.0)  # after a worker dies: the first delay, doubled while workers die young, up to the last
YOUNG_SECONDS = 10.0
SUPERVISOR_PID = "HAPTA_SUPERVISOR_PID"   # tells a worker whom to follow


class StartError(Exception):
    pass


def stop_signals() -> tuple[signal.Signals, ...]:
    """What stops `hapta serve` through its clean stop (which also stops an embedded PostgreSQL): SIGTERM, SIGINT,
    and SIGHUP, a closed terminal, whose default would end the process with no stop at all; not SIGHUP under
    nohup, which set it aside to keep the gateway running."""
    hangup = () if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN else (signal.SIGHUP,)
    return (signal.SIGTERM, signal.SIGINT, *hangup)


def reserve_port(host: str, port: int) -> socket.socket:
    """A bound, not listening, SO_REUSEPORT socket on (host, port). Workers bind beside it; it never accepts
    (the kernel hands connections only to listening sockets), it only turns port 0 into a port and keeps it."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    return sock


def follow_parent() -> None:
    """In a worker: end (SIGTERM, so gracefully) when the supervisor dies, even by SIGKILL (Linux only)."""
    parent = os.environ.get(SUPERVISOR_PID)
    if not parent:
        return
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != int(parent):   # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


class Supervisor:
    def __init__(self, config: Path, host: str, port: int, workers: int, dsn: str, anon_key: str,
                 options: tuple[str, ...] = (), settings=None):
        self.config = config
        self.options = options   # serve options the workers get too (--reload)
        self.host = host
        self.port = port
        self.count = workers
        self.dsn = dsn
        self.anon_key = anon_key
        self.procs: dict[int, asyncio.subprocess.Process] = {}   # slot -> its current worker
        self.readers: set[asyncio.Task] = set()
        self.stopping = False
        self.settings = settings   # the deployment settings: where to note the address for `hapta admin`

    def command(self) -> list[str]:
        hapta = [sys.executable] if getattr(sys, "frozen", False) else [sys.executable, "-m", "hapta"]   # binary
        return [*hapta, "serve", "--config", str(self.config), "--host", self.host, "--port", str(self.port),
                "--worker", *self.options]

    async def spawn(self, slot: int) -> asyncio.subprocess.Process:
        """Start the worker for `slot` and wait until it listens; StartError if it exits first."""
        proc = await asyncio.create_subprocess_exec(*self.command(), stdout=asyncio.subprocess.PIPE)
        self.procs[slot] = proc
        assert proc.stdout is not None
        try:
            async with asyncio.timeout(START_SECONDS):
                while line := await proc.stdout.readline():
                    if b" listening on " in line:
                        break
                else:
                    raise StartError(f"worker {proc.pid} exited with code {await proc.wait()} while starting")
        except TimeoutError:
            proc.kill()
            raise StartError(f"worker {proc.pid} did not listen within {START_SECONDS:g} s") from None
        reader = asyncio.ensure_future(self._discard(proc.stdout))   # the rest of its stdout: a full pipe blocks
        self.readers.add(reader)
        reader.add_done_callback(self.readers.discard)
        log.info("worker %d is listening (slot %d)", proc.pid, slot)
        return proc

    @staticmethod
    async def _discard(stream: asyncio.StreamReader) -> None:
        while await stream.read(65536):
            pass

    async def keep(self, slot: int) -> None:
        """Restart the worker of `slot` whenever it dies, until the shutdown."""
        delay = RESTART_DELAY[0]
        while True:
            proc = self.procs[slot]
            started = time.monotonic()
            code = await proc.wait()
            if self.stopping:
                return
            _mark_dead(proc.pid)
            young = time.monotonic() - started < YOUNG_SECONDS
            delay = min(delay * 2, RESTART_DELAY[1]) if young else RESTART_DELAY[0]
            # Code 0 is a worker that was told to stop: SIGTERM to the whole process group (systemd's default
            # KillMode) reaches it and us at once, and it may exit before our own signal is handled. That one is
            # said only if we are not stopping by the end of the delay.
            stopped = code == 0
            if not stopped:
                log.warning("worker %d exited with code %s; restarting it in %.1f s", proc.pid, code, delay)
            await asyncio.sleep(delay)
            if self.stopping:
                return
            if stopped:
                log.warning("worker %d was stopped (exit code 0) while the others serve; restarting it", proc.pid)
            try:
                await self.spawn(slot)
            except StartError as exc:
                log.error("%s", exc)   # tried again after the next delay: the database may be back by then

    async def terminate(self) -> None:
        """SIGTERM to every worker; SIGKILL to those still running after SHUTDOWN_SECONDS."""
        self.stopping = True
        alive = [p for p in self.procs.values() if p.returncode is None]
        for proc in alive:
            proc.send_signal(signal.SIGTERM)
        if alive:
            await asyncio.wait([asyncio.ensure_future(p.wait()) for p in alive], timeout=SHUTDOWN_SECONDS)
            for proc in alive:
                if proc.returncode is None:
                    log.warning("worker %d did not stop in %g s; killing it", proc.pid, SHUTDOWN_SECONDS)
                    proc.kill()
            await asyncio.gather(*(p.wait() for p in alive))

    async def run(self) -> int:
        from .. import __version__
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in stop_signals():
            loop.add_signal_handler(sig, stop.set)
        keepers: list[asyncio.Task] = []
        forget_address: Callable[[], None] = lambda: None
        try:
            for slot in range(self.count):
                await self.spawn(slot)
                if stop.is_set():
                    return 0
            print(f"hapta {__version__} listening on ws://{self.host}:{self.port}/ws ({self.count} workers, "
                  f"supervisor {os.getpid()})", flush=True)
            print(f"anon key: {self.anon_key}", flush=True)
            if self.settings is not None:   # for `hapta admin`
                from ..develop import browser_url, note_serving
                forget_address = note_serving(self.settings.data_dir, browser_url(self.settings, self.host, self.port))
            keepers = [asyncio.ensure_future(self.keep(slot)) for slot in range(self.count)]
            await stop.wait()
            log.info("shutting down %d workers", self.count)
            return 0
        except StartError as exc:
            print(f"hapta: {exc}", file=sys.stderr)
            return 1
        finally:
            forget_address()
            await self.terminate()
            for keeper in keepers:
                keeper.cancel()


def _mark_dead(pid: int) -> None:
    from .. import metrics   # imported here: PROMETHEUS_MULTIPROC_DIR must be set first
    metrics.mark_process_dead(pid)


async def _migrate(dsn: str, app_dir: Path) -> None:
    import asyncpg
    from ..store.migrations import migrate
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, app_dir / "migrations")
    finally:
        await conn.close()


def supervise(config: Path, app_dir: Path, host: str, port: int, workers: int, dsn: str, anon_key: str,
              options: tuple[str, ...] = (), settings=None) -> int:
    """Run `workers` gateway processes on host:port until SIGTERM/SIGINT; return the exit code."""
    asyncio.run(_migrate(dsn, app_dir))   # once, here, before any worker starts
    holder = reserve_port(host, port)
    metrics_dir = tempfile.mkdtemp(prefix="hapta-metrics-")
    # Workers inherit these; DATABASE_URL spares each of them starting (or joining) the embedded PostgreSQL.
    os.environ.update({"DATABASE_URL": dsn, "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
                       SUPERVISOR_PID: str(os.getpid())})
    try:
        supervisor = Supervisor(config, host, holder.getsockname()[1], workers, dsn, anon_key, options, settings)
        return asyncio.run(supervisor.run())
    finally:
        holder.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
