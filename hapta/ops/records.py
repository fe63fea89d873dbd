"""records.*: the wire's arguments, handed to the records service (hapta/records/service.py)."""
from __future__ import annotations

from typing import Annotated, Any

import msgspec

from ..records.service import Records
from ..records.values import INT64
from .base import Args, Call, op

Name = Annotated[str, msgspec.Meta(max_length=63)]
RecordId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
FilterText = Annotated[str, msgspec.Meta(max_length=4096)]
FieldNames = Annotated[list[Name], msgspec.Meta(max_length=100)]
# "author", "post.author": relations to embed under `expand` (records/expand.py bounds how many and how deep)
Expand = Annotated[list[Annotated[str, msgspec.Meta(max_length=127)]], msgspec.Meta(max_length=8)]


class ListArgs(Args):
    collection: Name
    filter: FilterText | None = None
    sort: Annotated[str, msgspec.Meta(max_length=512)] | None = None
    page: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1
    per_page: Annotated[int, msgspec.Meta(ge=1, le=500)] = 30
    after: Annotated[str, msgspec.Meta(max_length=4096)] | None = None
    fields: FieldNames | None = None
    count: bool = False
    expand: Expand | None = None


class GetArgs(Args):
    collection: Name
    id: RecordId
    fields: FieldNames | None = None
    expand: Expand | None = None


class CreateArgs(Args):
    collection: Name
    data: dict[str, Any]


class UpdateArgs(Args):
    collection: Name
    id: RecordId
    data: dict[str, Any]
    version: Annotated[int, msgspec.Meta(ge=0, le=INT64[1])] | None = None


class DeleteArgs(Args):
    collection: Name
    id: RecordId


class RecordOps:
    def __init__(self, records: Records):
        self.records = records

    @op("records.list", ListArgs)
    async def list(self, call: Call, args: ListArgs) -> dict[str, Any]:
        return await self.records.list(call.principal, args.collection, filter=args.filter, sort=args.sort,
                                       page=args.page, per_page=args.per_page, after=args.after, fields=args.fields,
                                       count=args.count, expand=args.expand)

    @op("records.get", GetArgs)
    async def get(self, call: Call, args: GetArgs) -> dict[str, Any]:
        return await self.records.get(call.principal, args.collection, args.id, args.fields, args.expand)

    @op("records.create", CreateArgs)
    async def create(self, call: Call, args: CreateArgs) -> dict[str, Any]:
        return await self.records.create(call.peer, args.collection, args.data)

    @op("records.update", UpdateArgs)
    async def update(self, call: Call, args: UpdateArgs) -> dict[str, Any]:
        return await self.records.update(call.peer, args.collection, args.id, args.data, args.version)

    @op("records.delete", DeleteArgs)
    async def delete(self, call: Call, args: DeleteArgs) -> dict[str, Any]:
        return await self.records.delete(call.peer, args.collection, args.id)
