"""Frames <-> messages, for both subprotocols. Pure: no sockets here.

A frame holds one message or a batch (an array of them). Decoding never raises: every frame yields the requests
it carries plus an error reply for each part that was unusable, so that every request gets exactly one answer.
"""
from __future__ import annotations

from typing import Annotated, Any, Union

import msgspec

from .errors import BAD_REQUEST, HaptaError

JSON = "hapta.v1.json"
MSGPACK = "hapta.v1.msgpack"
SUBPROTOCOLS = (JSON, MSGPACK)

MAX_BATCH = 100
# Levels of arrays and objects a value sent on (channel data, a JSON field) may nest; a frame nested deeper than
# the decoder can follow at all is refused whole (BAD_REQUEST).
MAX_NESTING = 64

RequestId = Union[
    Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)],
    Annotated[str, msgspec.Meta(max_length=64)],
]


class Request(msgspec.Struct):
    id: RequestId
    op: Annotated[str, msgspec.Meta(max_length=64)]
    args: dict[str, Any] = {}


class Chunk(msgspec.Struct):
    """A file chunk: a binary frame in JSON mode, a `files.chunk` message in MessagePack mode."""
    stream: int
    data: bytes   # in JSON mode a memoryview into the frame: the bytes are not copied


def error_reply(request_id: Any, error: HaptaError) -> dict[str, Any]:
    return {"id": request_id, "ok": False, "error": error.to_wire()}


def ok_reply(request_id: Any, data: Any) -> dict[str, Any]:
    return {"id": request_id, "ok": True, "data": data}


def nesting(value: Any) -> int:
    """How deep arrays and objects nest in `value` (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            items = item.values()
        elif isinstance(item, (list, tuple)):
            items = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if depth > MAX_NESTING:
            return depth   # deep enough to refuse: no need to walk the rest
        stack.extend((child, depth) for child in items)
    return deepest


def _refuse_extension(code: int, data: memoryview) -> Any:
    raise ValueError("MessagePack extension types are not accepted")


def _describe(exc: msgspec.ValidationError) -> str:
    # msgspec says e.g. "Expected `str`, got `int` - at `$.op`"; that is precise and safe to pass on.
    return f"invalid message: {exc}"


class Codec:
    """One per subprotocol, shared by all connections (msgspec encoders/decoders are reusable and cheap)."""

    def __init__(self, subprotocol: str):
        if subprotocol not in SUBPROTOCOLS:
            raise ValueError(subprotocol)
        self.subprotocol = subprotocol
        self.binary = subprotocol == MSGPACK
        if self.binary:   # extension types (but the timestamp, which msgspec reads as a datetime) mean nothing here
            self._request = msgspec.msgpack.Decoder(Request, ext_hook=_refuse_extension)
            self._any = msgspec.msgpack.Decoder(ext_hook=_refuse_extension)
            self._encoder = msgspec.msgpack.Encoder()
        else:
            self._request = msgspec.json.Decoder(Request)
            self._any = msgspec.json.Decoder()
            self._encoder = msgspec.json.Encoder()

    def encode(self, message: Any) -> bytes:
        return self._encoder.encode(message)

    def encode_chunk(self, stream: int, data: bytes) -> bytes:
        """A file chunk, the same shape both ways: JSON mode sends it as a binary frame (4-byte big-endian stream
        number, then the bytes), MessagePack mode as the message {"op": "files.chunk", "stream", "data"}."""
        if self.binary:
            return self._encoder.encode({"op": "files.chunk", "stream": stream, "data": data})
        return stream.to_bytes(4, "big") + data

    def decode(self, frame: bytes | str) -> tuple[list[Request], list[Chunk], list[dict[str, Any]]]:
        """Return (requests, chunks, error replies) for one incoming frame."""
        if isinstance(frame, str):
            if self.binary:
                return [], [], [error_reply(None, HaptaError(BAD_REQUEST, "text frame in MessagePack mode"))]
            frame = frame.encode()
        elif not self.binary:
            return [], [self._chunk_from_binary(frame)], []
        try:
            return [self._request.decode(frame)], [], []   # the common case: one well-formed request
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError, ValueError):
            pass
        try:
            message = self._any.decode(frame)
        except msgspec.DecodeError:
            kind = "MessagePack" if self.binary else "JSON"
            return [], [], [error_reply(None, HaptaError(BAD_REQUEST, f"invalid {kind}"))]
        except RecursionError:
            return [], [], [error_reply(None, HaptaError(BAD_REQUEST, "message is nested too deeply"))]
        except ValueError as exc:   # an extension type (_refuse_extension)
            return [], [], [error_reply(None, HaptaError(BAD_REQUEST, str(exc)))]
        if isinstance(message, list):
            if not message:
                return [], [], [error_reply(None, HaptaError(BAD_REQUEST, "empty batch"))]
            if len(message) > MAX_BATCH:
                return [], [], [error_reply(None, HaptaError(BAD_REQUEST, f"batch over {MAX_BATCH} messages"))]
            requests, chunks, errors = [], [], []
            for item in message:
                self._sort_one(item, requests, chunks, errors)
            return requests, chunks, errors
        requests, chunks, errors = [], [], []
        self._sort_one(message, requests, chunks, errors)
        return requests, chunks, errors

    def _sort_one(self, item: Any, requests: list, chunks: list, errors: list) -> None:
        if self.binary and isinstance(item, dict) and item.get("op") == "files.chunk":
            try:
                chunks.append(msgspec.convert({"stream": item.get("stream"), "data": item.get("data")}, Chunk))
            except msgspec.ValidationError as exc:
                errors.append(error_reply(None, HaptaError(BAD_REQUEST, f"invalid files.chunk: {exc}")))
            return
        try:
            requests.append(msgspec.convert(item, Request))
        except msgspec.ValidationError as exc:
            errors.append(error_reply(_usable_id(item), HaptaError(BAD_REQUEST, _describe(exc))))
        except RecursionError:
            errors.append(error_reply(_usable_id(item), HaptaError(BAD_REQUEST, "message is nested too deeply")))

    @staticmethod
    def _chunk_from_binary(frame: bytes) -> Chunk:
        if len(frame) < 4:
            return Chunk(stream=-1, data=b"")   # no stream number: refused as an unknown stream
        return Chunk(stream=int.from_bytes(frame[:4], "big"), data=memoryview(frame)[4:])   # no copy of the bytes


def _usable_id(item: Any) -> Any:
    """The id to echo in an error reply: the message's own id when it is a valid one, else null."""
    if not isinstance(item, dict):
        return None
    try:
        return msgspec.convert(item.get("id"), RequestId)
    except msgspec.ValidationError:
        return None
