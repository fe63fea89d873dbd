"""Frames <-> messages, for both subprotocols. Pure: no sockets here.

A frame holds one message or a batch (an array of them). Decoding never raises: every frame yields the requests
it carries plus an error reply for each part that was unusable, so that every request gets exactly one answer.
"""
from __future__ import annotations

import re
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
    # The args' own bytes, in this codec (empty when absent): the op decodes them once, into its own Struct
    # (ops/base.OpSpec.decode).
    args: msgspec.Raw = msgspec.Raw()


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


def refuse_extension(code: int, data: memoryview) -> Any:
    raise ValueError("MessagePack extension types are not accepted")


# MessagePack args stay bytes until their op decodes them, so what the frame's decoder would refuse in them is looked
# for first: an extension value, which starts with one of these bytes (ext 8/16/32, fixext 1-16; they also occur
# inside numbers and strings), and nesting too deep to follow, which a frame this short cannot hold. Other frames
# are decoded whole once to find out.
_EXTENSION_MARKERS = re.compile(b"[\xc7-\xc9\xd4-\xd8]")
_SHALLOW = 256
_UNDECODED = object()


def _has_chunk(message: Any) -> bool:
    """A MessagePack files.chunk is sorted from its plain values, as is any batch holding one."""
    items = message if isinstance(message, list) else [message]
    return any(isinstance(item, dict) and item.get("op") == "files.chunk" for item in items)
_OBJECT_STARTS = (frozenset(b"{"), frozenset([*range(0x80, 0x90), 0xde, 0xdf]))   # JSON, MessagePack


def _describe(exc: msgspec.ValidationError) -> str:
    # msgspec says e.g. "Expected `str`, got `int` - at `$.op`"; that is precise and safe to pass on.
    return f"invalid message: {exc}"


def frame_bytes(message: bytes, text: bool) -> bytes:
    """An unmasked, unfragmented WebSocket frame (FIN set; opcode 1 text or 2 binary)."""
    first = 0x81 if text else 0x82
    size = len(message)
    if size < 126:
        header = bytes((first, size))
    elif size < 1 << 16:
        header = bytes((first, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((first, 127)) + size.to_bytes(8, "big")
    return header + message


class Codec:
    """One per subprotocol, shared by all connections (msgspec encoders/decoders are reusable and cheap)."""

    def __init__(self, subprotocol: str):
        if subprotocol not in SUBPROTOCOLS:
            raise ValueError(subprotocol)
        self.subprotocol = subprotocol
        self.binary = subprotocol == MSGPACK
        if self.binary:   # extension types (but the timestamp, which msgspec reads as a datetime) mean nothing here
            self._request = msgspec.msgpack.Decoder(Request, ext_hook=refuse_extension)
            self._batch = msgspec.msgpack.Decoder(list[Request], ext_hook=refuse_extension)
            self._any = msgspec.msgpack.Decoder(ext_hook=refuse_extension)
            self._encoder = msgspec.msgpack.Encoder()
        else:
            self._request = msgspec.json.Decoder(Request)
            self._batch = msgspec.json.Decoder(list[Request])
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
        # The fast paths keep each request's args as bytes (the op decodes them once); they check here only what
        # decoding them later would not: that args are an object and, in MessagePack, that nothing in them is what
        # the frame's decoder refuses (_EXTENSION_MARKERS). A frame that may hold such a thing is decoded whole first.
        message: Any = _UNDECODED
        if self.binary and (len(frame) > _SHALLOW or _EXTENSION_MARKERS.search(frame)):
            message = self._decode_any(frame)
            if isinstance(message, HaptaError):
                return [], [], [error_reply(None, message)]
        if message is _UNDECODED or not _has_chunk(message):
            requests = self._typed(frame)
            if requests is not None:
                return requests, [], []
        if message is _UNDECODED:
            message = self._decode_any(frame)
            if isinstance(message, HaptaError):
                return [], [], [error_reply(None, message)]
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

    def _typed(self, frame: bytes) -> list[Request] | None:
        """The requests of a well-formed frame (one request, the common case, or a batch); None for any other."""
        try:
            request = self._request.decode(frame)
            if self._args_are_object(request):
                return [request]
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError, ValueError):
            pass
        try:
            batch = self._batch.decode(frame)
            if 0 < len(batch) <= MAX_BATCH and all(map(self._args_are_object, batch)) and \
                    not (self.binary and any(r.op == "files.chunk" for r in batch)):
                return batch
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError, ValueError):
            pass
        return None

    def _decode_any(self, frame: bytes) -> Any:
        """The frame as plain values, or the HaptaError that refuses it whole."""
        try:
            return self._any.decode(frame)
        except msgspec.DecodeError:
            return HaptaError(BAD_REQUEST, f"invalid {'MessagePack' if self.binary else 'JSON'}")
        except RecursionError:
            return HaptaError(BAD_REQUEST, "message is nested too deeply")
        except ValueError as exc:   # an extension type (refuse_extension)
            return HaptaError(BAD_REQUEST, str(exc))

    def _args_are_object(self, request: Request) -> bool:
        args = request.args
        return not len(args) or memoryview(args)[0] in _OBJECT_STARTS[self.binary]

    def _sort_one(self, item: Any, requests: list, chunks: list, errors: list) -> None:
        if self.binary and isinstance(item, dict) and item.get("op") == "files.chunk":
            try:
                chunks.append(msgspec.convert({"stream": item.get("stream"), "data": item.get("data")}, Chunk))
            except msgspec.ValidationError as exc:
                errors.append(error_reply(None, HaptaError(BAD_REQUEST, f"invalid files.chunk: {exc}")))
            return
        try:
            request = msgspec.convert({k: v for k, v in item.items() if k != "args"} if isinstance(item, dict)
                                      else item, Request)
            if isinstance(item, dict) and "args" in item:
                try:
                    args = msgspec.convert(item["args"], dict[str, Any])   # BAD_REQUEST unless an object
                except msgspec.ValidationError as exc:
                    raise msgspec.ValidationError(f"{exc} - at `$.args`") from None
                # decoded already: the args go back to bytes, which the op decodes (once more; a rare path)
                request.args = msgspec.Raw(self._encoder.encode(args))
            requests.append(request)
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
