"""The PostgreSQL side: the connection pool every request goes through, and what the gateway learns from the catalog.

    Database     the pool as requests use it. Every wait is bounded: acquiring a connection (acquire_timeout, then
                 UNAVAILABLE), each statement (statement_timeout and lock_timeout on the server, command_timeout on
                 the client for a server that stops answering), releasing it. One principal and one address hold at
                 most a few connections at once (Work, set per request by the dispatcher), so one client cannot starve
                 the pool. A transaction knows whether its COMMIT went out: an error after it succeeded is never the
                 request's error, and a connection lost during it is reported as an unknown outcome.
    failure()    what an exception from asyncpg means for the client: UNAVAILABLE or TIMEOUT, or None (not ours).

The catalog is the only source of identifiers that reach SQL text: a collection's columns, their kinds, their
relations and unique constraints come from here, never from a client.
"""
from __future__ import annotations

import asyncio
import contextvars
import logging
import math
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Iterator

import asyncpg
import msgspec

from ..catalog import Column, TableInfo
from ..protocol.errors import RATE_LIMITED, TIMEOUT, UNAVAILABLE, HaptaError
from ..query.kinds import FROM_CATALOG

log = logging.getLogger("hapta.postgres")

_json_encode = msgspec.json.Encoder().encode

# Seconds a connection may take to go back to the pool (its RESET ALL); past it, it is closed instead.
RELEASE_TIMEOUT = 1.0
# Seconds the client waits for a statement beyond the server's own statement_timeout: a server that stopped
# answering (frozen, partitioned) cannot cancel anything, so the client gives up by itself.
CLIENT_GRACE = 1.0
RETRY_AFTER = 1.0   # what an UNAVAILABLE answer suggests, in seconds


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
                      lock_timeout: float = 2.0) -> asyncpg.Pool:
    """Every connection starts with the server-side bounds as its session defaults (RESET ALL, which the pool runs
    on release after anything that may have changed them, goes back to them): no statement outlives
    statement_timeout, no lock wait lock_timeout, no transaction idles open longer than a minute."""
    settings = {"statement_timeout": str(int(statement_timeout * 1000)),
                "lock_timeout": str(int(lock_timeout * 1000)),
                "idle_in_transaction_session_timeout": "60000"}
    return await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, init=_init_connection,
                                     command_timeout=statement_timeout + CLIENT_GRACE, server_settings=settings,
                                     timeout=10, connection_class=PooledConnection)


# ---- whom the work is for ------------------------------------------------------------------------------------

@dataclass(slots=True)
class Work:
    """The database work of one request: whom it counts against, and how far its transaction's COMMIT got.

    The dispatcher sets one per request (`working`); the Database reads it from a context variable, so every
    statement a request causes (its op, its hooks' ctx.sql) is counted without being passed around. Whom it counts
    against is asked only when the work reaches the pool: a ping never does."""
    holders: Callable[[], tuple[str, ...]] | None = None   # (principal, address), e.g. ("user:42", "addr:10.0.0.1")
    commit: str = ""               # "" before any COMMIT, "sent" while one is under way, "done" once it returned
    named: tuple[str, ...] | None = None   # the Gate's keys for the holders, once worked out

    def keys(self) -> tuple[str, ...]:
        """The Gate's keys for the holders, worked out on the first statement of the request."""
        if self.named is None:
            self.named = Gate.keys(self.holders()) if self.holders is not None else ()
        return self.named


_work: contextvars.ContextVar[Work | None] = contextvars.ContextVar("hapta_work", default=None)


def working(work: Work) -> contextvars.Token:
    """Count what follows, in this task and the tasks it starts, as `work` (until `done_working`)."""
    return _work.set(work)


def done_working(token: contextvars.Token) -> None:
    _work.reset(token)


class Gate:
    """At most `per_principal` connections at once for one principal, and `per_address` for one client address
    (whoever signed in there). A key's count lives only while it is above zero, so idle clients cost nothing.
    Work names its holders as (principal, address): "user:42" and "addr:10.0.0.1"; anon and guests are their
    address twice over, and then meet both caps. Entering when there is room is a few dict operations: it happens
    for every statement."""

    def __init__(self, per_principal: int | None = None, per_address: int | None = None):
        self.limits = (per_principal or math.inf, per_address or math.inf)
        self._held: dict[str, int] = {}
        self._waiters: dict[str, list[asyncio.Future]] = {}

    @staticmethod
    def keys(holders: tuple[str, ...]) -> tuple[str, ...]:
        """The gate's own names for (principal, address): the two counts never mix, even when both are one address."""
        return ("p|" + holders[0], "a|" + holders[1]) if holders else ()

    def try_enter(self, keys: tuple[str, ...]) -> bool:
        """Count the keys (Gate.keys of the holders) if both have room; False, counting nothing, if one has not."""
        if not keys:
            return True
        held, (principal, address) = self._held, keys
        if held.get(principal, 0) >= self.limits[0] or held.get(address, 0) >= self.limits[1]:
            return False
        held[principal] = held.get(principal, 0) + 1
        held[address] = held.get(address, 0) + 1
        return True

    async def enter(self, keys: tuple[str, ...], deadline: float) -> None:
        """Wait until both keys have room (principal first, then address: no two requests deadlock); past
        `deadline`, RATE_LIMITED."""
        if self.try_enter(keys):
            return
        entered: list[str] = []
        try:
            for key, limit in zip(keys, self.limits):
                while self._held.get(key, 0) >= limit:
                    waiter = asyncio.get_running_loop().create_future()
                    self._waiters.setdefault(key, []).append(waiter)
                    try:
                        await asyncio.wait_for(waiter, max(0.0, deadline - asyncio.get_running_loop().time()))
                    except asyncio.TimeoutError:
                        raise HaptaError(RATE_LIMITED, "too much database work at once from this client; "
                                         "wait for your other requests", retry_after=RETRY_AFTER) from None
                    finally:
                        waiting = self._waiters.get(key)
                        if waiting is not None and waiter in waiting:
                            waiting.remove(waiter)
                        if not waiting:
                            self._waiters.pop(key, None)
                self._held[key] = self._held.get(key, 0) + 1
                entered.append(key)
        except BaseException:
            self.leave(tuple(entered))
            raise

    def leave(self, keys: tuple[str, ...]) -> None:
        held = self._held
        for key in keys:
            count = held.get(key, 0) - 1
            if count > 0:
                held[key] = count
            else:
                held.pop(key, None)
            waiters = self._waiters.get(key)
            if waiters:
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(None)
                        break


@contextmanager
def _committing() -> Iterator[None]:
    """Around what commits (a COMMIT, a statement in its own implicit transaction): the request's Work says how far
    it got. An error the server sent in answer means nothing was written; no answer at all (the connection died,
    the client gave up waiting) leaves the outcome unknown: UNAVAILABLE that says so."""
    work = _work.get()
    if work is not None:
        work.commit = "sent"
    try:
        yield
    except asyncio.CancelledError:
        raise   # the request's deadline: the dispatcher reads work.commit to say what is known
    except BaseException as exc:
        answered = isinstance(exc, asyncpg.PostgresError) and not isinstance(exc, asyncpg.PostgresConnectionError)
        if not answered and failure(exc) is not None:
            raise outcome_unknown() from None
        if work is not None:
            work.commit = ""
        raise
    if work is not None:
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

    async def transaction_for_app(self, statements: list[tuple[str, list[Any]]]) -> list[list[asyncpg.Record]]:
        """The app's own statements in one transaction (a function's ctx.transaction): each one's rows, or the
        first failure's exception with nothing of them kept."""
        async with self.acquire() as conn:
            conn.mark_touched()
            async with conn.transaction():
                return [await conn.fetch(query, *params) for query, params in statements]

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
        work = _work.get()
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


def outcome_unknown() -> HaptaError:
    return HaptaError(UNAVAILABLE, "the database connection was lost while committing: the write may or may not "
                      "have happened; read it back before retrying", retry_after=RETRY_AFTER,
                      details={"outcome": "unknown"})


# ---- what an upstream error means ----------------------------------------------------------------------------

# What background work (sweepers, heartbeats, the listener) catches and logs in one line, then tries again later:
# anything the database or the way to it can raise, including the Database's own refusals (a busy pool).
UPSTREAM_ERRORS = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError,
                   asyncpg.InternalClientError, HaptaError)

# SQLSTATE classes of a database that is (for now) not there: connection exceptions, insufficient resources,
# operator intervention (shutdown, crash, cannot connect now), system errors. 57014 is a cancelled statement.
_DOWN_CLASSES = ("08", "53", "57", "58")
_TRANSIENT = {"40001", "40P01", "25006"}   # serialization failure, deadlock, read-only (a failover under way)
_TOO_SLOW = {"57014": "the query took too long and was cancelled",
             "55P03": "a record it needs is busy (locked by another write); try again"}


def failure(exc: BaseException) -> HaptaError | None:
    """The answer for an exception that came from PostgreSQL or the way to it; None when it is not an upstream
    fault (a bug of ours, or a constraint the caller maps itself)."""
    if isinstance(exc, HaptaError):
        return exc
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", None) or ""
        if state in _TOO_SLOW:
            return HaptaError(TIMEOUT, _TOO_SLOW[state], retry_after=RETRY_AFTER)
        if state[:2] in _DOWN_CLASSES or state in _TRANSIENT or isinstance(exc, asyncpg.PostgresConnectionError):
            return HaptaError(UNAVAILABLE, "the database is unavailable", retry_after=RETRY_AFTER)
        return None
    if isinstance(exc, asyncio.TimeoutError):
        return HaptaError(TIMEOUT, "the database did not answer in time", retry_after=RETRY_AFTER)
    if isinstance(exc, (OSError, asyncpg.InterfaceError, asyncpg.InternalClientError)):
        # InternalClientError: asyncpg's state machine after the server went away mid-statement ("cannot switch
        # to state ..."); InterfaceError: the connection is closed or was released under us.
        return HaptaError(UNAVAILABLE, "the database is unavailable", retry_after=RETRY_AFTER)
    return None


async def known_search_configs(conn: asyncpg.Connection, names: list[str]) -> set[str]:
    """Which of these text-search configurations (Collection.search) the database has."""
    rows = await conn.fetch("SELECT cfgname FROM pg_ts_config WHERE cfgname = ANY($1::text[])", names)
    return {row["cfgname"] for row in rows}


async def introspect(conn: asyncpg.Connection, names: list[str]) -> dict[str, TableInfo]:
    """Describe the tables named (in the current schema) that exist."""
    tables: dict[str, TableInfo] = {}
    for r in await conn.fetch("""
            SELECT table_name, column_name, data_type, is_nullable = 'YES' AS nullable,
                   column_default IS NOT NULL OR is_identity = 'YES' AS has_default
            FROM information_schema.columns
            WHERE table_schema = current_schema() AND table_name = ANY($1::text[])
            ORDER BY table_name, ordinal_position""", names):
        kind = FROM_CATALOG.get(r["data_type"])   # columns of other types are not exposed
        if kind is None:
            continue
        info = tables.setdefault(r["table_name"], TableInfo(r["table_name"]))
        info.columns[r["column_name"]] = Column(r["column_name"], kind, r["nullable"], r["has_default"])
    for r in await conn.fetch("""
            SELECT rel.relname AS tbl, con.conname, con.contype::text AS contype,
                   array_agg(att.attname ORDER BY att.attnum) AS cols, frel.relname AS target
            FROM pg_constraint con
            JOIN pg_class rel ON rel.oid = con.conrelid
            LEFT JOIN pg_class frel ON frel.oid = con.confrelid
            JOIN pg_attribute att ON att.attrelid = con.conrelid AND att.attnum = ANY(con.conkey)
            WHERE rel.relnamespace = current_schema()::regnamespace AND rel.relname = ANY($1::text[])
              AND con.contype IN ('f', 'c')
            GROUP BY rel.relname, con.conname, con.contype, frel.relname""", names):
        info = tables.get(r["tbl"])
        if info is None:
            continue
        cols = tuple(r["cols"])
        if r["contype"] == "f" and len(cols) == 1:
            info.foreign_keys[r["conname"]] = cols[0]
            info.relations[cols[0]] = r["target"]
        elif r["contype"] == "c":
            info.checks[r["conname"]] = cols
    for r in await conn.fetch("""
            SELECT t.relname AS tbl, i.relname AS idx, array_agg(a.attname ORDER BY a.attnum) AS cols
            FROM pg_index x
            JOIN pg_class i ON i.oid = x.indexrelid
            JOIN pg_class t ON t.oid = x.indrelid
            JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY(x.indkey)
            WHERE x.indisunique AND t.relnamespace = current_schema()::regnamespace
              AND t.relname = ANY($1::text[])
            GROUP BY t.relname, i.relname""", names):
        info = tables.get(r["tbl"])
        if info is not None:
            info.uniques[r["idx"]] = tuple(r["cols"])
    return tables
