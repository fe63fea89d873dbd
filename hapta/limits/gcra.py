"""GCRA, the generic cell rate algorithm: a rate limit as arithmetic on one number per key.

A limit of `rate` events per `per` seconds, `burst` at once, becomes an emission interval T = per / rate and a
tolerance of `burst` events. A key stores only its theoretical arrival time (TAT): when its bucket would be empty
again if nothing more came. An event of cost c at time `now` passes when

    max(TAT, now) + c*T - burst*T <= now

and then moves TAT to max(TAT, now) + c*T. The rest follows from TAT:

    remaining   = floor((now - TAT + burst*T) / T)   events that would pass right now
    reset       = TAT - now                          until the bucket is full again (`burst` remaining)
    retry_after = max(TAT, now) + c*T - burst*T - now   for a refused event: the moment it would pass

Times are integer microseconds so that this module and the Redis Lua script (doubles, exact below 2**53) compute
the same numbers; T is rounded to the microsecond. A key whose TAT has passed is the same as a key never seen,
which is what lets both stores forget idle keys.
"""
from __future__ import annotations

from dataclasses import dataclass

MICROS = 1_000_000


@dataclass(frozen=True, slots=True)
class Rate:
    """A limit in the units GCRA works in."""
    interval: int   # microseconds between events at the sustained rate
    burst: int      # events that may pass at once

    @classmethod
    def of(cls, rate: int, per: float = 1.0, burst: int | None = None) -> "Rate":
        """`rate` events per `per` seconds, `burst` at once (default: `rate`, as a bucket that refills in `per`)."""
        if isinstance(rate, bool) or not isinstance(rate, int) or rate < 1:
            raise ValueError(f"rate must be a positive integer, not {rate!r}")
        if not per > 0:
            raise ValueError(f"per must be a positive number of seconds, not {per!r}")
        burst = rate if burst is None else burst
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ValueError(f"burst must be a positive integer, not {burst!r}")
        return cls(max(1, round(per * MICROS / rate)), burst)


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer for one event, and the standing of its key afterwards."""
    allowed: bool
    limit: int                  # the burst: most events that may pass at once
    remaining: int              # events that would pass right now
    reset: float                # seconds until `remaining` is back to `limit`
    retry_after: float | None   # refused: seconds until this event would pass; allowed: None

    @classmethod
    def from_micros(cls, allowed: bool, limit: int, remaining: int, reset: int, retry_after: int) -> "Decision":
        return cls(allowed, limit, max(0, min(limit, remaining)), max(0, reset) / MICROS,
                   None if allowed else retry_after / MICROS)


def decide(tat: int | None, now: int, rate: Rate, cost: int = 1) -> tuple[int | None, Decision]:
    """One event of `cost` at `now` (microseconds) against a key whose TAT is `tat` (None: never seen).

    Returns the TAT to store (None: leave the key as it is) and the decision. Cost 0 only looks.
    """
    if cost < 0 or cost > rate.burst:
        raise ValueError(f"cost must be between 0 and the burst ({rate.burst}), not {cost}")
    start = now if tat is None or tat < now else tat
    new_tat = start + cost * rate.interval
    allow_at = new_tat - rate.burst * rate.interval
    if allow_at > now:
        return None, Decision.from_micros(False, rate.burst, _remaining(start, now, rate), start - now,
                                          allow_at - now)
    return (new_tat if cost else None), Decision.from_micros(True, rate.burst, _remaining(new_tat, now, rate),
                                                             new_tat - now, 0)


def _remaining(tat: int, now: int, rate: Rate) -> int:
    return (now - tat + rate.burst * rate.interval) // rate.interval
