"""Redis as the gateway uses it: one way to make a client, one list of what its failures look like, and a circuit
breaker, so that a Redis that hangs or is gone costs one timeout now and then, never one per request.

    client(url, timeout)   short timeouts (a request waits on them); one fresh connection after a stale one (a
                           restarted Redis), no more. A redis+sentinel:// URL (settings.SENTINEL_FORM) gives a
                           client of redis-py's Sentinel: each new connection asks the sentinels where the master
                           is now, so after a failover the next connection (and the bus's next subscription)
                           reaches the promoted replica by itself
    Breaker                closed: calls go through; after a failure, open for a moment (doubling while failures
                           go on, up to a cap), then one call at a time probes; the first success closes it
"""
from __future__ import annotations

import asyncio
import time

import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff

from ..settings import SentinelURL, parse_sentinel_url

ERRORS = (OSError, asyncio.TimeoutError, redis.exceptions.RedisError)


class BlockingSentinelPool(SentinelConnectionPool, redis.asyncio.BlockingConnectionPool):
    """redis-py's Sentinel pool, waiting for a free connection (up to its timeout) as the plain one does instead of
    failing at once when all are in use: a burst of requests queues briefly rather than opening the breaker."""


def client(url: str, *, timeout: float, max_connections: int = 64) -> redis.asyncio.Redis:
    if url.startswith("redis+sentinel://"):
        return sentinel_client(parse_sentinel_url(url), timeout=timeout, max_connections=max_connections)
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=timeout, socket_timeout=timeout, socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 1))
    return redis.asyncio.Redis(connection_pool=pool)


def sentinel_client(target: SentinelURL, *, timeout: float, max_connections: int) -> redis.asyncio.Redis:
    """The master the sentinels name, through redis-py's own Sentinel support. A sentinel that does not answer
    costs `timeout` before the next is asked; the retry reconnects once, which asks the sentinels again."""
    sentinels = Sentinel(target.sentinels, sentinel_kwargs={
        "socket_timeout": timeout, "socket_connect_timeout": timeout, "password": target.sentinel_password})
    return sentinels.master_for(
        target.master, connection_pool_class=BlockingSentinelPool, db=target.db, username=target.username,
        password=target.password, max_connections=max_connections, timeout=timeout, socket_timeout=timeout,
        socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 1))


async def close(connection: redis.asyncio.Redis) -> None:
    await connection.aclose()
    pool = connection.connection_pool
    await pool.disconnect()
    if isinstance(pool, SentinelConnectionPool):   # the connections to the sentinels themselves
        await pool.sentinel_manager.aclose()


class Breaker:
    """When to skip Redis. `allows()` before a call; `failed()` / `succeeded()` after it, each True when the state
    changed (the caller logs it: one line per outage, not one per request)."""

    def __init__(self, first: float = 0.5, cap: float = 5.0, clock=time.monotonic):
        self.first, self.cap, self.clock = first, cap, clock
        self.open = False
        self.retry_at = 0.0
        self.backoff = first

    def allows(self) -> bool:
        if not self.open:
            return True
        now = self.clock()
        if now < self.retry_at:
            return False
        self.retry_at = now + self.backoff   # this call probes; the others keep skipping meanwhile
        return True

    def failed(self) -> bool:
        changed = not self.open
        self.backoff = self.first if changed else min(self.backoff * 2, self.cap)
        self.open = True
        self.retry_at = self.clock() + self.backoff
        return changed

    def succeeded(self) -> bool:
        changed = self.open
        self.open = False
        self.backoff = self.first
        return changed

    def wait(self) -> float:
        """Seconds until the next probe (for a retry_after)."""
        return max(self.retry_at - self.clock(), 0.0)
