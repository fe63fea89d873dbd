"""A record's files as use cases: uploads (begin, finish, abort), downloads, signed links and deletes.

Who may do what is the collection's own rules: its update rule for uploads and deletes (a file changes the
record), its view rule for downloads and URLs. A record's file field (declared in config.py, a jsonb column) holds
a list of `{name, size, type, sha256, key}`; names are unique within a field and an upload under a name that
exists replaces that file. The bytes live in storage under `key`, a fresh random key per upload; service.py says
how the object and the record stay in step. Each connection's open streams are a Transfers (transfers.py), kept
here per peer from its first stream until it disconnects.
"""
from __future__ import annotations

import asyncio
import os
import secrets
import time
from pathlib import Path
import unicodedata
from typing import Any, Callable

import asyncpg

from ..config import FileField
from ..hooks.api import Context
from ..models import Model
from ..principal import Peer, Principal
from ..access import rule_for
from ..protocol.errors import (BAD_REQUEST, FORBIDDEN, NOT_FOUND, TOKEN_INVALID, TOO_LARGE, UNAVAILABLE,
                               VALIDATION_FAILED, HaptaError)
from ..records.service import Records
from ..records.values import record_key
from ..records.writes import Writes
from ..store.files import ObjectMissing, new_key
from ..store.files.local import LocalReader
from .service import FileService
from .thumbs import NotAnImage
from .transfers import StoredFile, Target, Transfers, Upload

Start = Callable[[], None]


def owner(principal: Principal) -> str:
    """Who an upload without a record belongs to: only they may name its token."""
    return f"{principal.role}:{principal.user_id or ''}"


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
        self.receiving: dict[str, Upload] = {}   # upload_id -> an upload this process receives that can be resumed

    # ---- a connection's streams ----

    def _transfers(self, peer: Peer) -> Transfers:
        if peer.send_chunk is None:
            raise HaptaError(BAD_REQUEST, "file streams need a WebSocket connection")
        transfers = self.by_peer.get(peer)
        if transfers is None:
            transfers = self.by_peer[peer] = Transfers(self.service, peer, self.receiving)
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

    async def upload(self, peer: Peer, op: str, collection: str, record_id: str | None, field: str, name: str,
                     size: int, content_type: str) -> dict[str, Any]:
        """files.upload: every check that can come before the first byte (the stream's room, the field's size,
        type and count, the update rule, the before_upload hook), then a stream: {stream, chunk_size, window}.
        Without `record_id`, an upload for a record still to be created: the create rule must exist for the
        principal (it is judged with the files in place at records.create), and files.finish answers a token."""
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

        if record_id is None:
            rule_for(model, "create", peer.principal)   # FORBIDDEN for whoever may never create here
            if hooks.has(model.name, "before_upload"):
                await hooks.before(model.name, "before_upload", self.records.context(peer, op, model), {
                    "collection": model.name, "id": None, "field": field, "name": name, "size": size,
                    "type": content_type, "record": None})
        else:
            await self.writes.inspect_for_update(peer, op, model, record_id, admit)
        key = new_key(model.name, field, record_id or "new")
        resume = None
        if peer.principal.user_id is not None:   # a signed-in principal's upload survives its socket (a while)
            resume = {"id": secrets.token_urlsafe(18), "owner": owner(peer.principal), "collection": model.name,
                      "record_id": record_id, "field": field, "name": name, "size": size}
        writer = await service.begin(key, content_type, resume)   # StorageUnavailable: the dispatcher's UNAVAILABLE
        upload_id = None if resume is None else resume["id"]
        try:
            stream = transfers.add_upload(Target(model.name, record_id, field, name, size, spec), key, writer,
                                          upload_id=upload_id, owner=owner(peer.principal))
        except BaseException:
            await service.abandon(key, writer)
            raise
        answer = {"stream": stream.stream, "chunk_size": service.limits.chunk, "window": service.limits.window}
        if upload_id is not None:
            answer["upload_id"] = upload_id
        return answer

    async def resume(self, peer: Peer, upload_id: str) -> dict[str, Any]:
        """files.upload {resume}: an upload whose socket dropped goes on, on this connection, from the bytes storage
        kept: {stream, chunk_size, window, upload_id, received}. Only its uploader may resume it; the rules were
        judged when it began and are judged again at files.finish (or at the create that names its token)."""
        service, transfers = self.service, self._transfers(peer)
        transfers.check_room()
        gone = HaptaError(NOT_FOUND, f"no upload {upload_id[:8]}… to resume: unknown, finished, or kept past "
                          f"files.resume_timeout ({service.limits.resume_timeout:g} s)")
        found = await service.resumable(upload_id)
        if found is None:
            raise gone
        key, state = found
        if peer.principal.user_id is None or state.get("owner") != owner(peer.principal):
            raise HaptaError(FORBIDDEN, f"upload {upload_id[:8]}… was made by someone else")
        if state.get("held"):
            held = self.receiving.get(upload_id)
            if held is None:   # a connection of another process has it, or files.finish is under way
                raise HaptaError(UNAVAILABLE, "the upload is still being received on another connection; try again",
                                 retry_after=1.0)
            await held.transfers.detach(held)   # its old socket is gone, but this process has not noticed yet
            found = await service.resumable(upload_id)
            if found is None:
                raise gone
            key, state = found
        target = self._target(state)
        if not await service.hold(key):
            raise HaptaError(UNAVAILABLE, "the upload is being resumed on another connection", retry_after=1.0)
        kind, stored = str(state["type"]), int(state["stored"])
        try:
            writer = await service.storage.resume(key, kind, state["storage"], service.digest(key, stored))
        except ObjectMissing:
            await service.abandon(key)
            raise gone from None
        except BaseException:
            await service.release(key)   # storage is down: it waits again for another try
            raise
        try:
            stream = transfers.add_upload(target, key, writer, upload_id=upload_id, owner=owner(peer.principal),
                                          start=stored, type=kind)
        except BaseException:
            await service.abandon(key, writer)
            raise
        return {"stream": stream.stream, "chunk_size": service.limits.chunk, "window": service.limits.window,
                "upload_id": upload_id, "received": stored}

    def _target(self, state: dict[str, Any]) -> Target:
        spec = self.service.field(str(state["collection"]), str(state["field"]))
        if spec is None:   # the app no longer declares the field
            raise HaptaError(NOT_FOUND, f"{state['collection']} has no file field {state['field']!r}")
        return Target(str(state["collection"]), state.get("record_id"), str(state["field"]), str(state["name"]),
                      int(state["size"]), spec)

    async def finish(self, peer: Peer, op: str, stream: int) -> dict[str, Any]:
        """files.finish: the stored file goes into the record's field in one write, or is dropped."""
        service, transfers = self.service, self._transfers(peer)
        upload = transfers.take_upload(stream)
        stored = await upload.finish()   # a failure has already dropped what was written
        target = upload.target
        model = self.records.model(target.collection)
        if target.record_id is None:
            return await self._park(peer, stored, target)

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

    async def _park(self, peer: Peer, stored: StoredFile, target: Target) -> dict[str, Any]:
        """An upload without a record: kept under a token for its owner until file_idle_timeout, then swept."""
        service = self.service
        token = secrets.token_urlsafe(24)
        upload = {"token": token, "owner": owner(peer.principal), "collection": target.collection,
                  "field": target.field, "entry": stored.entry()}
        try:
            parked = await service.park(stored.key, upload)
        except BaseException:
            await service.abandon(stored.key)
            raise
        if not parked:
            await service.abandon(stored.key)
            raise HaptaError(BAD_REQUEST, "the upload was cleaned up before it finished; upload again")
        expires_at = int(time.time() + service.limits.idle_timeout)
        return {"file": stored.public(), "upload": token, "expires_at": expires_at}

    async def claim_uploads(self, conn: asyncpg.Connection, principal: Principal, model: Model,
                            data: dict[str, Any], current: dict[str, Any] | None = None
                            ) -> tuple[dict[str, Any], dict[str, Any]]:
        """In a create's transaction: (data without its file fields, field -> files). Each item of a file field
        must be `{"upload": token}`, a finished upload of this principal for this field; its row is deleted in
        the same transaction (the record owns the object if the create commits; if it rolls back, the upload is
        parked again and swept at the end of its idle time). Refusals: a token unknown, used or past its time
        (TOKEN_INVALID), another principal's (FORBIDDEN), anything else in the field, an upload for another field,
        too many files or two of one name (VALIDATION_FAILED). An update (`current`: the record, locked) may also
        keep a file it holds with `{"name": name}`; the files it leaves out are let go (the release trigger)."""
        fields = self.service.fields.get(model.name, {})
        rest = {k: v for k, v in data.items() if k not in fields}
        taken: dict[str, Any] = {}
        for field in [f for f in fields if f in data]:
            spec, value = fields[field], data[field]
            kinds = {"upload"} if current is None else {"upload", "name"}
            if not isinstance(value, list) or not all(
                    isinstance(i, dict) and len(i) == 1 and set(i) <= kinds and isinstance(next(iter(i.values())), str)
                    for i in value):
                raise HaptaError(VALIDATION_FAILED, f"{model.name}.{field} takes only finished uploads"
                                 + (' at create: [{"upload": token}, ...]' if current is None else
                                    ' and kept files: [{"upload": token} or {"name": name}, ...]'),
                                 details={"field": field})
            files = []
            for item in value:
                if "name" in item:
                    assert current is not None
                    files.append(_find(_files(current.get(field)), item["name"], model, field))
                    continue
                token = item["upload"]
                upload = await self.service.claim(conn, token)
                if upload is None:
                    raise HaptaError(TOKEN_INVALID, f"{model.name}.{field}: no upload {token[:8]}…: unknown, "
                                     "already used or past its idle time", details={"field": field})
                if upload.get("owner") != owner(principal):
                    raise HaptaError(FORBIDDEN, f"{model.name}.{field}: upload {token[:8]}… was made by someone "
                                     "else", details={"field": field})
                if (upload.get("collection"), upload.get("field")) != (model.name, field):
                    raise HaptaError(VALIDATION_FAILED, f"upload {token[:8]}… was made for "
                                     f"{upload.get('collection')}.{upload.get('field')}, not {model.name}.{field}",
                                     details={"field": field})
                await self.service.adopt(conn, upload["key"])
                files.append(upload["entry"])
            if len(files) > spec.max_count:
                raise _too_many(model, field, spec)
            names = [f.get("name") for f in files]
            if len(set(names)) != len(names):
                raise HaptaError(VALIDATION_FAILED, f"{model.name}.{field}: two files named alike",
                                 details={"field": field})
            taken[field] = files
        return rest, taken

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

    async def send_local(self, peer: Peer, path: Path) -> tuple[dict[str, Any], Start]:
        """A file of the gateway's own disk (a backup, for admin.backup.download) as a download stream, exactly as
        files.download sends a record's file: ({stream, size, type, offset, length}, what starts its chunks)."""
        transfers = self._transfers(peer)
        transfers.check_room()
        try:
            file = await asyncio.to_thread(open, path, "rb")
            size = os.fstat(file.fileno()).st_size
        except FileNotFoundError:
            raise HaptaError(NOT_FOUND, f"no file {path.name}") from None
        download = transfers.add_download(LocalReader(file, size), size)
        answer = {"stream": download.stream, "size": size, "type": "application/x-tar", "offset": 0, "length": size}
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
