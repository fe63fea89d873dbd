"""Events encoded once for many connections.

A change that reaches 10,000 subscribers is encoded once per subprotocol (its `data`), and its whole message once
per distinct subscription id ("s1" for most clients' first subscription). Frames from server to client are not
masked (RFC 6455, 5.1) and permessage-deflate is off, so a message's WebSocket frame is the same bytes on every
connection: `wire` builds it once, and each connection only writes it (what `websockets.broadcast` does, minus
building the frame again for each connection).
"""
from __future__ import annotations

from typing import Any

import msgspec

from ..protocol.codec import Codec, frame_bytes


class Payload:
    """An event's `data`, encoded at most once per subprotocol."""
    __slots__ = ("value", "_raw")

    def __init__(self, value: Any):
        self.value = value
        self._raw: dict[str, msgspec.Raw] = {}

    def raw(self, codec: Codec) -> msgspec.Raw:
        raw = self._raw.get(codec.subprotocol)
        if raw is None:
            raw = self._raw[codec.subprotocol] = msgspec.Raw(codec.encode(self.value))
        return raw


class Event:
    """One event message, `{"event", "sub"?, "data"?}`, encoded at most once per subprotocol."""
    __slots__ = ("name", "sub", "payload", "_frames", "_wire")

    def __init__(self, name: str, payload: Payload | None = None, sub: str | None = None):
        self.name = name
        self.sub = sub
        self.payload = payload
        self._frames: dict[str, bytes] = {}
        self._wire: dict[str, bytes] = {}

    def wire(self, codec: Codec) -> bytes:
        """The whole WebSocket frame (header and message) as the server sends it: text in JSON mode, binary in
        MessagePack mode."""
        wire = self._wire.get(codec.subprotocol)
        if wire is None:
            wire = self._wire[codec.subprotocol] = frame_bytes(self.frame(codec), text=not codec.binary)
        return wire

    def parts(self, codec: Codec) -> list[bytes]:
        return [self.frame(codec)]

    def frame(self, codec: Codec) -> bytes:
        frame = self._frames.get(codec.subprotocol)
        if frame is None:
            message: dict[str, Any] = {"event": self.name}
            if self.sub is not None:
                message["sub"] = self.sub
            if self.payload is not None:
                message["data"] = self.payload.raw(codec)
            frame = self._frames[codec.subprotocol] = codec.encode(message)
        return frame


class Events:
    """Several events for one connection that leave together, in one frame (an array): what one transaction
    brings it (docs/protocol.md, "One view per transaction")."""
    __slots__ = ("events",)

    def __init__(self, events: list[Event]):
        self.events = events

    def wire(self, codec: Codec) -> bytes:
        return frame_bytes(self.frame(codec), text=not codec.binary)

    def frame(self, codec: Codec) -> bytes:
        return codec.encode([msgspec.Raw(e.frame(codec)) for e in self.events])

    def parts(self, codec: Codec) -> list[bytes]:
        """Its messages, each encoded, to join a frame with others (replies waiting to leave)."""
        return [e.frame(codec) for e in self.events]


def event(name: str, data: Any = None, sub: str | None = None) -> Event:
    return Event(name, None if data is None else Payload(data), sub)
