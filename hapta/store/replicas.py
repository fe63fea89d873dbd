"""Read replicas (DATABASE_REPLICA_URLS): cache misses of records.get, list and aggregate read from a streaming
standby when it is proven to have replayed everything committed on the primary before the read began; else from
the primary.

Why that proof, and not "a replica a little behind": the read cache (live/cache.py) stores an answer under the
table generations it took when the read began, and promises that no answer is older than a write acknowledged
before then. A replica that had not replayed such a write would have its stale answer cached as new.

The proof, by WAL positions. A read that begins at T takes X, the primary's WAL insert position from a sample
*started after T*: every commit acknowledged before T has its commit record below X (inserted, if not flushed:
synchronous_commit=off commits too). A standby whose replay position (a sample taken at any time: replay only
moves forward) is at least X has replayed each of those commit records, and the records become visible to
snapshots as they are replayed: whatever the read's snapshot on it sees includes them.

The cost does not grow with the read rate: each server has one Sampler, one connection of its own that runs one
query after another only while reads wait for it, and idles otherwise. Every read that begins while a primary
sample is in flight waits for the next one (it must start after the read) and all of them share it. A read with X
takes a replica whose last sample is already at X, else waits for the replicas' next samples, up to
`catch_up` seconds; then it goes to the primary. A replica whose sample fails or does not answer in time, or that
is no standby at all (promoted: NULL replay position), is skipped for `rest` seconds.
"""
from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from functools import partial
from typing import Awaitable, Callable, Sequence, TypeVar

import asyncpg

from .. import metrics
from ..protocol.errors import UNAVAILABLE
from ..settings import database_address
from .failures import failure
from .postgres import Database, application_name, create_pool
from .shares import Gate

log = logging.getLogger("hapta.replicas")

T = TypeVar("T")

# The primary's WAL insert position (not the write position: an acknowledged synchronous_commit=off commit may not
# be written yet, and still must be seen), and a replica's replay position, NULL unless it is a standby now.
PRIMARY_POSITION = "SELECT (pg_current_wal_insert_lsn() - '0/0')::bigint"
REPLICA_POSITION = ("SELECT CASE WHEN pg_is_in_recovery() THEN (pg_last_wal_replay_lsn() - '0/0')::bigint END")

CATCH_UP = 0.02        # seconds a read waits for a replica to be proven fresh; then the primary
SAMPLE_TIMEOUT = 1.0   # seconds a sample may take (connecting included); past it the server is skipped
REST = 5.0             # seconds a failed or non-standby replica is skipped before it is sampled again


class Behind(Exception):
    """A new connection to a replica found it behind what its sampler last said, or no standby: the server
    restarted since (replay goes on from its last restartpoint, behind what it had replayed) or was promoted."""


class Sampler:
    """One server's position, sampled one query after another while anybody waits, idle otherwise.

    `after()` is a sample that starts after the call: every caller while a sample is in flight shares the next
    one. `query()` is the sample itself (an async callable); `value` the last one that answered."""

    def __init__(self, name: str, query: Callable[[], Awaitable[int | None]]):
        self.name = name
        self.query = query
        self.value: int | None = None
        self.samples = 0                                 # queries run, for the bench and the metric
        self._next: asyncio.Future | None = None         # the sample not started yet that new callers join
        self._task: asyncio.Task | None = None

    def after(self) -> asyncio.Future:
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
            if self._task is None or self._task.done():
                # in an empty context: not the request's that asked first (its database share, its deadline)
                self._task = asyncio.get_running_loop().create_task(self._run(), context=contextvars.Context())
        return self._next

    async def _run(self) -> None:
        while self._next is not None:
            future, self._next = self._next, None
            self.samples += 1
            metrics.REPLICA_SAMPLES.labels(self.name).inc()
            try:
                value = await self.query()
            except asyncio.CancelledError:
                future.cancel()
                raise
            except BaseException as exc:
                future.set_exception(exc)
                future.exception()   # retrieved: whoever waits raises it; nobody else must
            else:
                self.value = value
                future.set_result(value)

    def forget(self) -> None:
        self.value = None

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._next is not None:
            self._next.cancel()


class Position:
    """A server's position on a connection of its own (so that a busy pool delays no sample), opened when first
    needed and again after it is lost; every sample bounded by `timeout`."""

    def __init__(self, dsn: str, statement: str, timeout: float = SAMPLE_TIMEOUT):
        self.dsn = dsn
        self.statement = statement
        self.timeout = timeout
        self.conn: asyncpg.Connection | None = None

    async def __call__(self) -> int | None:
        try:
            async with asyncio.timeout(self.timeout):
                if self.conn is None or self.conn.is_closed():
                    self.conn = await asyncpg.connect(self.dsn,
                                                      server_settings=application_name(self.dsn, "position"))
                return await self.conn.fetchval(self.statement)
        except BaseException:
            self.drop()
            raise

    def drop(self) -> None:
        if self.conn is not None:
            self.conn.terminate()   # no goodbye: a server that hangs would not answer it
            self.conn = None


class Replica:
    """A standby: its sampler, its pool (through Database, as the primary's), and a breaker that skips it for
    `rest` seconds after its sample failed, timed out or said it is no standby."""

    def __init__(self, name: str, db: Database | None, sampler: Sampler, rest: float = REST,
                 clock: Callable[[], float] = time.monotonic):
        self.name = name
        self.db = db
        self.sampler = sampler
        self.rest = rest
        self.clock = clock
        self.skipped_until = 0.0

    def usable(self) -> bool:
        return self.clock() >= self.skipped_until

    def fresh(self, position: int) -> bool:
        return self.usable() and self.sampler.value is not None and self.sampler.value >= position

    def trouble(self, why: str) -> None:
        if self.usable():
            log.warning("read replica %s is skipped for %g s: %s", self.name, self.rest, why)
        self.skipped_until = self.clock() + self.rest
        # what it said may be from before a restart (replay goes back to the last restartpoint) or a rebuild
        self.sampler.forget()

    def next_sample(self) -> asyncio.Future:
        """Its next sample, whose failure (or NULL) puts it aside."""
        future = self.sampler.after()
        future.add_done_callback(self._judge)
        return future

    def _judge(self, future: asyncio.Future) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            self.trouble(f"its position cannot be read ({type(exc).__name__})")
        elif future.result() is None:
            self.trouble("it is not a standby (pg_is_in_recovery() is false)")


def count(target: str, why: str) -> None:
    metrics.REPLICA_READS.labels(target, why).inc()


class Replicas:
    """The choice of where a read runs: `reader()` is a replica proven fresh, or None for the primary;
    `read(run)` runs `run(db)` on its Database, and again on the primary when the replica fails under it."""

    def __init__(self, primary: Database, primary_sampler: Sampler, replicas: Sequence[Replica],
                 catch_up: float = CATCH_UP, position_timeout: float = SAMPLE_TIMEOUT):
        self.primary = primary
        self.position = primary_sampler
        self.replicas = list(replicas)
        self.catch_up = catch_up
        self.position_timeout = position_timeout
        self._turn = 0   # fresh replicas take reads in turn

    def _pick(self, position: int) -> Replica | None:
        fresh = [replica for replica in self.replicas if replica.fresh(position)]
        if not fresh:
            return None
        self._turn += 1
        return fresh[self._turn % len(fresh)]

    async def reader(self) -> Replica | None:
        """A replica proven to have replayed every commit made before this call, or None (the primary), within
        position_timeout + catch_up seconds whatever the servers do."""
        if not any(replica.usable() for replica in self.replicas):
            count("primary", "no replica")
            return None
        try:   # shielded: one reader giving up does not cancel the sample the others share
            position = await asyncio.wait_for(asyncio.shield(self.position.after()), self.position_timeout)
        except Exception:
            count("primary", "no position")   # the primary's own trouble shows in the read that follows
            return None
        chosen = self._pick(position)
        if chosen is not None:
            count("replica", "fresh")
            return chosen
        deadline = asyncio.get_running_loop().time() + self.catch_up
        while True:
            waiting = {replica.next_sample() for replica in self.replicas if replica.usable()}
            remaining = deadline - asyncio.get_running_loop().time()
            if not waiting or remaining <= 0:
                break
            await asyncio.wait(waiting, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            chosen = self._pick(position)
            if chosen is not None:
                count("replica", "fresh")
                return chosen
        count("primary", "lagging" if any(replica.usable() for replica in self.replicas) else "no replica")
        return None

    async def read(self, run: Callable[[Database], Awaitable[T]]) -> T:
        """`run(db)` on a fresh replica, else on the primary; a replica lost (or whose query recovery cancelled,
        or whose pool is busy) under it costs the read a second run on the primary, not an error."""
        replica = await self.reader()
        if replica is None or replica.db is None:
            return await run(self.primary)
        try:
            return await run(replica.db)
        except Exception as exc:
            mapped = failure(exc)
            # the replica down, hung, busy, restarted or cancelling for its recovery; not a mistake of the query's
            # own nor a slow one (57014): the primary would answer those the same, twice as late
            if not (isinstance(exc, (asyncio.TimeoutError, Behind))
                    or mapped is not None and mapped.code == UNAVAILABLE):
                raise
            replica.trouble(f"a read failed on it ({type(exc).__name__})")
            count("primary", "replica failed")
            return await run(self.primary)

    async def close(self) -> None:
        for sampler in (self.position, *(replica.sampler for replica in self.replicas)):
            sampler.close()
        for position in (self.position.query, *(replica.sampler.query for replica in self.replicas)):
            if isinstance(position, Position):
                position.drop()
        for replica in self.replicas:
            if replica.db is not None:
                try:   # a hung replica would never answer a graceful close
                    await asyncio.wait_for(replica.db.close(), SAMPLE_TIMEOUT)
                except (Exception, asyncio.TimeoutError):
                    replica.db.pool.terminate()



async def where_it_is(sampler: Sampler, conn: asyncpg.Connection) -> None:
    """A new pool connection reaches the server as it is now, which may be another than the one the sampler
    measured: restarted since (after a crash, replay goes on from its last restartpoint: what it showed before may
    be gone for a while), promoted, rebuilt. A connection that lives through none of those (each ends it) is on
    the server the sampler measured; a new one must show it is at least where the sampler said."""
    position = await conn.fetchval(REPLICA_POSITION)
    if position is None or sampler.value is not None and position < sampler.value:
        raise Behind("the replica is behind what it said, or no standby: restarted, rebuilt or promoted")


async def build(primary: Database, primary_dsn: str, urls: Sequence[str], *, pool_size: int, statement_timeout: float,
          lock_timeout: float, acquire_timeout: float, gate: Callable[[], Gate]) -> "Replicas":
    """The samplers and, per replica, a small pool (half the primary's: it only reads) that connects when first
    used, so that a replica down at start is skipped, not fatal."""
    replicas = []
    for url in urls:
        name = database_address(url)   # never the password: it names the replica in logs and metrics
        pool = await create_pool(url, min_size=0, max_size=max(2, pool_size // 2), statement_timeout=statement_timeout,
                           lock_timeout=lock_timeout, role="replica")
        replicas.append(Replica(name, Database(pool, acquire_timeout=acquire_timeout, gate=gate()),
                                Sampler(name, Position(url, REPLICA_POSITION))))
    return Replicas(primary, Sampler("primary", Position(primary_dsn, PRIMARY_POSITION)), replicas)
