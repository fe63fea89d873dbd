"""One dedicated PostgreSQL connection that LISTENs for the gateway: the bus between worker processes and nodes
(`hapta-listener` in pg_stat_activity).

Every process that serves sockets holds one Listener. What one process must tell all the others (a session was
revoked, an OAuth2 login finished for a socket held elsewhere, a row changed) travels as `NOTIFY channel, payload`
and reaches every listening process, this one included, in commit order. No Redis is needed for it.

The connection can be lost (a database restart, a network cut). The Listener reconnects by itself with backoff and
then calls its reset callbacks: notifications sent while it was away are gone, so whoever relies on them (the
realtime feed, the cache) must assume it missed some.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

import asyncpg

from .. import metrics
from .failures import UPSTREAM_ERRORS
from .postgres import Database, application_name

log = logging.getLogger("hapta.listener")

Callback = Callable[[str], None]       # gets the payload; runs in the event loop, must not block
ResetCallback = Callable[[], Awaitable[None] | None]

# Postgres refuses NOTIFY payloads of 8000 bytes or more.
MAX_PAYLOAD = 7999
# Seconds between probes of an idle listening connection.
HEALTH_PROBE = 5.0


class Listener:
    def __init__(self, dsn: str, *, backoff: tuple[float, float] = (0.1, 2.0)):
        self._dsn = dsn
        self._channels: dict[str, list[Callback]] = {}
        self._on_reset: list[ResetCallback] = []
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task | None = None
        self._lost = asyncio.Event()
        self._ready = asyncio.Event()
        self._backoff = backoff
        self._busy = asyncio.Lock()   # one query at a time on the listening connection (probes, syncs)
        self._next_sync: asyncio.Future | None = None
        self._syncing: asyncio.Task | None = None

    def add(self, channel: str, callback: Callback) -> None:
        """Call `callback(payload)` for every NOTIFY on `channel`. Register before start()."""
        self._channels.setdefault(channel, []).append(callback)

    def on_reset(self, callback: ResetCallback) -> None:
        """Called after the connection came back: notifications may have been missed meanwhile."""
        self._on_reset.append(callback)

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    async def start(self) -> None:
        await self._connect()
        self._task = asyncio.ensure_future(self._keep_alive())

    async def close(self) -> None:
        if self._syncing:
            self._syncing.cancel()
            await asyncio.gather(self._syncing, return_exceptions=True)
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close(timeout=2)

    async def _connect(self) -> None:
        conn = await asyncpg.connect(self._dsn, timeout=10, server_settings=application_name(self._dsn, "listener"))
        conn.add_termination_listener(lambda _conn: self._mark_lost())
        for channel, callbacks in self._channels.items():
            await conn.add_listener(channel, self._dispatcher(channel, callbacks))
        self._conn = conn
        self._lost.clear()
        self._ready.set()

    def _mark_lost(self) -> None:
        self._ready.clear()
        self._lost.set()

    def _dispatcher(self, channel: str, callbacks: list[Callback]):
        def dispatch(_conn, _pid, _channel, payload: str) -> None:
            for callback in callbacks:
                try:
                    callback(payload)
                except Exception:
                    log.exception("listener callback for %s failed", channel)
        return dispatch

    async def _keep_alive(self) -> None:
        """Wait for the connection to drop, then reconnect with backoff and tell the reset callbacks."""
        while True:
            try:   # a silently dead link (no FIN from a cut network) is found by a probe every few seconds
                await asyncio.wait_for(self._lost.wait(), HEALTH_PROBE)
            except asyncio.TimeoutError:
                if await self._answers():
                    continue
                self._mark_lost()
            if self._conn is not None:
                self._conn.terminate()
            log.warning("lost the database listener connection; reconnecting")
            delay, ceiling = self._backoff
            while True:
                try:
                    await self._connect()
                    break
                except UPSTREAM_ERRORS:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, ceiling)
            log.info("database listener reconnected")
            for callback in self._on_reset:
                try:
                    result = callback()
                    if asyncio.iscoroutine(result):
                        await result
                except Exception:
                    log.exception("listener reset callback failed")

    async def _answers(self) -> bool:
        try:
            async with self._busy:
                await self._conn.execute("SELECT 1", timeout=HEALTH_PROBE)
            return True
        except Exception:
            return False

    async def sync(self) -> bool:
        """A barrier: True once every notification committed before this call has been handed to the callbacks;
        False when the listener is not connected (notifications may be missing).

        PostgreSQL sends a listening session's pending notifications before it answers a query on it (and a
        writer's commit has signalled every listener before the writer hears it committed), and asyncpg hands
        them to the callbacks before the query's answer wakes its caller. So one `SELECT 1` on the listening
        connection is the barrier. Callers that arrive while one is under way share the next."""
        if not self.connected:
            return False
        if self._next_sync is None:
            self._next_sync = asyncio.get_running_loop().create_future()
            if self._syncing is None:
                self._syncing = asyncio.ensure_future(self._run_syncs())
        return await asyncio.shield(self._next_sync)

    async def _run_syncs(self) -> None:
        round_: asyncio.Future | None = None
        try:
            while self._next_sync is not None:
                round_, self._next_sync = self._next_sync, None
                try:
                    async with self._busy:
                        await self._conn.execute("SELECT 1", timeout=HEALTH_PROBE)
                    metrics.FEED_BARRIERS.inc()
                    round_.set_result(self.connected)
                except Exception:   # whatever broke (asyncpg's own state too, mid-restart): not heard, not synced
                    round_.set_result(False)
        finally:   # closing: nobody waits forever
            for future in (round_, self._next_sync):
                if future is not None and not future.done():
                    future.set_result(False)
            self._next_sync = self._syncing = None

    async def try_lock(self, key: int) -> bool:
        """Take a session advisory lock on the listening connection: held for as long as this process is heard
        (a leader's lease: it ends when the connection does). False if another session holds it or we are not
        connected."""
        if not self.connected:
            return False
        try:
            async with self._busy:
                return bool(await self._conn.fetchval("SELECT pg_try_advisory_lock($1)", key, timeout=HEALTH_PROBE))
        except Exception:
            return False

    async def notify(self, db: Database, channel: str, payload: str) -> None:
        """Send one notification through the pool (not the listening connection, which may be reconnecting)."""
        if len(payload.encode()) > MAX_PAYLOAD:
            raise ValueError(f"notification payload over {MAX_PAYLOAD} bytes")
        await db.execute("SELECT pg_notify($1, $2)", channel, payload)
