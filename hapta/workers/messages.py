"""What the gateway and a worker (of any kind: hooks, functions) say to each other: msgspec Structs as MessagePack
over a socket pair.

    gateway -> worker   Invoke (run one hook or function) · SqlResult (to the worker's Sql) · Answer (to the rest)
    worker -> gateway   Ready | LoadFailed (once, at start) · Sql · Publish · RunOp · Transaction (functions only)
                        · Returned | Denied | Raised (the outcome)

What a kind may ask is its own affair: a hook has no Publish, RunOp or Transaction to send (its pool answers them
BAD_REQUEST), and what Ready reports is read by the kind's gateway side (Kind.read).

Everything after Ready carries the id of the call it belongs to: the gateway drops a worker whose answer names
another call, so an answer can never reach the wrong request. A frame is a 4-byte big-endian length and the
bytes, which is multiprocessing.Connection's own framing: the worker uses a plain blocking Connection while the
gateway reads the same socket with an asyncio protocol (FrameReader).
"""
from __future__ import annotations

from typing import Any, Union

import msgspec

# Far above any record a hook sees; a worker that announces more is broken, not busy.
MAX_FRAME = 16 * 1024 * 1024


class Who(msgspec.Struct, array_like=True):
    """Who a call is for and why: what a hook's Context or a function's FunctionContext may know of the request."""
    user_id: str | None
    role: str
    op: str
    collection: str
    address: str | None


class Invoke(msgspec.Struct, tag="invoke", array_like=True):
    call: int
    collection: str                      # a hook's collection; "" for a function
    name: str                            # the hook's name (before_create, ...) or the function's
    who: Who
    args: list[Any]
    secrets: dict[str, str] | None = None   # a function's: the values of the names it declared, nothing else


class SqlResult(msgspec.Struct, tag="sql_result", array_like=True):
    call: int
    rows: list[dict[str, Any]] | None = None
    error: str | None = None
    sqlstate: str | None = None


class Ready(msgspec.Struct, tag="ready", array_like=True):
    """The worker imported its folder: what it found there, as its kind reports it (hooks: collection -> the hook
    names its module defines; functions: name -> what it declares)."""
    report: Any


class LoadFailed(msgspec.Struct, tag="load_failed", array_like=True):
    message: str     # one line: file, line and error
    traceback: str


class Sql(msgspec.Struct, tag="sql", array_like=True):
    call: int
    query: str
    params: list[Any]


class Publish(msgspec.Struct, tag="publish", array_like=True):
    """A function's ctx.publish: a message to a channel's members, from the server."""
    call: int
    channel: str
    data: Any


class Transaction(msgspec.Struct, tag="transaction", array_like=True):
    """A function's ctx.transaction: statements run in one transaction by the gateway (Answer: each one's rows),
    and channel messages, (channel, data), that go out from the server if it commits."""
    call: int
    statements: list[tuple[str, list[Any]]]
    publish: list[tuple[str, Any]] = []


class RunOp(msgspec.Struct, tag="op", array_like=True):
    """A function's ctx.records: one records.* op, run by the gateway as the caller (or as admin)."""
    call: int
    op: str
    args: dict[str, Any]


SQL_FAILED = "SQL_FAILED"   # Answer.code of a Transaction whose statement failed (value: its SQLSTATE)


class Answer(msgspec.Struct, tag="answer", array_like=True):
    """The gateway's answer to a Publish or RunOp: the op's data, or its error code and message."""
    call: int
    value: Any = None
    code: str | None = None
    message: str | None = None


class Returned(msgspec.Struct, tag="returned", array_like=True):
    call: int
    value: Any
    logs: list[str] = []   # what a function logged through ctx.log during the call


class Denied(msgspec.Struct, tag="denied", array_like=True):
    call: int
    message: str
    logs: list[str] = []   # what a function logged through ctx.log during the call


class Raised(msgspec.Struct, tag="raised", array_like=True):
    call: int
    traceback: str
    logs: list[str] = []   # what a function logged through ctx.log during the call


ToWorker = Union[Invoke, SqlResult, Answer]
FromWorker = Union[Ready, LoadFailed, Sql, Publish, RunOp, Transaction, Returned, Denied, Raised]
Outcome = Union[Returned, Denied, Raised]


def _lenient(value: Any) -> Any:
    """Database values msgpack has no type for (ranges, network addresses, ...) reach hooks as text."""
    return str(value)


# The gateway sends what the database and clients gave it, so it is lenient; a worker sends what a hook returned,
# and a value that cannot travel is the hook's bug, reported as such (Raised).
encode_for_worker = msgspec.msgpack.Encoder(enc_hook=_lenient).encode
encode_for_gateway = msgspec.msgpack.Encoder().encode
decode_in_worker = msgspec.msgpack.Decoder(ToWorker).decode
decode_in_gateway = msgspec.msgpack.Decoder(FromWorker).decode


def frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


class FrameError(Exception):
    """The peer broke the framing: the only fix is to drop it."""


class FrameReader:
    """Splits a byte stream into frames (sans-I/O: feed bytes, get payloads)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._buffer
        if not buffer and len(data) >= 4:   # the usual case: exactly one whole answer, nothing to keep
            size = int.from_bytes(data[:4], "big", signed=True)
            if len(data) == 4 + size:
                return [data[4:]]
        buffer += data
        frames = []
        start = 0
        while len(buffer) - start >= 4:
            size = int.from_bytes(buffer[start:start + 4], "big", signed=True)
            if not 0 <= size <= MAX_FRAME:
                raise FrameError(f"bad frame length {size}")
            end = start + 4 + size
            if len(buffer) < end:
                break
            frames.append(bytes(buffer[start + 4:end]))
            start = end
        if start:
            del buffer[:start]
        return frames
