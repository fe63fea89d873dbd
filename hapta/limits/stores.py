"""Where TATs live: in this process (LocalStore), or in Redis shared by every worker and node (RedisStore).

Both run the same arithmetic (gcra.py); the Redis one runs it as one Lua script, so that reading and writing a
key's TAT is one atomic step on the server and every gateway reads the same clock (Redis TIME).
"""
from __future__ import annotations

import time
from typing import Callable

from cachetools import TLRUCache

from ..store.redis import client as redis_client, close as close_redis
from . import keys
from .gcra import Decision, Rate, decide

# Live keys kept in one process; past it the least recently used goes first (it then counts as fresh).
LOCAL_MAX_KEYS = 100_000


def monotonic_micros() -> int:
    return time.monotonic_ns() // 1000


class LocalStore:
    """TATs in a dict bounded in size, where a key disappears when its TAT passes: from then on it is the same
    as a key never seen, so idle keys cost no memory and forgetting them changes no answer."""

    def __init__(self, max_keys: int = LOCAL_MAX_KEYS, clock: Callable[[], int] = monotonic_micros):
        self.clock = clock
        self.tats: TLRUCache = TLRUCache(max_keys, ttu=lambda _key, tat, _now: tat, timer=clock)

    def decide(self, key: str, rate: Rate, cost: int = 1) -> Decision:
        new_tat, decision = decide(self.tats.get(key), self.clock(), rate, cost)
        if new_tat is not None:
            self.tats[key] = new_tat
        return decision


# gcra.decide, line for line. KEYS[1]: the key's TAT. ARGV: interval (us), burst, cost[, now (us): tests only].
# Returns {allowed, remaining, reset (us), retry_after (us)}. Integers travel as '%.0f' strings: Lua 5.1 would
# print a number this large in exponent form.
GCRA_LUA = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
local new_tat = tat + cost * interval
local allow_at = new_tat - burst * interval
if allow_at > now then
  return {0, math.floor((now - tat + burst * interval) / interval), tat - now, allow_at - now}
end
if cost > 0 then
  redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
end
return {1, math.floor((now - new_tat + burst * interval) / interval), new_tat - now, 0}
"""


class RedisStore:
    """One EVALSHA per decision (redis-py loads the script on NOSCRIPT). Errors propagate: the Limiter decides
    what a failure means. Timeouts are short because a request waits on them."""

    def __init__(self, url: str, prefix: str = keys.DEFAULT_PREFIX, *, timeout: float = 1.0,
                 max_connections: int = 64):
        self.client = redis_client(url, timeout=timeout, max_connections=max_connections)
        self.script = self.client.register_script(GCRA_LUA)
        self.prefix = prefix

    async def decide(self, key: str, rate: Rate, cost: int = 1, now: int | None = None) -> Decision:
        args = [rate.interval, rate.burst, cost] + ([now] if now is not None else [])
        allowed, remaining, reset, retry_after = await self.script(
            keys=[keys.limit_state(self.prefix, key)], args=args)
        return Decision.from_micros(bool(allowed), rate.burst, remaining, reset, retry_after)

    async def close(self) -> None:
        await close_redis(self.client)
