"""Rate limits: which limit applies to a request, and where its GCRA state lives (this process, or Redis).

    limiter = Limiter(app.limits, settings.redis_url)
    await limiter.enforce("records.create", principal_key(peer), collection="posts")   # RATE_LIMITED when over
    decision = await limiter.check("files.chunk|user:42", Limit(200, per=1))           # the bare primitive

The keys of `App.limits`, most specific first:
    "records.create:posts"   an op on one collection: its own bucket
    "records.create"         the op on every collection together
    "default"                every other op, each op counted apart
An op none of them names is not limited. Each bucket is counted per principal (principal_key).

With a Redis URL the state is shared by every worker and node. When Redis fails, the limiter logs it once, keeps
answering from a local store (or refuses with UNAVAILABLE when `fallback="refuse"`), and tries Redis again after a
short backoff, by itself. See docs/limits.md.
"""
from __future__ import annotations

import ipaddress
import logging
from functools import lru_cache
from typing import Any, Mapping

from .. import metrics
from ..config import Limit
from ..config import ConfigError
from ..protocol.errors import RATE_LIMITED, UNAVAILABLE, HaptaError
from ..store.redis import ERRORS as REDIS_ERRORS, Breaker
from .gcra import Decision, Rate, decide
from .keys import DEFAULT_PREFIX
from .stores import LocalStore, RedisStore

__all__ = ["Decision", "Limiter", "Rate", "decide", "principal_key", "FALLBACK_LOCAL", "FALLBACK_REFUSE"]

log = logging.getLogger("hapta.limits")

DEFAULT = "default"
FALLBACK_LOCAL, FALLBACK_REFUSE = "local", "refuse"
# After Redis fails, the first retry comes this soon; each further failure doubles the wait up to the cap.
RETRY_FIRST, RETRY_CAP = 0.5, 5.0
REDIS_FAILURES = REDIS_ERRORS


def principal_key(peer: Any, *, by_address: bool = False) -> str:
    """Who a request counts against: the signed-in user, else the client address. `by_address` counts by
    address even for a user: ops a guest may call (auth.*) must not get a fresh budget from signing in."""
    user_id = peer.principal.user_id
    if user_id and not by_address:
        return f"user:{user_id}"
    return f"addr:{address_key(peer.address)}"


@lru_cache(maxsize=4096)
def address_key(address: str | None) -> str:
    """An IPv6 client owns a whole /64, so it counts as its /64; an IPv4 address counts as itself."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def to_rate(limit: Limit | Rate, name: str = "limit") -> Rate:
    if isinstance(limit, Rate):
        return limit
    try:
        return Rate.of(limit.rate, limit.per, limit.burst)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"limits[{name!r}]: {exc}") from None


class Limiter:
    """The app's limits, the local store, and (with a Redis URL) the shared one with its health."""

    def __init__(self, limits: Mapping[str, Limit], redis_url: str | None = None, *,
                 prefix: str = DEFAULT_PREFIX, fallback: str = FALLBACK_LOCAL):
        if fallback not in (FALLBACK_LOCAL, FALLBACK_REFUSE):
            raise ConfigError(f"limits_fallback must be {FALLBACK_LOCAL!r} or {FALLBACK_REFUSE!r}, not {fallback!r}")
        self.rates = {name: to_rate(limit, name) for name, limit in limits.items()}
        self.local = LocalStore()
        self.shared = RedisStore(redis_url, prefix) if redis_url else None
        self.fallback = fallback
        self.breaker = Breaker(RETRY_FIRST, RETRY_CAP)   # while Redis fails: skip it, probe it now and then

    async def close(self) -> None:
        if self.shared is not None:
            await self.shared.close()

    def resolve(self, op: str, collection: str | None = None, given: Limit | None = None) -> tuple[str, Rate] | None:
        """The bucket and its rate: "op:collection" or "op" from the config, else the `given` limit, else "default"
        (counted per op); None when nothing limits `op`."""
        if collection is not None:
            name = f"{op}:{collection}"
            rate = self.rates.get(name)
            if rate is not None:
                return name, rate
        rate = self.rates.get(op)
        if rate is None and given is not None:
            rate = to_rate(given, op)
        if rate is None:
            rate = self.rates.get(DEFAULT)
        return None if rate is None else (op, rate)

    async def enforce(self, name: str, who: str, *, collection: str | None = None, limit: Limit | None = None,
                      cost: int = 1) -> Decision | None:
        """Count one event of bucket `name` for `who`; raise RATE_LIMITED with the exact retry_after when over.
        `limit` applies when the config does not name `name` (so an app can still tune it). `name` is also a
        metrics label: pass a fixed name, never user data (that belongs in `who`)."""
        found = self.resolve(name, collection, limit)
        if found is None:
            return None
        bucket, rate = found
        decision = await self.check(f"{bucket}|{who}", rate, cost=cost)
        if not decision.allowed:
            metrics.RATE_LIMITED.labels(bucket).inc()
            assert decision.retry_after is not None
            raise HaptaError(RATE_LIMITED, f"rate limit for {bucket} reached; retry in {decision.retry_after:.3f} s",
                             retry_after=decision.retry_after,
                             details={"key": bucket, "limit": decision.limit, "remaining": decision.remaining,
                                      "reset": decision.reset})
        return decision

    async def status(self, name: str, who: str, *, collection: str | None = None) -> Decision | None:
        """The standing of bucket `name` for `who`, without counting anything; None when nothing limits it."""
        found = self.resolve(name, collection)
        if found is None:
            return None
        bucket, rate = found
        return await self.check(f"{bucket}|{who}", rate, cost=0)

    async def check(self, key: str, limit: Limit | Rate, *, cost: int = 1) -> Decision:
        """The primitive: count `cost` events (0 only looks) against `key` under `limit`. Never raises for being
        over the limit (see Decision.allowed); raises UNAVAILABLE only with fallback="refuse" while Redis is down."""
        rate = to_rate(limit, key.split("|", 1)[0])
        if not 0 <= cost <= rate.burst:
            raise ValueError(f"cost must be between 0 and the burst ({rate.burst}), not {cost}")
        if self.shared is not None:
            if self.breaker.allows():
                try:
                    decision = await self.shared.decide(key, rate, cost)
                except REDIS_FAILURES as exc:
                    self._shared_failed(exc)
                else:
                    self._shared_answered()
                    return decision
            if self.fallback == FALLBACK_REFUSE:
                raise HaptaError(UNAVAILABLE, "the rate limiter's store is unavailable",
                                 retry_after=round(max(self.breaker.wait(), RETRY_FIRST), 3))
        return self.local.decide(key, rate, cost)

    # ---- Redis health: one warning per outage, one probe at a time while down -----------------------------

    def _shared_failed(self, exc: BaseException) -> None:
        metrics.UPSTREAM_ERRORS.labels("redis").inc()
        if self.breaker.failed():
            metrics.REDIS_DOWN.set(1)
            # The class name only: a Redis error can quote the URL, which may hold a password.
            log.warning("Redis is unavailable (%s): rate limits %s until it answers again", type(exc).__name__,
                        "refuse requests" if self.fallback == FALLBACK_REFUSE else "are kept in this process")

    def _shared_answered(self) -> None:
        if self.breaker.succeeded():
            metrics.REDIS_DOWN.set(0)
            log.warning("Redis answers again: rate limits are shared again")
