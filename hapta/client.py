"""An async Python client for the Hapta protocol.

    async with await Client.connect("ws://127.0.0.1:8080/ws") as hapta:
        await hapta.call("auth.anon", {"apikey": key})
        page = await hapta.call("records.list", {"collection": "posts"})
        async for event in hapta.events():
            ...

`call` may be used from many tasks at once (requests are pipelined, replies matched by id); a failed call
raises HaptaError carrying the protocol's error code.

Files stream over the same socket:

        await hapta.upload("posts", post_id, "media", "cat.png", open("cat.png", "rb"))   # keeps to the window
        async for chunk in hapta.download("posts", post_id, "media", "cat.png"):          # paced by the reader
            ...
"""
from __future__ import annotations

import asyncio
import io
import itertools
import os
from typing import Any, AsyncIterable, AsyncIterator, BinaryIO, Callable

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from .protocol.codec import JSON, MSGPACK
from .protocol.errors import HaptaError

__all__ = ["Client", "HaptaError", "JSON", "MSGPACK"]

# Download chunks a helper may hold before the client stops reading its socket (the gateway then waits too).
DOWNLOAD_QUEUE = 16
_END = object()
FILE_EVENTS = ("files.ack", "files.error", "files.end")


class _Stream:
    """One file stream driven by the helpers: its acknowledged bytes, its failure, its incoming chunks."""

    def __init__(self) -> None:
        self.acked = 0
        self.error: HaptaError | None = None
        self.changed = asyncio.Event()
        self.chunks: asyncio.Queue[Any] = asyncio.Queue(DOWNLOAD_QUEUE)


def _error(wire: dict[str, Any] | None) -> HaptaError:
    wire = wire or {}
    return HaptaError(wire.get("code", "INTERNAL"), wire.get("message", ""), details=wire.get("details"),
                      retry_after=wire.get("retry_after"))


async def _pieces(data: bytes | BinaryIO | AsyncIterable[bytes], size: int) -> AsyncIterator[bytes]:
    """`data` cut into pieces of at most `size` bytes, without holding more than one piece of it."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        view = memoryview(data)
        for start in range(0, len(view), size):
            yield bytes(view[start:start + size])
    elif hasattr(data, "read"):
        while piece := await asyncio.to_thread(data.read, size):
            yield piece
    else:
        pending = b""
        async for part in data:
            if not pending and len(part) == size:
                yield part   # already the right size: no copy
                continue
            pending += part
            while len(pending) >= size:
                yield pending[:size]
                pending = pending[size:]
        if pending:
            yield pending


class Client:
    def __init__(self, ws: ClientConnection, subprotocol: str):
        self.ws = ws
        self.binary = subprotocol == MSGPACK
        if self.binary:
            self._encode, self._decode = msgspec.msgpack.Encoder().encode, msgspec.msgpack.Decoder().decode
        else:
            self._encode, self._decode = msgspec.json.Encoder().encode, msgspec.json.Decoder().decode
        self._ids = itertools.count(1)
        self._pending: dict[Any, asyncio.Future] = {}
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._closed: BaseException | None = None
        self._streams: dict[int, _Stream] = {}
        self._on_reply: dict[Any, Callable[[Any], None]] = {}
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def connect(cls, url: str, *, subprotocol: str = JSON, origin: str | None = None,
                      **options: Any) -> "Client":
        ws = await connect(url, subprotocols=[subprotocol], origin=origin, compression=None,
                           max_size=options.pop("max_size", 16 * 1024 * 1024), **options)
        return cls(ws, subprotocol)

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        await self.ws.close()
        await asyncio.gather(self._reader, return_exceptions=True)

    async def call(self, op: str, args: dict[str, Any] | None = None, *,
                   on_reply: Callable[[Any], None] | None = None) -> Any:
        """Send one request and wait for its reply; raise HaptaError on an error reply. `on_reply(data)` runs as
        soon as a successful reply is read, before any message after it (a subscription's first events)."""
        future = self._request(op, args)
        if on_reply is not None:
            self._on_reply[self._message(future)["id"]] = on_reply
        try:
            await self._send(self._message(future))
        except BaseException:   # never sent: nobody will await its reply, so it must not linger as pending
            self._pending.pop(self._message(future)["id"], None)
            future.cancel()
            raise
        return await future

    async def batch(self, calls: list[tuple[str, dict[str, Any] | None]]) -> list[Any]:
        """Send several requests in one frame; return each one's data, or its HaptaError, in order."""
        futures = [self._request(op, args) for op, args in calls]
        try:
            await self._send([self._message(f) for f in futures])
        except BaseException:
            for future in futures:
                self._pending.pop(self._message(future)["id"], None)
                future.cancel()
            raise
        return list(await asyncio.gather(*futures, return_exceptions=True))

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Unrequested messages from the gateway, in order of arrival; ends when the connection closes."""
        while True:
            if self._closed is not None and self._events.empty():
                return
            event = await self._events.get()
            if event.get("event") == "__closed__":
                return
            yield event

    def received_events(self) -> list[dict[str, Any]]:
        """The events that have arrived and were not read yet, without waiting. After a reply, every event the
        gateway sent before that reply is among them (one socket keeps its order)."""
        found = []
        while not self._events.empty():
            event = self._events.get_nowait()
            if event.get("event") == "__closed__":
                self._events.put_nowait(event)
                break
            found.append(event)
        return found

    async def next_event(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next event; ConnectionError when the connection closes, TimeoutError after `timeout` seconds."""
        async def first() -> dict[str, Any]:
            async for event in self.events():
                return event
            raise ConnectionError("connection closed")
        return await asyncio.wait_for(first(), timeout)

    # ---- files ----

    async def upload(self, collection: str, record_id: str | None, field: str, name: str,
                     data: bytes | BinaryIO | AsyncIterable[bytes], *, size: int | None = None,
                     type: str = "application/octet-stream", resume: str | None = None,
                     opened: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Stream a file into a record's file field; return files.finish's data (`{file, record}`). With
        `record_id` None, an upload for a record still to create: files.finish's data is `{file, upload,
        expires_at}`, and `{"upload": <upload>}` in the field of a records.create stores the file with the record.

        `data` is bytes, a binary file (read in chunks, from its current position) or an async iterable of bytes
        (then give `size`). At most the gateway's window is ever unacknowledged; a failure the gateway reports
        while the bytes flow (files.error) stops the sending and is raised as HaptaError.

        `opened` is called with files.upload's answer: its `upload_id` (a signed-in principal's upload) resumes the
        upload on a new connection after this one dropped: `upload(..., data, resume=upload_id)` with the same
        bytes or a file at its start (not an async iterable) sends only what the gateway did not keep."""
        if size is None:
            if isinstance(data, (bytes, bytearray, memoryview)):
                size = len(data)
            elif hasattr(data, "fileno"):
                size = os.fstat(data.fileno()).st_size - data.tell()
            elif isinstance(data, io.BytesIO):
                size = len(data.getbuffer()) - data.tell()
            else:
                raise ValueError("give the size of a streamed upload")
        args: dict[str, Any] = {"collection": collection, "field": field, "name": name, "size": size, "type": type}
        if record_id is not None:
            args["id"] = record_id
        if resume is not None:
            if not isinstance(data, (bytes, bytearray, memoryview)) and not hasattr(data, "seek"):
                raise ValueError("resume an upload from bytes or a seekable file")
            args = {"resume": resume}
        answer = await self.call("files.upload", args)
        if opened is not None:
            opened(answer)
        number, chunk_size, window = answer["stream"], answer["chunk_size"], answer["window"]
        skip = int(answer.get("received", 0))   # a resumed upload: the gateway has these already
        if skip and isinstance(data, (bytes, bytearray, memoryview)):
            data = memoryview(data)[skip:]
        elif skip:
            await asyncio.to_thread(data.seek, skip, io.SEEK_CUR)  # type: ignore[union-attr]
        stream = self._streams[number] = _Stream()   # before any chunk: its acks must find it
        stream.acked = skip
        finished = False
        try:
            sent = skip
            async for piece in _pieces(data, chunk_size):
                while sent + len(piece) - stream.acked > window and stream.error is None:
                    stream.changed.clear()
                    await stream.changed.wait()
                if stream.error is not None:
                    break   # files.finish answers with the error
                await self.ws.send(self._chunk(number, piece), text=False)
                sent += len(piece)
            finished = True
            return await self.call("files.finish", {"stream": number})
        finally:
            self._streams.pop(number, None)
            if not finished and self._closed is None:
                await asyncio.shield(self.batch([("files.abort", {"stream": number})]))

    async def download(self, collection: str, record_id: str, field: str, name: str, *, offset: int = 0,
                       length: int | None = None, thumb: str | None = None) -> AsyncIterator[bytes]:
        """A file's bytes (from `offset`, `length` of them, or to the end) as they arrive; with `thumb` (a size the
        field declares), its thumbnail's. While the caller does not take them, the client stops reading and the
        gateway stops sending."""
        args: dict[str, Any] = {"collection": collection, "id": record_id, "field": field, "name": name,
                                "offset": offset}
        if length is not None:
            args["length"] = length
        if thumb is not None:
            args["thumb"] = thumb
        async for chunk in self.stream("files.download", args):
            yield chunk

    async def stream(self, op: str, args: dict[str, Any]) -> AsyncIterator[bytes]:
        """The bytes of a download stream that `op` answers with, as files.download does (another op that sends a
        file so: admin.backup.download), as they arrive."""
        stream = _Stream()
        future = self._request(op, args)
        # Register the stream as the reply is read, before the chunks that follow it on the socket.
        self._on_reply[self._message(future)["id"]] = lambda data: self._streams.__setitem__(data["stream"], stream)
        await self._send(self._message(future))
        number = (await future)["stream"]
        ended = False
        try:
            while True:
                item = await stream.chunks.get()
                if item is _END:
                    ended = True
                    return
                if isinstance(item, BaseException):
                    ended = True
                    raise item
                yield item
        finally:
            self._streams.pop(number, None)
            if not ended and self._closed is None:
                await asyncio.shield(self.batch([("files.abort", {"stream": number})]))

    async def download_bytes(self, collection: str, record_id: str, field: str, name: str, **range_: Any) -> bytes:
        """The whole file (or range) in memory: for small files."""
        return b"".join([chunk async for chunk in self.download(collection, record_id, field, name, **range_)])

    def _chunk(self, stream: int, data: bytes) -> bytes:
        if self.binary:
            return self._encode({"op": "files.chunk", "stream": stream, "data": data})
        return stream.to_bytes(4, "big") + data

    async def _file_message(self, stream_number: Any, item: dict[str, Any] | None, data: bytes | None) -> bool:
        """A chunk or a files.* event for a stream a helper drives; False when no helper drives it."""
        stream = self._streams.get(stream_number) if isinstance(stream_number, int) else None
        if stream is None:
            return False
        if data is not None:
            await stream.chunks.put(data)   # a full queue pauses the socket: the download's backpressure
            return True
        assert item is not None
        event, payload = item["event"], item.get("data") or {}
        if event == "files.ack":
            stream.acked = max(stream.acked, int(payload.get("received", 0)))
        elif event == "files.error":
            stream.error = _error(payload.get("error"))
        elif event == "files.end":
            await stream.chunks.put(_error(payload["error"]) if payload.get("error") else _END)
        stream.changed.set()
        return True

    # ---- plumbing ----

    def _request(self, op: str, args: dict[str, Any] | None) -> asyncio.Future:
        if self._closed is not None:
            raise ConnectionError("connection closed") from self._closed
        request_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        future.request = {"id": request_id, "op": op, "args": args or {}}  # type: ignore[attr-defined]
        self._pending[request_id] = future
        return future

    @staticmethod
    def _message(future: asyncio.Future) -> dict[str, Any]:
        return future.request  # type: ignore[attr-defined]

    async def _send(self, message: Any) -> None:
        await self.ws.send(self._encode(message), text=not self.binary)

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                if isinstance(frame, bytes) and not self.binary:   # JSON mode: a binary frame is a file chunk
                    await self._file_message(int.from_bytes(frame[:4], "big"), None, frame[4:])
                    continue
                message = self._decode(frame)
                for item in message if isinstance(message, list) else [message]:
                    if self.binary and item.get("op") == "files.chunk":
                        await self._file_message(item.get("stream"), None, item.get("data"))
                    elif item.get("event") in FILE_EVENTS and \
                            await self._file_message((item.get("data") or {}).get("stream"), item, None):
                        pass
                    else:
                        self._dispatch(item)
        except ConnectionClosed as exc:
            self._closed = exc
        except BaseException as exc:   # a decoding bug must not leave callers waiting forever
            self._closed = exc
            raise
        finally:
            if self._closed is None:
                self._closed = ConnectionError("connection closed")
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("connection closed before the reply"))
            self._pending.clear()
            for stream in self._streams.values():   # nobody waits forever on a stream of a dead socket
                stream.error = stream.error or HaptaError("UNAVAILABLE", "connection closed")
                stream.changed.set()
                if stream.chunks.full():
                    stream.chunks.get_nowait()
                stream.chunks.put_nowait(ConnectionError("connection closed during the download"))
            self._events.put_nowait({"event": "__closed__"})

    def _dispatch(self, item: dict[str, Any]) -> None:
        if "event" in item:
            self._events.put_nowait(item)
            return
        future = self._pending.pop(item.get("id"), None)
        on_reply = self._on_reply.pop(item.get("id"), None)
        if future is None or future.done():
            return
        if item.get("ok"):
            if on_reply is not None:
                on_reply(item.get("data"))
            future.set_result(item.get("data"))
        else:
            error = item.get("error") or {}
            future.set_exception(HaptaError(error.get("code", "INTERNAL"), error.get("message", ""),
                                            details=error.get("details"), retry_after=error.get("retry_after")))

    @property
    def close_code(self) -> int | None:
        return self.ws.close_code
