"""files.*: a record's file fields, written by streamed uploads and read by streamed downloads or signed URLs.
Each op is one call of the Streams service (hapta/files/streams.py), which says who may do what."""
from __future__ import annotations

from typing import Annotated, Any

import msgspec

from ..files.streams import Streams
from .base import Args, Call, after_reply, op
from .records import Name, RecordId

FileName = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
Size = Annotated[int, msgspec.Meta(ge=0, le=2**53)]
MAX_URL_SECONDS = 7 * 24 * 3600   # what S3 allows for a presigned URL


class UploadArgs(Args):
    """A new upload names its target; `resume` (an upload_id) alone goes on with an upload whose socket dropped."""
    collection: Name | None = None
    field: Name | None = None
    name: FileName | None = None
    size: Size | None = None
    type: Annotated[str, msgspec.Meta(max_length=255)] | None = None
    id: RecordId | None = None   # none: an upload for a record to create; files.finish answers its token
    resume: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None

    def __post_init__(self) -> None:
        if self.resume is None:
            for name in ("collection", "field", "name", "size", "type"):
                if getattr(self, name) is None:
                    raise ValueError(f"Object missing required field `{name}`")


class StreamArgs(Args):
    stream: Annotated[int, msgspec.Meta(ge=0, le=0xFFFF_FFFF)]


class FileArgs(Args):
    collection: Name
    id: RecordId
    field: Name
    name: FileName


Thumb = Annotated[str, msgspec.Meta(max_length=16)]


class DownloadArgs(FileArgs):
    thumb: Thumb | None = None   # one of the field's declared sizes: its thumbnail instead of the file
    offset: Size = 0
    length: Size | None = None


class UrlArgs(FileArgs):
    expires: Annotated[int, msgspec.Meta(ge=1, le=MAX_URL_SECONDS)] = 3600
    thumb: Thumb | None = None


class FileOps:
    def __init__(self, streams: Streams):
        self.streams = streams

    @op("files.upload", UploadArgs)
    async def upload(self, call: Call, args: UploadArgs) -> dict[str, Any]:
        if args.resume is not None:
            return await self.streams.resume(call.peer, args.resume)
        assert args.collection and args.field and args.name and args.size is not None and args.type is not None
        return await self.streams.upload(call.peer, call.op, args.collection, args.id, args.field, args.name,
                                         args.size, args.type)

    @op("files.finish", StreamArgs)
    async def finish(self, call: Call, args: StreamArgs) -> dict[str, Any]:
        return await self.streams.finish(call.peer, call.op, args.stream)

    @op("files.abort", StreamArgs)
    async def abort(self, call: Call, args: StreamArgs) -> dict[str, Any]:
        await self.streams.abort(call.peer, args.stream)
        return {}

    @op("files.delete", FileArgs)
    async def delete(self, call: Call, args: FileArgs) -> dict[str, Any]:
        return await self.streams.delete(call.peer, call.op, args.collection, args.id, args.field, args.name)

    @op("files.download", DownloadArgs)
    async def download(self, call: Call, args: DownloadArgs) -> dict[str, Any]:
        answer, start = await self.streams.download(call.peer, args.collection, args.id, args.field, args.name,
                                                    args.offset, args.length, args.thumb)
        after_reply(start)   # its chunks follow its answer
        return answer

    @op("files.url", UrlArgs)
    async def url(self, call: Call, args: UrlArgs) -> dict[str, Any]:
        return await self.streams.url(call.principal, args.collection, args.id, args.field, args.name, args.expires,
                                     args.thumb)
