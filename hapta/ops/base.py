"""What every op shares: the call it serves, how handlers declare their ops, and the table the dispatcher reads.

An op is a method `handler(self, call, args) -> data` of a handler class, marked with `@op(name, Args)` and bound to
the services its class was built with; the gateway builds the handler classes and `table(...)` collects their ops
(no registration by import). Arguments are decoded once, from the request's raw bytes, into the op's msgspec
Struct. Anything a handler raises as HaptaError becomes the error reply; the dispatcher maps the rest.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import msgspec

from ..principal import Peer, Principal
from ..protocol.codec import refuse_extension


@dataclass(slots=True)
class Call:
    peer: Peer
    op: str

    @property
    def principal(self) -> Principal:
        return self.peer.principal


Handler = Callable[[Call, Any], Awaitable[Any]]


def after_reply(callback: Callable[[], None]) -> None:
    """Run `callback` right after the reply of the op being served is queued, so that what it sends follows the
    reply. A reply is queued in the same step its handler returns in (Connection.serve, the test harness): the
    loop's next turn comes after it."""
    asyncio.get_running_loop().call_soon(callback)


class Args(msgspec.Struct, forbid_unknown_fields=True):
    """Base for op arguments: an unknown argument is a client bug worth naming (BAD_REQUEST)."""


@dataclass(frozen=True)
class OpSpec:
    name: str
    handler: Handler
    args: type | None
    guest: bool   # may a guest call it?
    admin: bool = False   # admins only (the dispatcher refuses anyone else: FORBIDDEN)

    def decode(self, raw: msgspec.Raw, binary: bool) -> Any:
        """The args as the op's Struct, straight from the request's bytes (empty: none sent); None for an op
        without args. msgspec.ValidationError when they do not fit."""
        if self.args is None:
            return None
        return _decoders(self.args)[binary].decode(raw if len(raw) else (b"\x80" if binary else b"{}"))


_decoder_cache: dict[type, tuple[Any, Any]] = {}


def _decoders(args: type) -> tuple[Any, Any]:
    found = _decoder_cache.get(args)
    if found is None:
        found = _decoder_cache[args] = (msgspec.json.Decoder(args),
                                        msgspec.msgpack.Decoder(args, ext_hook=refuse_extension))
    return found


def op(name: str, args: type | None = None, *, guest: bool = False,
       admin: bool = False) -> Callable[[Handler], Handler]:
    """Mark a handler method as the op `name`, whose arguments are `args` (a Struct), callable by guests or not, or
    by admins only."""
    def mark(handler: Handler) -> Handler:
        handler.__hapta_op__ = (name, args, guest, admin)   # type: ignore[attr-defined]
        return handler
    return mark


def table(*handlers: object) -> dict[str, OpSpec]:
    """Every op the handler objects mark, bound to them: the dispatcher's table."""
    ops: dict[str, OpSpec] = {}
    for handler in handlers:
        for attribute in dir(type(handler)):
            marked = getattr(getattr(type(handler), attribute), "__hapta_op__", None)
            if marked is None:
                continue
            name, args, guest, admin = marked
            if name in ops:
                raise ValueError(f"op {name} is declared twice")
            ops[name] = OpSpec(name, getattr(handler, attribute), args, guest, admin)
    return ops


def guest_ops(*classes: type) -> dict[str, bool]:
    """Every op the handler classes mark, and whether a guest may call it, without building them: what config.py's
    limits may name and how limits.status counts, known before anything starts."""
    return {marked[0]: marked[2] for cls in classes for attribute in dir(cls)
            if (marked := getattr(getattr(cls, attribute), "__hapta_op__", None)) is not None}
