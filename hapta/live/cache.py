"""The read cache for records.get and records.list: in-process (cachetools), invalidated by the change feed.

What a key holds, and why two principals with the same key may share an answer, is decided in access/filters.py
(query_key); this module keeps the answers and knows when they are stale.

Invalidation is by generation: each table's generation is the transaction id of the last change the feed
reported for it (before any change, and after a reset, a token of this process alone). An entry's key holds the
generations of every table its answer read, so a change makes all of them unreachable at once (they age out of
the LRU), and a read that started before a change stores under the old generations, never served again. Before
anything is served from memory, the feed's barrier (Listener.sync) makes sure every change committed before the
read began has been heard: a write acknowledged by any worker is never hidden. While the feed is down nothing is
served; after its reset everything is dropped.

With REDIS_URL, answers are also kept in Redis under the same key: generations made of transaction ids are the
same in every process that heard the same changes, so workers and nodes share answers (tables changed since
start), never one older than what the reader has heard. Concurrent identical misses wait for one query.
"""
from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging
import secrets
from typing import Any, Awaitable, Callable, Iterable

import msgspec
from cachetools import TTLCache

from .. import metrics
from ..store.redis import ERRORS as REDIS_ERRORS, Breaker, client as redis_client, close as close_redis

log = logging.getLogger("hapta.cache")

# One barrier per request is enough: it has heard every change committed before the request began, which is all a
# later read of the same request must see (a page, then the records its `expand` reaches). False: in a request
# that has not synced yet; None outside any request (realtime delivery, tasks): every read syncs.
_request_synced: contextvars.ContextVar[bool | None] = contextvars.ContextVar("hapta_request_synced", default=None)


def request_began() -> contextvars.Token:
    """Called by the dispatcher as each request starts; request_ended(token) as it ends."""
    return _request_synced.set(False)


def request_ended(token: contextvars.Token) -> None:
    _request_synced.reset(token)


class ReadCache:
    def __init__(self, sync: Callable[[], Awaitable[bool]], shared: "SharedStore | None" = None,
                 max_bytes: int = 64 << 20, ttl: float = 300.0):
        # Bounded by the entries' size, keys included (a page may hold 500 records; a key, a 4 KB cursor); the TTL
        # is only a backstop for memory, freshness comes from invalidation. An entry is (answer, its size).
        self.entries: TTLCache = TTLCache(max_bytes, ttl, getsizeof=lambda entry: entry[1])
        self.sync = sync       # the feed's barrier (Listener.sync): False while it cannot hear changes
        self.shared = shared   # with REDIS_URL: answers shared by every worker and node
        self.ttl = ttl
        # table -> the last change heard (its transaction id, the same in every process); tables with no
        # change heard since this process started (or since a reset) are at `origin`, a token of this process.
        self.generations: dict[str, str] = {}
        self.origin = _token()
        self.loading: dict[tuple, asyncio.Future] = {}
        self.hits = 0       # answered from memory, or by joining a query already running
        self.loads = 0      # answered by PostgreSQL

    def _count(self, result: str) -> None:
        if result == "load":
            self.loads += 1
        else:
            self.hits += 1
        metrics.CACHE_READS.labels(result).inc()

    def changed(self, table: str, transaction: str) -> None:
        """The feed reported a change to `table` by `transaction`."""
        self.generations[table] = f"x{transaction}" if transaction else _token()

    def invalidate(self, table: str) -> None:
        """Forget what was read of `table` (a change without a transaction id)."""
        self.generations[table] = _token()

    def flush(self) -> None:
        """Changes may have gone unheard: nothing cached so far may be served again, here or from Redis."""
        self.generations.clear()
        self.origin = _token()
        self.entries.clear()

    def _full_key(self, key: tuple, tables: Iterable[str]) -> tuple:
        return (tuple(self.generations.get(t, self.origin) for t in tables), key)

    async def read(self, key: tuple | None, tables: tuple[str, ...], load: Callable[[], Awaitable[Any]]) -> Any:
        """The cached answer for `key`, or `load()`'s (shared with concurrent identical reads). The answer is
        shared between callers: never mutate it."""
        if key is None:
            self._count("load")
            return await load()
        full = self._full_key(key, tables)
        if self.shared is not None or full in self.entries or full in self.loading:
            # Before serving what is here (or in Redis), hear every change committed before this read began: a
            # write that another worker acknowledged a moment ago must not be hidden (read-your-writes).
            synced = _request_synced.get()
            if synced is not True:
                if not await self.sync():
                    self._count("load")   # the feed is down: changes may be going unheard
                    return await load()
                if synced is False:
                    _request_synced.set(True)
            full = self._full_key(key, tables)
        try:
            value = self.entries[full][0]
        except KeyError:
            pass
        else:
            self._count("hit")
            return value
        pending = self.loading.get(full)
        if pending is not None:
            self._count("hit")
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise
                return await load()   # the one who loaded went away; this caller has not
        future = asyncio.get_running_loop().create_future()
        self.loading[full] = future
        try:
            value = await self._load(full, load)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()   # retrieved: waiters, if any, raise it; nobody else must
            raise
        finally:
            self.loading.pop(full, None)
        if self._full_key(key, tables) == full:   # not invalidated while loading
            try:
                self.entries[full] = (value, _size(full, value))
            except ValueError:   # larger than the whole cache: serve it, keep nothing
                pass
        future.set_result(value)
        return value

    async def _load(self, full: tuple, load: Callable[[], Awaitable[Any]]) -> Any:
        """From Redis when another process already asked the same under the same generations, else PostgreSQL."""
        if self.shared is None or not _shareable(full):
            self._count("load")
            return await load()
        digest = hashlib.sha256(repr(full).encode()).hexdigest()
        value = await self.shared.get(digest)
        if value is not None:
            self._count("shared")
            return value
        self._count("load")
        value = await load()
        await self.shared.put(digest, value, self.ttl)
        return value


_json_size = msgspec.json.Encoder().encode


def _size(key: tuple, value: Any) -> int:
    """An entry's weight: the answer as encoded, its key as written out, and the entry's own overhead, roughly."""
    return len(_json_size(value)) + len(repr(key)) + 200


def _token() -> str:
    return "p" + secrets.token_hex(8)


def _shareable(full: tuple) -> bool:
    """Only answers keyed by changes every process heard alike (not by a process's own tokens)."""
    return all(generation.startswith("x") for generation in full[0])


class SharedStore:
    """Cached answers in Redis, for every worker and node (REDIS_URL). Redis trouble costs a query, never a read;
    a Redis that hangs is skipped (store.redis.Breaker) rather than waited for on every read."""

    def __init__(self, url: str, prefix: str):
        self.client = redis_client(url, timeout=0.5, max_connections=256)
        self.prefix = prefix
        self.encode = msgspec.msgpack.Encoder().encode
        self.decode = msgspec.msgpack.Decoder().decode
        self.breaker = Breaker()

    async def get(self, digest: str) -> Any:
        if not self.breaker.allows():
            return None
        try:
            data = await self.client.get(f"{self.prefix}cache:{digest}")
        except REDIS_ERRORS as exc:
            self._trouble(exc)
            return None
        self._fine()
        return None if data is None else self.decode(data)

    async def put(self, digest: str, value: Any, ttl: float) -> None:
        if not self.breaker.allows():
            return
        try:
            await self.client.set(f"{self.prefix}cache:{digest}", self.encode(value), px=int(ttl * 1000))
        except REDIS_ERRORS as exc:
            self._trouble(exc)
            return
        self._fine()

    def _trouble(self, exc: BaseException) -> None:
        metrics.UPSTREAM_ERRORS.labels("redis").inc()
        if self.breaker.failed():   # the class name only: a Redis error can quote the URL, password and all
            log.warning("the shared read cache cannot reach Redis (%s); reading from PostgreSQL", type(exc).__name__)

    def _fine(self) -> None:
        if self.breaker.succeeded():
            log.warning("the shared read cache reaches Redis again")

    async def close(self) -> None:
        await close_redis(self.client)
