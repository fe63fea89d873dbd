"""What every op shares: who is asking (Principal), the call it receives, and the registry of ops.

An op is an async function `handler(call, args) -> data`, registered with the msgspec Struct its args must fit.
Anything it raises as HaptaError becomes the error reply; the dispatcher maps the rest (see gateway.dispatch).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Awaitable, Callable

import msgspec

if TYPE_CHECKING:
    from ..gateway.gateway import Gateway

GUEST, ANON, USER, ADMIN = "guest", "anon", "user", "admin"


@dataclass
class Principal:
    """Who a connection speaks for. Guests may only call auth.* and ping."""
    role: str = GUEST
    user_id: str | None = None
    session_id: str | None = None
    expires_at: int | None = None   # when the access token behind it expires (unix seconds)

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (now or time.time()) >= self.expires_at

    def rule_vars(self) -> dict[str, Any]:
        """The values `@user.*` and `@now` stand for in rules and filters."""
        return {"user.id": self.user_id, "user.role": self.role, "now": datetime.now(timezone.utc)}


def _nowhere(*_args: Any, **_kwargs: Any) -> None:
    """A peer without a socket (tests of pure logic) drops its events."""


@dataclass(eq=False)
class Peer:
    """The connection an op runs for. Its principal changes only through the gateway's SessionHub (auth ops),
    which also keeps the index of live connections per session used for expiry and revocation."""
    principal: Principal = field(default_factory=Principal)
    address: str | None = None
    push: Callable[..., None] = _nowhere      # push(event, data=None, **extra): an unrequested event
    close: Callable[[int, str], None] = _nowhere   # close(code, reason): close the socket soon
    deliver: Callable[[Any], None] = _nowhere  # deliver(live.events.Event): an event encoded once for many sockets
    files: Any = None                          # the socket's file streams (hapta.files.transfers.Transfers)


@dataclass
class Call:
    gateway: "Gateway"
    peer: Peer
    op: str

    @property
    def principal(self) -> Principal:
        return self.peer.principal


Handler = Callable[[Call, Any], Awaitable[Any]]


@dataclass(frozen=True)
class OpSpec:
    name: str
    handler: Handler
    args: type | None
    guest: bool   # may a guest call it?


OPS: dict[str, OpSpec] = {}


def op(name: str, args: type | None = None, *, guest: bool = False) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        OPS[name] = OpSpec(name, handler, args, guest)
        return handler
    return register


class Args(msgspec.Struct, forbid_unknown_fields=True):
    """Base for op arguments: an unknown argument is a client bug worth naming (BAD_REQUEST)."""
