"""Who is asking, and the connection they ask through. Pure: no I/O.

    Principal   the identity a connection speaks for: guest, anon, a user (with their session), or admin
    Peer        what services see of a connection: its principal and address, and how to reach it
                (push an event, deliver one encoded for many, close it); a Protocol, so that services, tests and
                the in-process harness never depend on the socket layer
    SocketPeer  the Peer a connection (gateway/connection.py) or a test hands out: the callbacks, bundled
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Mapping, Protocol

GUEST, ANON, USER, ADMIN = "guest", "anon", "user", "admin"


@dataclass
class Principal:
    """Who a connection speaks for. Guests may only call auth.* and ping."""
    role: str = GUEST
    user_id: str | None = None
    session_id: str | None = None
    expires_at: int | None = None   # when the access token behind it expires (unix seconds)
    verified: bool = False          # a user whose email is confirmed (auth.verify, or a provider that vouched)
    anonymous: bool = False         # a guest account (auth.guest): no email or password until auth.register
    name: str | None = None         # who logs say acted: an admin account's email (None: the admin key, a user's id)

    @property
    def label(self) -> str:
        """Who this is in a log line: an admin's name, "admin key", a user's id, or the role."""
        if self.role == ADMIN:
            return self.name or "admin key"
        return self.user_id or self.role

    @classmethod
    def of_user(cls, user: Mapping[str, Any], session_id: str, expires_at: int) -> "Principal":
        """A signed-in user, from their row (the columns of auth/sessions.py's USER_COLUMNS)."""
        return cls(USER, user["id"], session_id, expires_at, verified=bool(user.get("verified")),
                   anonymous=bool(user.get("anonymous")))

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (now or time.time()) >= self.expires_at

    def rule_vars(self) -> dict[str, Any]:
        """The values `@user.*` and `@now` stand for in rules and filters."""
        return {"user.id": self.user_id, "user.role": self.role, "user.verified": self.verified,
                "user.anonymous": self.anonymous,
                "now": datetime.now(timezone.utc)}


class PeerGone(Exception):
    """The connection ended while something was being sent to it."""


class Peer(Protocol):
    """The connection a request comes through, as services see it. Its principal changes only through the
    SessionHub (auth/hub.py), which also keeps the index of live connections per session."""
    principal: Principal
    address: str | None
    # send_chunk(stream, data): a file chunk in a frame of its own, after what is queued, at the pace the client
    # reads (PeerGone once it is gone); None for a peer that cannot carry file streams (no socket)
    send_chunk: "Callable[[int, bytes], Awaitable[None]] | None"

    def push(self, event: str, data: Any = None, **extra: Any) -> None:
        """Send an unrequested event (encoded for this connection alone)."""

    def close(self, code: int, reason: str) -> None:
        """Close the connection soon, after its pending replies."""

    def deliver(self, event: Any) -> None:
        """Send an event already encoded once for many connections (live/events.py)."""


def _nowhere(*_args: Any, **_kwargs: Any) -> None:
    """A peer without a socket (tests of pure logic) drops what it is sent."""


@dataclass(eq=False)
class SocketPeer:
    """A Peer made of callbacks (eq=False: each is itself, as a dict key)."""
    principal: Principal = field(default_factory=Principal)
    address: str | None = None
    push: Callable[..., None] = _nowhere
    close: Callable[[int, str], None] = _nowhere
    deliver: Callable[[Any], None] = _nowhere
    send_chunk: Callable[[int, bytes], Awaitable[None]] | None = None
