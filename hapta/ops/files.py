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
from ..models import Model
from ..protocol.errors import (BAD_REQUEST, NOT_FOUND, TOO_LARGE, VALIDATION_FAILED, HaptaError)
from ..store.files import ObjectMissing, StorageUnavailable, new_key
from .base import Args, Call, op
from .records import Name, RecordId, Sql, _database_refusals, _hook_context, _key, _lock_for_write, _model, \
    _record, _rule, checked_write

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

def _service(call: Call) -> FileService:
    service = getattr(call.gateway, "files", None)
    if service is None:
        raise HaptaError(NOT_FOUND, "files are not configured")
    return service


def _transfers(call: Call) -> Transfers:
    transfers = getattr(call.peer, "files", None)
    if transfers is None:
        raise HaptaError(BAD_REQUEST, "file streams need a WebSocket connection")
    return transfers


def _spec(call: Call, model: Model, field: str) -> FileField:
    spec = _service(call).field(model.name, field)
    if spec is None:
        raise HaptaError(NOT_FOUND, f"{model.name} has no file field {field!r}")
    return spec


def _check_name(name: str) -> str:
    """A name shows in Content-Disposition and in lists; it is never a path (keys are ours, not names)."""
    if name in (".", "..") or any(c in name for c in "/\\") or \
            any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name) or name != name.strip():
        raise HaptaError(BAD_REQUEST, "a file name may not contain slashes, control characters or outer spaces")
    return name


def _files(record: dict[str, Any], field: str) -> list[dict[str, Any]]:
    value = record.get(field)
    return [f for f in value if isinstance(f, dict)] if isinstance(value, list) else []


def _find(files: list[dict[str, Any]], name: str, model: Model, field: str) -> dict[str, Any]:
    for entry in files:
        if entry.get("name") == name and isinstance(entry.get("key"), str):
            return entry
    raise HaptaError(NOT_FOUND, f"no file {name!r} in {model.name}.{field}")


async def _readable_file(call: Call, args: FileArgs) -> tuple[Model, dict[str, Any]]:
    """The file entry, if the principal may view the record (else NOT_FOUND, as records.get does)."""
    model = _model(call, args.collection)
    _spec(call, model, args.field)
    sql = Sql(call, model)
    rule = sql.rule(_rule(call, model, "view"))
    record_id = sql.param(_key(model, args.id))
    row = await call.gateway.db.fetchrow(
        f'SELECT {sql.column(args.field)} AS "f" FROM "{model.name}" '
        f'WHERE "{model.name}"."id" = {record_id} AND {rule}', *sql.params)
    if row is None:
        raise HaptaError(NOT_FOUND, f"no record {args.id} in {model.name}")
    return model, _find(_files({"f": row["f"]}, "f"), args.name, model, args.field)


def _too_many(model: Model, field: str, spec: FileField) -> HaptaError:
    return HaptaError(VALIDATION_FAILED, f"{model.name}.{field} holds at most {spec.max_count} files",
                      details={"field": field, "max_count": spec.max_count})


async def _write_field(call: Call, model: Model, record_id: Any, field: str, change) -> dict[str, Any]:
    """Lock the record under its update rule, set `field` to change(current files) in one transaction (the
    version goes up, the release trigger frees what was dropped), check the rule on the result; return it.
    `change` may raise to refuse; it runs inside the transaction (with the lock held)."""
    rule = _rule(call, model, "update", changed=[field])
    with _database_refusals(model):
        async with call.gateway.db.transaction() as conn:
            current = await _lock_for_write(conn, call, model, record_id, "update")
            files = await change(conn, _files(current, field))
            sql = Sql(call, model)
            value, key = sql.param(files), sql.param(record_id)
            row = await checked_write(conn, call, model, sql,
                                      f'UPDATE "{model.name}" SET "{field}" = {value} WHERE "{model.name}"."id" = {key}',
                                      rule, [field], "update")
    record = _record(row, model.visible)
    call.gateway.hooks.after(model.name, "after_update", _hook_context(call, model), record)
    _service(call).wake()   # a replaced or deleted file's object can go now
    return model.public(record)


# ---- the ops ------------------------------------------------------------------------------------------------

@op("files.upload", UploadArgs)
async def upload(call: Call, args: UploadArgs) -> dict[str, Any]:
    service, transfers = _service(call), _transfers(call)
    transfers.check_room()
    model = _model(call, args.collection)
    spec = _spec(call, model, args.field)
    name = _check_name(args.name)
    if args.size > spec.max_size:
        raise HaptaError(TOO_LARGE, f"{model.name}.{args.field} takes files of at most {spec.max_size} bytes",
                         details={"field": args.field, "max_size": spec.max_size})
    if spec.types is not None and args.type not in spec.types:
        raise HaptaError(VALIDATION_FAILED, f"{model.name}.{args.field} does not accept {args.type[:64]}",
                         details={"field": args.field, "types": list(spec.types)})
    _rule(call, model, "update")
    record_id = _key(model, args.id)
    hooks = call.gateway.hooks
    async with call.gateway.db.transaction() as conn:
        current = await _lock_for_write(conn, call, model, record_id, "update")
        files = _files(current, args.field)
        if len(files) >= spec.max_count and all(f.get("name") != name for f in files):
            raise _too_many(model, args.field, spec)
        if hooks.has(model.name, "before_upload"):
            info = {"collection": model.name, "id": args.id, "field": args.field, "name": name,
                    "size": args.size, "type": args.type, "record": dict(current)}
            await hooks.before(model.name, "before_upload", _hook_context(call, model, conn), info)
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
async def finish(call: Call, args: StreamArgs) -> dict[str, Any]:
    service, transfers = _service(call), _transfers(call)
    upload = transfers.take_upload(args.stream)
    stored = await upload.finish()   # a failure has already dropped what was written
    target = upload.target
    model = _model(call, target.collection)

    async def put(conn: asyncpg.Connection, files: list[dict[str, Any]]) -> list[dict[str, Any]]:
        kept = [f for f in files if f.get("name") != stored.name]
        if len(kept) >= target.spec.max_count:   # another upload filled the field meanwhile
            raise _too_many(model, target.field, target.spec)
        if not await service.adopt(conn, stored.key):
            raise HaptaError(BAD_REQUEST, "the upload was cleaned up before it finished; upload again")
        return [*kept, stored.entry()]

    try:
        record = await _write_field(call, model, _key(model, target.record_id), target.field, put)
    except BaseException:
        await service.abandon(stored.key)   # the record did not take it: the object must not stay
        raise
    service.adopted(stored.key)
    return {"file": stored.public(), "record": record}


@op("files.abort", StreamArgs)
async def abort(call: Call, args: StreamArgs) -> dict[str, Any]:
    await _transfers(call).abort(args.stream)
    return {}


@op("files.delete", FileArgs)
async def delete(call: Call, args: FileArgs) -> dict[str, Any]:
    model = _model(call, args.collection)
    _spec(call, model, args.field)

    async def drop(conn: asyncpg.Connection, files: list[dict[str, Any]]) -> list[dict[str, Any]]:
        _find(files, args.name, model, args.field)
        return [f for f in files if f.get("name") != args.name]

    record = await _write_field(call, model, _key(model, args.id), args.field, drop)
    return {"record": record}


@op("files.download", DownloadArgs)
async def download(call: Call, args: DownloadArgs) -> dict[str, Any]:
    service, transfers = _service(call), _transfers(call)
    transfers.check_room()
    _, entry = await _readable_file(call, args)
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
async def url(call: Call, args: UrlArgs) -> dict[str, Any]:
    service = _service(call)
    _, entry = await _readable_file(call, args)
    kind = str(entry.get("type") or "application/octet-stream")
    expires_at = int(time.time()) + args.expires
    try:
        presigned = await service.storage.presigned_url(entry["key"], args.name, kind, args.expires)
    except StorageUnavailable:
        raise unavailable() from None
    if presigned is None:
        presigned = (call.gateway.public_url or "") + service.signer.path(entry["key"], args.name, kind, expires_at)
    return {"url": presigned, "expires_at": expires_at}

