"""The read cache for records.get and records.list: in-process (cachetools), invalidated by the change feed.

A cached answer is keyed by the normalised query (the bound filter, not its text) and by exactly what the rules
read about the principal: the values of the `@user.*` variables that the collection's rule, the filter and the
guards of the returned or sorted fields refer to, and whether the principal is an admin. Two principals with the
same key get the same SQL result, so no one is ever served what another's rules allowed. A rule that the filter
already implies reads nothing (`public = true` implies `public = true || author = @user.id`), which lets every
reader of a public feed share one entry. Queries that read `@now` are never cached.

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
import hashlib
import logging
import secrets
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable

import msgspec
from cachetools import LRUCache, TTLCache

from . import metrics
from .models import EVERYONE, Model
from .query import bind, cost, parse, relations_used, vars_used
from .query.ast import And, Node, Or
from .query.memo import SizedMemo, filter_bytes
from .store.redis import ERRORS as REDIS_ERRORS, Breaker, client as redis_client, close as close_redis

log = logging.getLogger("hapta.cache")

ADMIN_KEY = ("admin",)


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
            if not await self.sync():
                self._count("load")   # the feed is down: changes may be going unheard
                return await load()
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


# ---- keys --------------------------------------------------------------------------------------------------

def _conjuncts(node: Node) -> tuple[Node, ...]:
    return node.items if isinstance(node, And) else (node,)


def _disjuncts(node: Node) -> tuple[Node, ...]:
    return node.items if isinstance(node, Or) else (node,)


def implied(filter_node: Node | None, rule: Node) -> bool:
    """True when every record the filter matches also satisfies the rule, by the plain shape
    `A && ...` against `A || ...` (absorption, which holds in SQL's three-valued logic too)."""
    if filter_node is None:
        return False
    return any(c == d for c in _conjuncts(filter_node) for d in _disjuncts(rule))


@dataclass(frozen=True, slots=True)
class BoundFilter:
    """A client's filter bound to a collection, with what cache keys need of it, worked out once."""
    node: Node
    digest: str                   # stands for the filter in keys: cheaper to hash and to hold than the tree
    names: frozenset[str]         # the variables it reads (through the guards and view rules it touches too)
    relations: frozenset[str]     # the relation fields it follows
    cost: int                     # what it asks of the database (hapta.query.cost)


# Bound filters by (schema, collection, text): a hot page is bound once, not at every read. Bounded by bytes.
BOUND_CACHE_BYTES = 8 << 20
_bound = SizedMemo(BOUND_CACHE_BYTES)


def _implied(model: Model, rule_op: str, found: BoundFilter | None, rule: Node) -> bool:
    key = (id(rule), model.name, rule_op, found.digest if found else "")   # rules live as long as their gateway
    implication = _implications.get(key)
    if implication is None:
        implication = _implications[key] = implied(found.node if found else None, rule)
    return implication


_implications: LRUCache = LRUCache(4096)


def bound_filter(model: Model, schema: Any, text: str | None) -> BoundFilter | None:
    """A client's filter bound to `model` in `schema`, or None for no filter; FilterError when invalid. Parsed and
    bound once per (schema, collection, text), for every read and subscription that uses it."""
    if text is None or not text.strip():
        return None
    key = (id(schema), model.name, text)
    found = _bound.get(key)
    if found is None:
        node = bind(parse(text), schema.tables[model.name], schema)
        digest = hashlib.blake2b(repr(node).encode(), digest_size=16).hexdigest()
        found = BoundFilter(node, digest, frozenset(vars_used(node)), frozenset(relations_used(node)), cost(node))
        _bound.put(key, found, filter_bytes(text))
    return found


def _analysis(nodes: tuple[Node, ...]) -> tuple[frozenset[str], frozenset[str]]:
    """(variables, relations) the app's own rules and guards read; remembered per set of them (few, static)."""
    found = _analysed.get(nodes)
    if found is None:
        names: set[str] = set()
        relations: set[str] = set()
        for node in nodes:
            names |= vars_used(node)
            relations |= relations_used(node)
        found = _analysed[nodes] = (frozenset(names), frozenset(relations))
    return found


_analysed: LRUCache = LRUCache(4096)


def query_key(model: Model, rule_op: str, principal: Any, found: BoundFilter | None, read_fields: Iterable[str],
              rest: tuple) -> tuple[tuple | None, tuple[str, ...]]:
    """(key, tables) for a read, or (None, ...) when it must not be cached. `found` is the client's filter (from
    bound_filter); `read_fields` are the fields whose guards shape the answer (returned and sorted fields); `rest`
    is the rest of the normalised query."""
    rule = model.rules[rule_op]
    nodes: list[Node] = []
    if not principal.is_admin:
        if rule is None:
            return None, ()   # admin only: the query answers FORBIDDEN
        if rule is not EVERYONE and not _implied(model, rule_op, found, rule):
            nodes.append(rule)
        nodes += [model.table.fields[f].guard for f in read_fields
                  if f in model.table.fields and model.table.fields[f].guard is not None]
    names, relations = _analysis(tuple(nodes))
    if found is not None:
        names, relations = names | found.names, relations | found.relations
    if "now" in names:
        return None, ()
    if principal.is_admin:
        who: tuple = ADMIN_KEY
    else:
        values = principal.rule_vars()
        who = tuple((name, values.get(name)) for name in sorted(names))
    tables = (model.name, *sorted({model.table.fields[r].relation for r in relations} - {model.name}))
    return (model.name, rule_op, found.digest if found else "", who, rest), tables
