"""Flow control: what one client may cost a gateway process, as small state machines without sockets (the
connection guards of docs/operations.md; "guards" of fields are something else: access/).

    Admission    open connections, in total and per client address      over either cap: close 1013 (HTTP: 503)
    Budget       bytes of HTTP request bodies held, in total and per address   over either cap: HTTP 503
    MessageRate  messages per second on one connection (GCRA)          over: RATE_LIMITED; still flooding: 1008
    Outbox       bytes waiting for a client, queued or in the transport  over: the client is dropped (TCP reset)
    IdleTimer    seconds without a message                               over: close 1000 (off by default)

The connection (connection.py) and the server (server.py) apply them; the knobs live on config.App and
docs/operations.md lists each with its default and its close code. The rest is websockets' own: frame size (1009),
keepalive ping/pong, the opening-handshake timeout and the incoming queue.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable

import msgspec

from ..config import Limit
from ..limits.gcra import MICROS, Rate, decide

# Refused messages in a row after which throttling turns into closing (1008): a client that honours retry_after
# never gets near it, one that ignores RATE_LIMITED gets there within a frame or two.
FLOOD_STRIKES = 100


# File descriptors a gateway process keeps for other things than client sockets: its database and Redis pools,
# the listening socket, hook and function workers' pipes, files being stored, and the sockets of connections being
# refused.
FD_RESERVE = 256


def connection_cap(configured: int, open_files: int) -> int:
    """The total cap a process can honour: each connection holds a file descriptor, and a cap above what the open
    files limit (RLIMIT_NOFILE) allows would end in accept() failing (EMFILE) rather than in a clean 1013."""
    return max(1, min(configured, open_files - FD_RESERVE))


class Admission:
    """Counts open connections in total and per client address; `enter` refuses past either cap."""

    # what a refusal is called (a metrics label) -> the close reason the client reads
    REFUSALS = {"capacity": "the server is at capacity; try again later",
                "address": "too many connections from your address; try again later"}

    __slots__ = ("total", "per_address", "count", "by_address")

    def __init__(self, total: int, per_address: int):
        self.total = total
        self.per_address = per_address
        self.count = 0
        self.by_address: dict[str | None, int] = {}

    def enter(self, address: str | None) -> str | None:
        """Count a new connection; or, over a cap, count nothing and return which cap ("capacity", "address")."""
        if self.count >= self.total:
            return "capacity"
        held = self.by_address.get(address, 0)
        if held >= self.per_address:
            return "address"
        self.count += 1
        self.by_address[address] = held + 1
        return None

    def leave(self, address: str | None) -> None:
        self.count -= 1
        held = self.by_address.pop(address) - 1
        if held:   # an address without connections costs no memory
            self.by_address[address] = held


class Budget:
    """Bytes held at once, in total and per client address: the request bodies of plain HTTP (webhooks) being read
    or answered. `take` counts `size` more, or, over either cap, counts nothing and says which ("capacity",
    "address"); `give` returns what was taken. An address holding nothing costs no memory."""

    __slots__ = ("total", "per_address", "held", "by_address")

    def __init__(self, total: int, per_address: int):
        self.total = total
        self.per_address = per_address
        self.held = 0
        self.by_address: dict[str | None, int] = {}

    def take(self, address: str | None, size: int) -> str | None:
        if not size:
            return None
        if self.held + size > self.total:
            return "capacity"
        held = self.by_address.get(address, 0)
        if held + size > self.per_address:
            return "address"
        self.held += size
        self.by_address[address] = held + size
        return None

    def give(self, address: str | None, size: int) -> None:
        if not size:
            return
        self.held -= size
        held = self.by_address.pop(address) - size
        if held:
            self.by_address[address] = held


class MessageRate:
    """Messages per second on one connection, by GCRA (hapta.limits.gcra, the arithmetic the rate limiter uses),
    and how many were refused in a row: the flood that earns a close."""

    __slots__ = ("rate", "tat", "strikes")

    def __init__(self, limit: Limit | None):
        self.rate = None if limit is None else Rate.of(limit.rate, limit.per, limit.burst)
        self.tat: int | None = None
        self.strikes = 0

    def admit(self, now: float) -> float | None:
        """One message at `now` (monotonic seconds): None when it may pass, else the seconds until it would."""
        if self.rate is None:
            return None
        tat, decision = decide(self.tat, int(now * MICROS), self.rate)
        if decision.allowed:
            self.tat = tat
            self.strikes = 0
            return None
        self.strikes += 1
        return decision.retry_after

    @property
    def flooding(self) -> bool:
        return self.strikes >= FLOOD_STRIKES


class Outbox:
    """Encoded replies and events waiting to leave, counted in bytes.

    The cap is checked before a message joins (`full`), against what already waits for the client: the bytes
    queued here plus those the transport still buffers. So a client that keeps up gets every reply, even one larger
    than the cap, while one that does not read is dropped once `cap` bytes wait for it: what it can pin in this
    process is at most the cap plus one message.
    """

    __slots__ = ("cap", "parts", "queued")

    def __init__(self, cap: int):
        self.cap = cap
        self.parts: list[bytes] = []
        self.queued = 0

    def full(self, buffered: int) -> bool:
        return self.queued + buffered > self.cap

    def put(self, data: bytes) -> None:
        self.parts.append(data)
        self.queued += len(data)

    def take_frame(self, encode: Callable[[Any], bytes]) -> bytes:
        """Everything queued, as one frame: a lone message as it is, several as one array (a batch). Each part is
        already encoded, so joining them is a copy, not a second encoding."""
        parts, self.parts, self.queued = self.parts, [], 0
        return parts[0] if len(parts) == 1 else encode([msgspec.Raw(part) for part in parts])

    def clear(self) -> None:
        self.parts, self.queued = [], 0

    def __len__(self) -> int:
        return len(self.parts)


class IdleTimer:
    """Calls `expire()` once `timeout` seconds pass without `touch()`.

    One loop timer per connection, re-armed only when it fires early: a busy connection pays a float store per
    message, not a timer reschedule."""

    __slots__ = ("loop", "timeout", "expire", "last", "handle")

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float, expire: Callable[[], None]):
        self.loop = loop
        self.timeout = timeout
        self.expire = expire
        self.last = loop.time()
        self.handle: asyncio.TimerHandle | None = loop.call_later(timeout, self._fire)

    def touch(self) -> None:
        self.last = self.loop.time()

    def _fire(self) -> None:
        left = self.last + self.timeout - self.loop.time()
        if left > 0:
            self.handle = self.loop.call_later(left, self._fire)
        else:
            self.handle = None
            self.expire()

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
