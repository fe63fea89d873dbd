"""records.*: the wire's arguments, handed to the records service (hapta/records/service.py)."""
from __future__ import annotations

from typing import Annotated, Any

import msgspec

from ..records.aggregate import DEFAULT_LIMIT, MAX_GROUP_BY, MAX_LIMIT, Aggregate
from ..records.service import Records
from ..records.values import INT64
from .base import Args, Call, op

Name = Annotated[str, msgspec.Meta(max_length=63)]
RecordId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
FilterText = Annotated[str, msgspec.Meta(max_length=4096)]
FieldNames = Annotated[list[Name], msgspec.Meta(max_length=100)]


class ListArgs(Args):
    collection: Name
    filter: FilterText | None = None
    sort: Annotated[str, msgspec.Meta(max_length=512)] | None = None
    page: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1
    per_page: Annotated[int, msgspec.Meta(ge=1, le=500)] = 30
    after: Annotated[str, msgspec.Meta(max_length=4096)] | None = None
    fields: FieldNames | None = None
    count: bool = False


class AggregateArgs(Args):
    collection: Name
    filter: FilterText | None = None
    group_by: Annotated[list[Name], msgspec.Meta(max_length=MAX_GROUP_BY)] | None = None
    count: bool = True
    sum: Annotated[list[Name], msgspec.Meta(max_length=16)] | None = None
    avg: Annotated[list[Name], msgspec.Meta(max_length=16)] | None = None
    min: Annotated[list[Name], msgspec.Meta(max_length=16)] | None = None
    max: Annotated[list[Name], msgspec.Meta(max_length=16)] | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT


class GetArgs(Args):
    collection: Name
    id: RecordId
    fields: FieldNames | None = None


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
                                       count=args.count)

    @op("records.aggregate", AggregateArgs)
    async def aggregate(self, call: Call, args: AggregateArgs) -> dict[str, Any]:
        request = Aggregate.of(args.group_by, args.count,
                               {"sum": args.sum, "avg": args.avg, "min": args.min, "max": args.max}, args.limit)
        return await self.records.aggregate(call.principal, args.collection, filter=args.filter, request=request)

    @op("records.get", GetArgs)
    async def get(self, call: Call, args: GetArgs) -> dict[str, Any]:
        return await self.records.get(call.principal, args.collection, args.id, args.fields)

    @op("records.create", CreateArgs)
    async def create(self, call: Call, args: CreateArgs) -> dict[str, Any]:
        return await self.records.create(call.peer, args.collection, args.data)

    @op("records.update", UpdateArgs)
    async def update(self, call: Call, args: UpdateArgs) -> dict[str, Any]:
        return await self.records.update(call.peer, args.collection, args.id, args.data, args.version)

    @op("records.delete", DeleteArgs)
    async def delete(self, call: Call, args: DeleteArgs) -> dict[str, Any]:
        return await self.records.delete(call.peer, args.collection, args.id)
