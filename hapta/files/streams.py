"""A record's files as use cases: uploads (begin, finish, abort), downloads, signed links and deletes.

Who may do what is the collection's own rules: its update rule for uploads and deletes (a file changes the
record), its view rule for downloads and URLs. A record's file field (declared in config.py, a jsonb column) holds
a list of `{name, size, type, sha256, key}`; names are unique within a field and an upload under a name that
exists replaces that file. The bytes live in storage under `key`, a fresh random key per upload; service.py says
how the object and the record stay in step. Each connection's open streams are a Transfers (transfers.py), kept
here per peer from its first stream until it disconnects.
"""
from __future__ import annotations

import time
import unicodedata
from typing import Any, Callable

import asyncpg

from ..config import FileField
from ..hooks.api import Context
from ..models import Model
from ..principal import Peer, Principal
from ..protocol.errors import BAD_REQUEST, NOT_FOUND, TOO_LARGE, VALIDATION_FAILED, HaptaError
from ..records.service import Records
from ..records.values import record_key
from ..records.writes import Writes
from ..store.files import ObjectMissing, new_key
from .service import FileService
from .thumbs import NotAnImage
from .transfers import Target, Transfers

Start = Callable[[], None]


def _check_name(name: str) -> str:
    """A name shows in Content-Disposition and in lists; it is never a path (keys are ours, not names)."""
    if name in (".", "..") or any(c in name for c in "/\\") or \
            any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name) or name != name.strip():
        raise HaptaError(BAD_REQUEST, "a file name may not contain slashes, control characters or outer spaces")
    return name


def _files(value: Any) -> list[dict[str, Any]]:
    return [f for f in value if isinstance(f, dict)] if isinstance(value, list) else []


def _find(files: list[dict[str, Any]], name: str, model: Model, field: str) -> dict[str, Any]:
    for entry in files:
        if entry.get("name") == name and isinstance(entry.get("key"), str):
            return entry
    raise HaptaError(NOT_FOUND, f"no file {name!r} in {model.name}.{field}")


def _too_many(model: Model, field: str, spec: FileField) -> HaptaError:
    return HaptaError(VALIDATION_FAILED, f"{model.name}.{field} holds at most {spec.max_count} files",
                      details={"field": field, "max_count": spec.max_count})


class Streams:
    def __init__(self, service: FileService, records: Records, writes: Writes):
        self.service = service
        self.records = records
        self.writes = writes
        self.by_peer: dict[Peer, Transfers] = {}

    # ---- a connection's streams ----

    def _transfers(self, peer: Peer) -> Transfers:
        if peer.send_chunk is None:
            raise HaptaError(BAD_REQUEST, "file streams need a WebSocket connection")
        transfers = self.by_peer.get(peer)
        if transfers is None:
            transfers = self.by_peer[peer] = Transfers(self.service, peer)
        return transfers

    async def received(self, peer: Peer, stream: int, data: bytes) -> HaptaError | None:
        """A chunk the connection read: into its upload; an error reply when there is no such stream."""
        transfers = self.by_peer.get(peer)
        if transfers is None:
            return HaptaError(BAD_REQUEST, f"no upload stream {stream}")
        return await transfers.receive(stream, data)

    async def disconnect(self, peer: Peer) -> None:
        """The connection ended: an unfinished upload leaves nothing behind, downloads stop."""
        transfers = self.by_peer.pop(peer, None)
        if transfers is not None:
            await transfers.close()

    # ---- the ops ----

    def _spec(self, model: Model, field: str) -> FileField:
        spec = self.service.field(model.name, field)
        if spec is None:
            raise HaptaError(NOT_FOUND, f"{model.name} has no file field {field!r}")
        return spec

    async def upload(self, peer: Peer, op: str, collection: str, record_id: str, field: str, name: str, size: int,
                     content_type: str) -> dict[str, Any]:
        """files.upload: every check that can come before the first byte (the stream's room, the field's size,
        type and count, the update rule, the before_upload hook), then a stream: {stream, chunk_size, window}."""
        service, transfers = self.service, self._transfers(peer)
        transfers.check_room()
        model = self.records.model(collection)
        spec = self._spec(model, field)
        name = _check_name(name)
        if size > spec.max_size:
            raise HaptaError(TOO_LARGE, f"{model.name}.{field} takes files of at most {spec.max_size} bytes",
                             details={"field": field, "max_size": spec.max_size})
        if spec.types is not None and content_type not in spec.types:
            raise HaptaError(VALIDATION_FAILED, f"{model.name}.{field} does not accept {content_type[:64]}",
                             details={"field": field, "types": list(spec.types)})
        hooks = self.records.hooks

        async def admit(current: dict[str, Any], ctx: Context) -> None:
            files = _files(current.get(field))
            if len(files) >= spec.max_count and all(f.get("name") != name for f in files):
                raise _too_many(model, field, spec)
            if hooks.has(model.name, "before_upload"):
                await hooks.before(model.name, "before_upload", ctx, {
                    "collection": model.name, "id": record_id, "field": field, "name": name, "size": size,
                    "type": content_type, "record": dict(current)})

        await self.writes.inspect_for_update(peer, op, model, record_id, admit)
        key = new_key(model.name, field, record_id)
        writer = await service.begin(key, content_type)   # StorageUnavailable: the dispatcher's UNAVAILABLE
        try:
            stream = transfers.add_upload(Target(model.name, record_id, field, name, size, spec), key, writer)
        except BaseException:
            await service.abandon(key, writer)
            raise
        return {"stream": stream.stream, "chunk_size": service.limits.chunk, "window": service.limits.window}

    async def finish(self, peer: Peer, op: str, stream: int) -> dict[str, Any]:
        """files.finish: the stored file goes into the record's field in one write, or is dropped."""
        service, transfers = self.service, self._transfers(peer)
        upload = transfers.take_upload(stream)
        stored = await upload.finish()   # a failure has already dropped what was written
        target = upload.target
        model = self.records.model(target.collection)

        async def put(conn: asyncpg.Connection, files: list[dict[str, Any]]) -> list[dict[str, Any]]:
            kept = [f for f in files if f.get("name") != stored.name]
            if len(kept) >= target.spec.max_count:   # another upload filled the field meanwhile
                raise _too_many(model, target.field, target.spec)
            if not await service.adopt(conn, stored.key):
                raise HaptaError(BAD_REQUEST, "the upload was cleaned up before it finished; upload again")
            return [*kept, stored.entry()]

        try:
            record = await self.writes.write_field(peer, op, model, record_key(model, target.record_id),
                                                    target.field, put)
        except BaseException:
            await service.abandon(stored.key)   # the record did not take it: the object must not stay
            raise
        service.adopted(stored.key)
        service.wake()   # a replaced file's object can go now
        return {"file": stored.public(), "record": record}

    async def abort(self, peer: Peer, stream: int) -> None:
        await self._transfers(peer).abort(stream)

    async def delete(self, peer: Peer, op: str, collection: str, record_id: str, field: str,
                     name: str) -> dict[str, Any]:
        model = self.records.model(collection)
        self._spec(model, field)

        async def drop(conn: asyncpg.Connection, files: list[dict[str, Any]]) -> list[dict[str, Any]]:
            _find(files, name, model, field)
            return [f for f in files if f.get("name") != name]

        record = await self.writes.write_field(peer, op, model, record_key(model, record_id), field, drop)
        self.service.wake()   # the deleted file's object can go now
        return {"record": record}

    async def _readable_file(self, principal: Principal, collection: str, record_id: str, field: str,
                             name: str, thumb: str | None = None) -> dict[str, Any]:
        """The file entry, if the principal may view the record (else NOT_FOUND, as records.get does). With `thumb`
        (a size the field declares, else BAD_REQUEST), the entry of its thumbnail, made now if need be."""
        model = self.records.model(collection)
        spec = self._spec(model, field)
        if thumb is not None and thumb not in spec.thumbs:
            served = ", ".join(spec.thumbs) or "none"
            raise HaptaError(BAD_REQUEST, f"{collection}.{field} serves no thumbnail {thumb!r}; its sizes: {served}",
                             details={"field": field, "thumbs": list(spec.thumbs)})
        value = await self.records.readable_field(principal, model, record_id, field)
        entry = _find(_files(value), name, model, field)
        if thumb is None:
            return entry
        try:
            key, kind, size = await self.service.thumbnail(entry, thumb)
        except NotAnImage as exc:
            raise HaptaError(BAD_REQUEST, f"{name!r} is {exc}: it has no thumbnails",
                             details={"field": field, "thumb": thumb}) from None
        except FileNotFoundError:
            raise HaptaError(NOT_FOUND, f"the file {name!r} is missing from storage") from None
        sha = entry.get("sha256")
        return {**entry, "key": key, "type": kind, "size": size, "etag": f"{sha}-{thumb}" if sha else None}

    async def download(self, peer: Peer, collection: str, record_id: str, field: str, name: str, offset: int,
                       length: int | None, thumb: str | None = None) -> tuple[dict[str, Any], Start]:
        """files.download: ({stream, size, type, offset, length}, what starts its chunks once that answer is on
        its way)."""
        transfers = self._transfers(peer)
        transfers.check_room()
        entry = await self._readable_file(peer.principal, collection, record_id, field, name, thumb)
        size = int(entry.get("size") or 0)
        if offset > size:
            raise HaptaError(BAD_REQUEST, f"offset {offset} is past the end ({size} bytes)")
        length = size - offset if length is None else min(length, size - offset)
        try:
            reader = await self.service.storage.reader(entry["key"], offset, length)
        except ObjectMissing:
            raise HaptaError(NOT_FOUND, f"the file {name!r} is missing from storage") from None
        download = transfers.add_download(reader, length)
        answer = {"stream": download.stream, "size": size, "type": entry.get("type"), "offset": offset,
                  "length": length}
        return answer, lambda: transfers.started(download)

    async def url(self, principal: Principal, collection: str, record_id: str, field: str, name: str,
                  expires: int, thumb: str | None = None) -> dict[str, Any]:
        """files.url: a link that serves the file without a socket until `expires` seconds from now."""
        service = self.service
        entry = await self._readable_file(principal, collection, record_id, field, name, thumb)
        kind = str(entry.get("type") or "application/octet-stream")
        expires_at = int(time.time()) + expires
        presigned = await service.storage.presigned_url(entry["key"], name, kind, expires)
        if presigned is None:
            etag = entry.get("etag", entry.get("sha256"))   # a thumbnail's: its original's and its size
            etag = etag if isinstance(etag, str) and etag.replace("-", "").isalnum() else None
            presigned = (service.public_url() or "") + service.signer.path(entry["key"], name, kind, expires_at,
                                                                          etag)
        return {"url": presigned, "expires_at": expires_at}
