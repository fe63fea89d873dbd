"""The PostgreSQL pool every request goes through.

    Database     the pool as requests use it. Every wait is bounded: acquiring a connection (acquire_timeout, then
                 UNAVAILABLE), each statement (statement_timeout and lock_timeout on the server, command_timeout on
                 the client for a server that stops answering), releasing it. One principal and one address hold at
                 most a few connections at once (shares.py: Work, set per request by the dispatcher, and Gate), so
                 one client cannot starve the pool. A transaction knows whether its COMMIT went out: an error after it
                 succeeded is never the request's error, and a connection lost during it is reported as an unknown
                 outcome (failures.py).

What the catalog says of the tables is introspection.py's.
"""
from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager, contextmanager
from typing import Any, AsyncIterator, Awaitable, Callable, Iterator, Sequence
from urllib.parse import parse_qs, urlsplit

import asyncpg
import msgspec

from ..protocol.errors import UNAVAILABLE, HaptaError
from .failures import RETRY_AFTER, failure, outcome_unknown
from .shares import Gate, Work, current_work

log = logging.getLogger("hapta.postgres")

_json_encode = msgspec.json.Encoder().encode

# Seconds a connection may take to go back to the pool (its RESET ALL); past it, it is closed instead.
RELEASE_TIMEOUT = 1.0
# Seconds the client waits for a statement beyond the server's own statement_timeout: a server that stopped
# answering (frozen, partitioned) cannot cancel anything, so the client gives up by itself.
CLIENT_GRACE = 1.0


def application_name(dsn: str, role: str) -> dict[str, str]:
    """The session setting that names one of the gateway's connections by its role in pg_stat_activity
    (`hapta-pool`, `hapta-listener`), so that an operator, and bench.processes, can tell its backends apart; none
    when the DSN names the application itself (`?application_name=...`): the operator's name wins."""
    if "application_name" in parse_qs(urlsplit(dsn).query):
        return {}
    return {"application_name": f"hapta-{role}"}


async def _init_connection(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, schema="pg_catalog", format="text",
                                  encoder=lambda v: _json_encode(v).decode(), decoder=msgspec.json.decode)


class PooledConnection(asyncpg.Connection):
    """A pool connection whose release costs no round trip unless its session may have changed.

    asyncpg's pool sends a reset query (RESET ALL, UNLISTEN *, CLOSE ALL, advisory unlocks) on every release: one
    more round trip for every request that touched PostgreSQL, a fifth of a create's. The gateway's own statements
    change no session state, so the query is sent only after code that might has run on the connection: the app's
    hooks (ctx.sql) and the gateway's start (migrations): `mark_touched()`. An open transaction is rolled back on
    release either way (asyncpg does that before asking for the query)."""

    _touched = False

    def mark_touched(self) -> None:
        self._touched = True

    def get_reset_query(self) -> str:
        if not self._touched:
            return ""
        self._touched = False
        return super().get_reset_query()


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 10, statement_timeout: float = 5.0,
                      lock_timeout: float = 2.0, role: str = "pool",
                      check: Callable[[asyncpg.Connection], Awaitable[None]] | None = None) -> asyncpg.Pool:
    """Every connection starts with the server-side bounds as its session defaults (RESET ALL, which the pool runs
    on release after anything that may have changed them, goes back to them): no statement outlives
    statement_timeout, no lock wait lock_timeout, no transaction idles open longer than a minute; each is named
    `hapta-<role>` in pg_stat_activity (`hapta-pool`; a read replica's, `hapta-replica`). `check(conn)` runs on
    each new connection before its first use (a read replica's proves where the server is)."""
    settings = {"statement_timeout": str(int(statement_timeout * 1000)),
                "lock_timeout": str(int(lock_timeout * 1000)),
                "idle_in_transaction_session_timeout": "60000", **application_name(dsn, role)}
    async def init(conn: asyncpg.Connection) -> None:
        await _init_connection(conn)
        if check is not None:
            await check(conn)

    return await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, init=init,
                                     command_timeout=statement_timeout + CLIENT_GRACE, server_settings=settings,
                                     timeout=10, connection_class=PooledConnection)


@contextmanager
def _committing(works: Sequence[Work | None] = ()) -> Iterator[None]:
    """Around what commits (a COMMIT, a statement in its own implicit transaction): the request's Work (and those
    of `works`, requests whose writes it carries too) says how far it got. An error the server sent in answer means
    nothing was written; no answer at all (the connection died, the client gave up waiting) leaves the outcome
    unknown: UNAVAILABLE that says so."""
    marked = [work for work in (current_work(), *works) if work is not None]
    for work in marked:
        work.commit = "sent"
    try:
        yield
    except asyncio.CancelledError:
        raise   # the request's deadline: the dispatcher reads work.commit to say what is known
    except BaseException as exc:
        answered = isinstance(exc, asyncpg.PostgresError) and not isinstance(exc, asyncpg.PostgresConnectionError)
        if not answered and failure(exc) is not None:
            raise outcome_unknown() from None
        for work in marked:
            work.commit = ""
        raise
    for work in marked:
        work.commit = "done"


class Database:
    def __init__(self, pool: asyncpg.Pool, *, acquire_timeout: float = 2.0, gate: Gate | None = None):
        self.pool = pool
        self.acquire_timeout = acquire_timeout
        self.gate = gate or Gate()

    def acquire(self, timeout: float | None = None) -> "_Acquired":
        """A pool connection within `timeout` (default acquire_timeout), else UNAVAILABLE; for `async with`.
        Releasing it never fails the caller: the work is done by then (a connection that cannot be reset is closed
        by the pool)."""
        return _Acquired(self, self.acquire_timeout if timeout is None else timeout)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection in a transaction, committed when the block ends without an exception. A COMMIT that went
        out but got no answer (the connection was lost) raises UNAVAILABLE whose details say the outcome is unknown:
        the client must not take it for a failure (and retry a create) nor for a success."""
        async with self.acquire() as conn:
            transaction = conn.transaction()
            await transaction.start()
            try:
                yield conn
            except BaseException:
                if not conn.is_closed():
                    try:
                        await transaction.rollback()
                    except (Exception, asyncio.CancelledError):
                        pass   # the connection goes back broken; the pool closes it, the server rolls back
                raise
            with _committing():
                await transaction.commit()

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async with self.acquire() as conn:
            return await conn.fetch(query, *args)

    async def write(self, query: str, *args: Any) -> asyncpg.Record | None:
        """One statement that commits by itself (its own implicit transaction): one round trip where BEGIN, the
        statement and COMMIT are three. Lost while it ran, its outcome is unknown, as a COMMIT's would be."""
        async with self.acquire() as conn:
            with _committing():
                return await conn.fetchrow(query, *args)

    async def write_all(self, query: str, *args: Any, works: Sequence[Work | None] = ()) -> list[asyncpg.Record]:
        """`write` for a statement that returns several rows, and carries the writes of the requests of `works`
        too (records/combine.py)."""
        async with self.acquire() as conn:
            with _committing(works):
                return await conn.fetch(query, *args)

    async def fetch_for_app(self, query: str, *args: Any, conn: asyncpg.Connection | None = None
                            ) -> list[asyncpg.Record]:
        """The app's own SQL (hooks' ctx.sql), on `conn` (the write's transaction) or a pool connection: it may
        change the session (SET, LISTEN), so the connection is reset before anyone else gets it."""
        if conn is not None:
            conn.mark_touched()
            return await conn.fetch(query, *args)
        async with self.acquire() as conn:
            conn.mark_touched()
            return await conn.fetch(query, *args)

    async def transaction_for_app(self, statements: list[tuple[str, list[Any]]],
                                  then: Callable[[asyncpg.Connection], Awaitable[None]] | None = None
                                  ) -> list[list[asyncpg.Record]]:
        """The app's own statements in one transaction (a function's ctx.transaction): each one's rows, or the
        first failure's exception with nothing of them kept. `then(conn)` runs after them, in the transaction
        (what it publishes when it commits)."""
        async with self.acquire() as conn:
            conn.mark_touched()
            async with conn.transaction():
                rows = [await conn.fetch(query, *params) for query, params in statements]
                if then is not None:
                    await then(conn)
                return rows

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        async with self.acquire() as conn:
            return await conn.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        async with self.acquire() as conn:
            return await conn.fetchval(query, *args)

    async def execute(self, query: str, *args: Any) -> str:
        async with self.acquire() as conn:
            return await conn.execute(query, *args)

    async def close(self) -> None:
        await self.pool.close()


class _Acquired:
    """Database.acquire's context (a class, not a generator: it runs for every statement of every request)."""
    __slots__ = ("db", "timeout", "keys", "conn")

    def __init__(self, db: Database, timeout: float):
        self.db, self.timeout = db, timeout

    async def __aenter__(self) -> asyncpg.Connection:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        work = current_work()
        self.keys = work.keys() if work is not None else ()
        gate = self.db.gate
        if not gate.try_enter(self.keys):
            await gate.enter(self.keys, deadline)
        try:   # asyncio.timeout, not acquire(timeout=): before Python 3.12 that waits in a task of its own
            async with asyncio.timeout_at(deadline):
                self.conn = await self.db.pool.acquire()
        except BaseException as exc:
            gate.leave(self.keys)
            if isinstance(exc, asyncio.TimeoutError):
                raise HaptaError(UNAVAILABLE, "the database is busy; try again", retry_after=RETRY_AFTER) from None
            raise
        return self.conn

    async def __aexit__(self, *exc_info: Any) -> None:
        try:
            await self.db.pool.release(self.conn, timeout=RELEASE_TIMEOUT)
        except (Exception, asyncio.CancelledError) as exc:   # the pool has closed it: nothing to undo
            log.info("a database connection could not be reset and was closed (%s)", type(exc).__name__)
        finally:
            self.db.gate.leave(self.keys)


