"""files.*: a record's file fields, written by streamed uploads and read by streamed downloads or signed URLs.

Who may do what is the collection's own rules: its update rule for uploads and deletes (a file changes the
record), its view rule for downloads and URLs. A record's file field (declared in config.py, a jsonb column) holds
a list of `{name, size, type, sha256, key}`; names are unique within a field and an upload under a name that
exists replaces that file. The bytes live in storage under `key`, a fresh random key per upload; see
hapta/files/service.py for how the object and the record stay in step.
"""
from __future__ import annotations

import time
import unicodedata
from typing import Annotated, Any

import asyncpg
import msgspec

from ..config import FileField
from ..files.service import FileService
from ..files.transfers import Target, Transfers, unavailable
from ..hooks.api import Context
from ..models import Model
from ..protocol.errors import BAD_REQUEST, NOT_FOUND, TOO_LARGE, VALIDATION_FAILED, HaptaError
from ..records.service import Records
from ..records.values import record_key
from ..store.files import ObjectMissing, StorageUnavailable, new_key
from .base import Args, Call, op
from .records import Name, RecordId

FileName = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
Size = Annotated[int, msgspec.Meta(ge=0, le=2**53)]
MAX_URL_SECONDS = 7 * 24 * 3600   # what S3 allows for a presigned URL


class UploadArgs(Args):
    collection: Name
    id: RecordId
    field: Name
    name: FileName
    size: Size
    type: Annotated[str, msgspec.Meta(max_length=255)]


class StreamArgs(Args):
    stream: Annotated[int, msgspec.Meta(ge=0, le=0xFFFF_FFFF)]


class FileArgs(Args):
    collection: Name
    id: RecordId
    field: Name
    name: FileName


class DownloadArgs(FileArgs):
    offset: Size = 0
    length: Size | None = None


class UrlArgs(FileArgs):
    expires: Annotated[int, msgspec.Meta(ge=1, le=MAX_URL_SECONDS)] = 3600


# ---- shared pieces ------------------------------------------------------------------------------------------

def _transfers(call: Call) -> Transfers:
    transfers = getattr(call.peer, "files", None)
    if transfers is None:
        raise HaptaError(BAD_REQUEST, "file streams need a WebSocket connection")
    return transfers


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


class FileOps:
    def __init__(self, files: FileService | None, records: Records):
        self.service = files
        self.records = records

    def _files_service(self) -> FileService:
        if self.service is None:
            raise HaptaError(NOT_FOUND, "files are not configured")
        return self.service

    def _spec(self, model: Model, field: str) -> FileField:
        spec = self._files_service().field(model.name, field)
        if spec is None:
            raise HaptaError(NOT_FOUND, f"{model.name} has no file field {field!r}")
        return spec

    async def _readable_file(self, call: Call, args: FileArgs) -> tuple[Model, dict[str, Any]]:
        """The file entry, if the principal may view the record (else NOT_FOUND, as records.get does)."""
        model = self.records.model(args.collection)
        self._spec(model, args.field)
        value = await self.records.readable_field(call.principal, model, args.id, args.field)
        return model, _find(_files(value), args.name, model, args.field)

    @op("files.upload", UploadArgs)
    async def upload(self, call: Call, args: UploadArgs) -> dict[str, Any]:
        service, transfers = self._files_service(), _transfers(call)
        transfers.check_room()
        model = self.records.model(args.collection)
        spec = self._spec(model, args.field)
        name = _check_name(args.name)
        if args.size > spec.max_size:
            raise HaptaError(TOO_LARGE, f"{model.name}.{args.field} takes files of at most {spec.max_size} bytes",
                             details={"field": args.field, "max_size": spec.max_size})
        if spec.types is not None and args.type not in spec.types:
            raise HaptaError(VALIDATION_FAILED, f"{model.name}.{args.field} does not accept {args.type[:64]}",
                             details={"field": args.field, "types": list(spec.types)})
        hooks = self.records.hooks

        async def admit(current: dict[str, Any], ctx: Context) -> None:
            files = _files(current.get(args.field))
            if len(files) >= spec.max_count and all(f.get("name") != name for f in files):
                raise _too_many(model, args.field, spec)
            if hooks.has(model.name, "before_upload"):
                await hooks.before(model.name, "before_upload", ctx, {
                    "collection": model.name, "id": args.id, "field": args.field, "name": name, "size": args.size,
                    "type": args.type, "record": dict(current)})

        await self.records.inspect_for_update(call.peer, call.op, model, args.id, admit)
        key = new_key(model.name, args.field, args.id)
        try:
            writer = await service.begin(key, args.type)
        except StorageUnavailable:
            raise unavailable() from None
        try:
            stream = transfers.add_upload(Target(model.name, args.id, args.field, name, args.size, spec), key, writer)
        except BaseException:
            await service.abandon(key, writer)
            raise
        return {"stream": stream.stream, "chunk_size": service.limits.chunk, "window": service.limits.window}

    @op("files.finish", StreamArgs)
    async def finish(self, call: Call, args: StreamArgs) -> dict[str, Any]:
        service, transfers = self._files_service(), _transfers(call)
        upload = transfers.take_upload(args.stream)
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
            record = await self.records.write_field(call.peer, call.op, model, record_key(model, target.record_id),
                                                    target.field, put)
        except BaseException:
            await service.abandon(stored.key)   # the record did not take it: the object must not stay
            raise
        service.adopted(stored.key)
        service.wake()   # a replaced file's object can go now
        return {"file": stored.public(), "record": record}

    @op("files.abort", StreamArgs)
    async def abort(self, call: Call, args: StreamArgs) -> dict[str, Any]:
        await _transfers(call).abort(args.stream)
        return {}

    @op("files.delete", FileArgs)
    async def delete(self, call: Call, args: FileArgs) -> dict[str, Any]:
        service = self._files_service()
        model = self.records.model(args.collection)
        self._spec(model, args.field)

        async def drop(conn: asyncpg.Connection, files: list[dict[str, Any]]) -> list[dict[str, Any]]:
            _find(files, args.name, model, args.field)
            return [f for f in files if f.get("name") != args.name]

        record = await self.records.write_field(call.peer, call.op, model, record_key(model, args.id), args.field,
                                                drop)
        service.wake()   # the deleted file's object can go now
        return {"record": record}

    @op("files.download", DownloadArgs)
    async def download(self, call: Call, args: DownloadArgs) -> dict[str, Any]:
        service, transfers = self._files_service(), _transfers(call)
        transfers.check_room()
        _, entry = await self._readable_file(call, args)
        size = int(entry.get("size") or 0)
        if args.offset > size:
            raise HaptaError(BAD_REQUEST, f"offset {args.offset} is past the end ({size} bytes)")
        length = size - args.offset if args.length is None else min(args.length, size - args.offset)
        try:
            reader = await service.storage.reader(entry["key"], args.offset, length)
        except ObjectMissing:
            raise HaptaError(NOT_FOUND, f"the file {args.name!r} is missing from storage") from None
        except StorageUnavailable:
            raise unavailable() from None
        stream = transfers.add_download(reader, length)
        return {"stream": stream.stream, "size": size, "type": entry.get("type"), "offset": args.offset,
                "length": length}

    @op("files.url", UrlArgs)
    async def url(self, call: Call, args: UrlArgs) -> dict[str, Any]:
        service = self._files_service()
        _, entry = await self._readable_file(call, args)
        kind = str(entry.get("type") or "application/octet-stream")
        expires_at = int(time.time()) + args.expires
        try:
            presigned = await service.storage.presigned_url(entry["key"], args.name, kind, args.expires)
        except StorageUnavailable:
            raise unavailable() from None
        if presigned is None:
            presigned = (service.public_url or "") + service.signer.path(entry["key"], args.name, kind, expires_at)
        return {"url": presigned, "expires_at": expires_at}
