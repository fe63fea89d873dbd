"""One connection's file streams: uploads with a window and acks, downloads paced by the socket.

Upload: the client sends chunks for its stream and keeps at most `window` bytes unacknowledged. Chunks go into the
stream's queue as the connection reads them (never blocking the socket for other requests); a pump task hashes,
checks the type on the first bytes, writes to storage and acks what it stored (`files.ack {stream, received}`).
A client that overruns its window is not read until the pump catches up, so one upload holds at most about a
window in memory, plus what the storage writer buffers (S3: two parts).

A failure (wrong type, more bytes than declared, storage down, idle too long) fails the stream at once: its
storage is dropped, the client hears `files.error {stream, error}`, chunks still in flight are swallowed, and
`files.finish` answers with that error. Abort drops everything the same way.

A closed socket drops an upload too, unless it can be resumed (an upload of a signed-in principal, `upload_id`):
then it is suspended. The pump stops after the write in hand, storage keeps what it can (`Writer.pause`), and the
upload's row says so (FileService.suspend) for `resume_timeout`; `files.upload {resume}` on any connection of the
same principal, in any process, opens a writer that goes on from there (streams.py). Uploads that can be resumed
are registered process-wide while they live, so that a resume which arrives before this process has noticed the
old socket is gone takes the upload over instead of waiting for it.

Download: its reply leaves first, then chunks of at most `chunk` bytes, each written only when the connection has
drained what it holds (Peer.send_chunk), so the gateway never reads ahead of the client; then `files.end`.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any

from ..config import FileField
from ..principal import Peer, PeerGone
from ..protocol.errors import (BAD_REQUEST, NOT_FOUND, TIMEOUT, TOO_LARGE, UNAVAILABLE, VALIDATION_FAILED,
                               HaptaError)
from ..store.files import Reader, StorageUnavailable, Writer
from ..store.files.types import HEAD_SIZE, detect
from .service import FileService

log = logging.getLogger("hapta.files")

# Streams (uploads and downloads) one connection may have open at once.
MAX_STREAMS = 8


def unavailable() -> HaptaError:
    return HaptaError(UNAVAILABLE, "file storage is unavailable; try again", retry_after=2.0)


@dataclass(frozen=True)
class Target:
    """Where an upload goes: a record's file field, under a name (no record: kept under a token, streams.py)."""
    collection: str
    record_id: str | None
    field: str
    name: str
    size: int
    spec: FileField


@dataclass(frozen=True)
class StoredFile:
    key: str
    name: str
    size: int
    type: str
    sha256: str

    def entry(self) -> dict[str, Any]:
        """As kept in the record's field (and shown to readers)."""
        return {"name": self.name, "size": self.size, "type": self.type, "sha256": self.sha256, "key": self.key}

    def public(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "type": self.type, "sha256": self.sha256}


class Upload:
    def __init__(self, transfers: "Transfers", stream: int, target: Target, key: str, writer: Writer, *,
                 upload_id: str | None = None, owner: str = "", start: int = 0, type: str | None = None):
        self.transfers = transfers
        self.stream = stream
        self.target = target
        self.key = key
        self.writer = writer
        self.upload_id = upload_id   # set: the upload can be resumed on another socket (of `owner`)
        self.owner = owner
        self.queue: deque[bytes] = deque()
        self.queued = 0        # bytes waiting in the queue
        self.received = start  # bytes taken from the client so far (a resumed upload starts where storage stopped)
        self.stored = start    # bytes written to storage (what acks report)
        self.acked = start
        self.head = b""
        self.type: str | None = type
        self.error: HaptaError | None = None
        self.more = asyncio.Event()       # the queue has something, or the client finished
        self.room = asyncio.Event()       # the queue is within the window again
        self.finishing = asyncio.Event()
        self.stopping = False             # suspending: the pump stops after the write in hand
        self.suspension: asyncio.Future | None = None
        self.dropped = False
        self.ended = False                # dropped, suspended or finished: out of the process's register
        if upload_id is not None:
            transfers.register[upload_id] = self
        self.pump = asyncio.ensure_future(self._pump())

    # ---- from the connection's read loop ----

    async def put(self, data: bytes) -> None:
        if self.error is not None or self.finishing.is_set() or self.stopping:
            return   # chunks that were in flight when the stream failed, finished or was suspended: swallowed
        settings = self.transfers.service.limits
        if len(data) > settings.chunk:
            self.fail(HaptaError(BAD_REQUEST, f"a chunk is at most {settings.chunk} bytes"))
            return
        if self.received + len(data) > self.target.size:
            self.fail(HaptaError(BAD_REQUEST, f"more bytes than the declared size {self.target.size}",
                                 details={"size": self.target.size}))
            return
        self.queue.append(data)
        self.queued += len(data)
        self.received += len(data)
        self.more.set()
        while self.queued > settings.window and self.error is None and not self.stopping:
            self.room.clear()   # the client ignores its window: stop reading its socket until we catch up
            await self.room.wait()

    # ---- the pump: queue -> type check -> storage -> ack ----

    async def _pump(self) -> None:
        limits = self.transfers.service.limits
        try:
            while self.stored < self.target.size:
                if self.stopping:
                    return
                if not self.queue:
                    self.more.clear()
                    try:
                        await asyncio.wait_for(self.more.wait(), limits.idle_timeout)
                    except asyncio.TimeoutError:
                        raise HaptaError(TIMEOUT, f"no chunk for {limits.idle_timeout:g} s; the upload was dropped") \
                            from None
                    continue
                parts, taken = [], 0   # all that waits, up to a quarter window: one trip to the disk thread
                while self.queue and taken < limits.window // 4:
                    parts.append(self.queue.popleft())
                    taken += len(parts[-1])
                self.queued -= taken
                self.room.set()
                if self.type is None:
                    for data in parts:
                        self.head += data[:HEAD_SIZE - len(self.head)]
                    if len(self.head) >= HEAD_SIZE or self.stored + taken >= self.target.size:
                        self._check_type()
                await self.writer.write(parts)
                self.stored += taken
                if not self.queue or self.stored - self.acked >= limits.window // 4:
                    self.acked = self.stored
                    self.transfers.push("files.ack", {"stream": self.stream, "received": self.stored})
            if self.type is None:
                self._check_type()   # an empty file
            # All bytes are in; the client owes files.finish, within the idle timeout (suspending sets it too).
            try:
                await asyncio.wait_for(self.finishing.wait(), limits.idle_timeout)
            except asyncio.TimeoutError:
                raise HaptaError(TIMEOUT, f"no files.finish for {limits.idle_timeout:g} s; the upload was dropped") \
                    from None
        except HaptaError as error:
            self.fail(error)
        except StorageUnavailable:
            self.fail(unavailable())

    def _check_type(self) -> None:
        kind = detect(self.head)
        allowed = self.target.spec.types
        if allowed is not None and kind not in allowed:
            raise HaptaError(VALIDATION_FAILED, f"the content is {kind}, which {self.target.collection}."
                             f"{self.target.field} does not accept", details={"field": self.target.field,
                                                                               "type": kind})
        self.type = self.writer.content_type = kind

    # ---- ending ----

    def fail(self, error: HaptaError) -> None:
        """Fail the stream now: drop its storage, tell the client; files.finish will answer `error`."""
        if self.error is not None:
            return
        self.error = error
        self.room.set()
        self.more.set()
        if asyncio.current_task() is not self.pump:
            self.pump.cancel()
        self.transfers.push("files.error", {"stream": self.stream, "error": error.to_wire()})
        self.transfers.spawn(self.drop())

    def end(self) -> None:
        """Out of the process's register of uploads that can be resumed: finished, dropped or suspended."""
        if not self.ended:
            self.ended = True
            if self.upload_id is not None and self.transfers.register.get(self.upload_id) is self:
                del self.transfers.register[self.upload_id]

    async def drop(self) -> None:
        """Leave nothing behind: the partial object, and its unclaimed row once the object is gone."""
        if self.dropped:
            return
        self.dropped = True
        self.end()
        if not self.pump.done():
            self.pump.cancel()
            await asyncio.gather(self.pump, return_exceptions=True)
        await self.transfers.service.abandon(self.key, self.writer)

    async def suspend(self) -> None:
        """The socket is gone (or another connection resumes this upload): keep what storage holds for a resume,
        or, when it cannot be kept (nothing durable yet, the type not known yet, the principal's bound, storage or
        the database down), drop it. Whoever asks while it is under way waits for the same suspension."""
        if self.suspension is None:
            self.suspension = asyncio.ensure_future(self._suspend())
        await asyncio.shield(self.suspension)

    async def _suspend(self) -> None:
        if self.dropped:
            return
        self.stopping = True   # the pump stops after the write in hand
        self.room.set()
        self.more.set()
        self.finishing.set()
        await asyncio.gather(self.pump, return_exceptions=True)
        if self.error is None and self.type is not None:
            try:
                kept = await self.writer.pause()
            except StorageUnavailable:
                kept = None
            if kept and kept["size"] > 0:
                state = {"stored": kept["size"], "type": self.type, "storage": kept}
                if await self.transfers.service.suspend(self.key, state, self.owner):
                    self.dropped = True   # nothing to drop: it waits for its resume (or the sweeper)
                    self.end()            # only now: a resume meanwhile found it here and waited
                    return
        await self.drop()

    async def finish(self) -> StoredFile:
        """Wait for the last bytes to be stored and commit the object. The record is the op's business."""
        self.end()   # a resume that comes now finds the upload held, and waits for the finish to be over
        if self.error is None and self.received < self.target.size:
            self.fail(HaptaError(BAD_REQUEST, f"received {self.received} of {self.target.size} bytes",
                                 details={"received": self.received, "size": self.target.size}))
        if self.error is None:
            self.finishing.set()
            await asyncio.gather(self.pump, return_exceptions=True)
        if self.error is not None:
            raise self.error
        try:
            await self.writer.commit()
        except StorageUnavailable:
            self.fail(unavailable())
            raise self.error from None
        assert self.type is not None
        return StoredFile(self.key, self.target.name, self.stored, self.type, self.writer.sha256.hexdigest())


class Download:
    def __init__(self, transfers: "Transfers", stream: int, reader: Reader, length: int):
        self.transfers = transfers
        self.stream = stream
        self.reader = reader
        self.length = length
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = self.transfers.spawn(self._run())

    async def _run(self) -> None:
        send_chunk, chunk = self.transfers.peer.send_chunk, self.transfers.service.limits.chunk
        assert send_chunk is not None   # Streams.of refuses a peer without it
        sent, error = 0, None
        try:
            async for data in self.reader.chunks(chunk):
                await send_chunk(self.stream, data)
                sent += len(data)
        except StorageUnavailable:
            error = unavailable()
        except PeerGone:
            return
        finally:
            await self.reader.close()
            self.transfers.downloads.pop(self.stream, None)
        end: dict[str, Any] = {"stream": self.stream, "sent": sent}
        if error is not None:
            end["error"] = error.to_wire()
        self.transfers.push("files.end", end)

    async def stop(self) -> None:
        if self.task is None:
            await self.reader.close()
        else:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


class Transfers:
    """The streams of one connection (files/streams.py keeps one per peer that opened a stream)."""

    def __init__(self, service: FileService, peer: Peer, register: dict[str, Upload] | None = None):
        self.service = service
        self.peer = peer
        self.register = {} if register is None else register   # the process's uploads that can be resumed
        self.uploads: dict[int, Upload] = {}
        self.downloads: dict[int, Download] = {}
        self.waiting: dict[int, Download] = {}   # downloads whose reply is not queued yet
        self.tasks: set[asyncio.Task] = set()
        self.ended: deque[int] = deque(maxlen=MAX_STREAMS * 4)   # finished or aborted: stray chunks are swallowed
        self.next_stream = 1
        self.closed = False

    def push(self, event: str, data: dict[str, Any]) -> None:
        self.peer.push(event, data)

    def spawn(self, coroutine) -> asyncio.Task:
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def _stream_number(self) -> int:
        if self.closed:
            raise HaptaError(BAD_REQUEST, "the connection is closing")
        if len(self.uploads) + len(self.downloads) + len(self.waiting) >= MAX_STREAMS:
            raise HaptaError(TOO_LARGE, f"at most {MAX_STREAMS} file streams may be open on a connection")
        number = self.next_stream
        self.next_stream = number % 0xFFFF_FFFF + 1   # stream numbers fit the 4-byte chunk header
        return number

    def check_room(self) -> None:
        """Refuse a new stream early, before the op does any work for it."""
        self._stream_number()

    def add_upload(self, target: Target, key: str, writer: Writer, **resume: Any) -> Upload:
        """A new upload stream (`resume`: Upload's upload_id, owner, start and type)."""
        upload = Upload(self, self._stream_number(), target, key, writer, **resume)
        self.uploads[upload.stream] = upload
        return upload

    async def detach(self, upload: Upload) -> None:
        """Another connection resumes `upload`, which this one still holds (its socket is gone, but this process
        has not noticed yet): suspend it here first."""
        if self.uploads.get(upload.stream) is upload:
            del self.uploads[upload.stream]
            self.ended.append(upload.stream)
        await upload.suspend()

    def add_download(self, reader: Reader, length: int) -> Download:
        """A download whose chunks begin once its reply is on its way (`started`)."""
        download = Download(self, self._stream_number(), reader, length)
        self.waiting[download.stream] = download
        return download

    def started(self, download: Download) -> None:
        """Its reply was queued: its chunks may follow now (unless it was aborted or the socket closed)."""
        if self.waiting.pop(download.stream, None) is download:
            self.downloads[download.stream] = download
            download.start()

    # ---- hooks for the connection ----

    async def receive(self, stream: int, data: bytes) -> HaptaError | None:
        """A chunk from the client: into its upload, or an error reply when there is no such stream."""
        upload = self.uploads.get(stream)
        if upload is None:
            if stream in self.ended:
                return None   # sent before the client learned its stream had ended
            return HaptaError(BAD_REQUEST, f"no upload stream {stream}")
        await upload.put(data)
        return None

    async def close(self) -> None:
        """The socket is gone: suspend the uploads that can be resumed, drop the others, stop every download."""
        self.closed = True
        uploads, self.uploads = list(self.uploads.values()), {}
        downloads = [*self.downloads.values(), *self.waiting.values()]
        self.downloads, self.waiting = {}, {}
        await asyncio.gather(*(u.suspend() if u.upload_id else u.drop() for u in uploads),
                             *(d.stop() for d in downloads), return_exceptions=True)
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)

    # ---- for the ops ----

    def take_upload(self, stream: int) -> Upload:
        upload = self.uploads.pop(stream, None)
        if upload is None:
            raise HaptaError(NOT_FOUND, f"no upload stream {stream}")
        self.ended.append(stream)
        return upload

    async def abort(self, stream: int) -> None:
        upload = self.uploads.pop(stream, None)
        if upload is not None:
            self.ended.append(stream)
            upload.error = upload.error or HaptaError(BAD_REQUEST, "aborted")
            await upload.drop()
            return
        download = self.downloads.pop(stream, None) or self.waiting.pop(stream, None)
        if download is None:
            raise HaptaError(NOT_FOUND, f"no file stream {stream}")
        await download.stop()
