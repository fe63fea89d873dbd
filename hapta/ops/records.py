"""records.*: the wire's arguments, handed to the records service (hapta/records/service.py)."""
from __future__ import annotations

from typing import Annotated, Any, Awaitable, Callable, Literal

import msgspec

from ..live.channels import Channels, publish_failed
from ..principal import Peer
from ..protocol.errors import BAD_REQUEST, HaptaError
from ..records import batch
from ..records.idempotency import once
from ..records.aggregate import DEFAULT_LIMIT, MAX_GROUP_BY, MAX_LIMIT, Aggregate
from ..records.service import Records
from ..records.writes import Writes
from ..query.kinds import INT64
from .base import Args, Call, op

# charge(peer, op, collection): count one single op against its rate limit, as the dispatcher would (gateway.py)
Charge = Callable[[Peer, str, str | None], Awaitable[None]]

Name = Annotated[str, msgspec.Meta(max_length=63)]
RecordId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
FilterText = Annotated[str, msgspec.Meta(max_length=4096)]
FieldNames = Annotated[list[Name], msgspec.Meta(max_length=100)]
# "author", "post.author": relations to embed under `expand` (records/expand.py bounds how many and how deep)
Expand = Annotated[list[Annotated[str, msgspec.Meta(max_length=127)]], msgspec.Meta(max_length=8)]
IdempotencyKey = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
Version = Annotated[int, msgspec.Meta(ge=0, le=INT64[1])]
# Past App.database.batch_max (checked by records/batch.py) but this bound: refused while decoding
BATCH_BOUND = 1000
ChannelName = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


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
    expand: Expand | None = None


class CreateArgs(Args):
    collection: Name
    data: dict[str, Any]
    idempotency_key: IdempotencyKey | None = None


class UpdateArgs(Args):
    collection: Name
    id: RecordId
    data: dict[str, Any]
    version: Version | None = None
    idempotency_key: IdempotencyKey | None = None


class DeleteArgs(Args):
    collection: Name
    id: RecordId
    idempotency_key: IdempotencyKey | None = None


class BatchOp(Args):
    """One write of a batch; `id` and top-level `data` values may be {"$ref": n} (records/batch.py)."""
    op: Literal["create", "update", "delete"]
    collection: Name
    data: dict[str, Any] | None = None
    id: RecordId | dict[str, Any] | None = None
    version: Version | None = None


class BatchPublish(Args):
    """A channel message the batch sends if it commits, as channels.publish would send it."""
    channel: ChannelName
    data: Any = None


class BatchArgs(Args):
    ops: Annotated[list[BatchOp], msgspec.Meta(min_length=1, max_length=BATCH_BOUND)]
    atomic: bool = True
    idempotency_key: IdempotencyKey | None = None
    # Past live.channels.HELD_MAX (checked by Channels.hold, details.max) but this bound: refused while decoding
    publish: Annotated[list[BatchPublish], msgspec.Meta(max_length=BATCH_BOUND)] | None = None


class RecordOps:
    def __init__(self, records: Records, writes: Writes, charge: Charge, batch_max: int, channels: Channels):
        self.records = records
        self.writes = writes
        self.charge = charge
        self.batch_max = batch_max
        self.channels = channels   # a batch's `publish`: checked as channels.publish, sent if it commits

    @op("records.list", ListArgs)
    async def list(self, call: Call, args: ListArgs) -> dict[str, Any]:
        return await self.records.list(call.principal, args.collection, filter=args.filter, sort=args.sort,
                                       page=args.page, per_page=args.per_page, after=args.after, fields=args.fields,
                                       count=args.count, expand=args.expand)

    @op("records.aggregate", AggregateArgs)
    async def aggregate(self, call: Call, args: AggregateArgs) -> dict[str, Any]:
        request = Aggregate.of(args.group_by, args.count,
                               {"sum": args.sum, "avg": args.avg, "min": args.min, "max": args.max}, args.limit)
        return await self.records.aggregate(call.principal, args.collection, filter=args.filter, request=request)

    @op("records.get", GetArgs)
    async def get(self, call: Call, args: GetArgs) -> dict[str, Any]:
        return await self.records.get(call.principal, args.collection, args.id, args.fields, args.expand)

    @op("records.create", CreateArgs)
    async def create(self, call: Call, args: CreateArgs) -> dict[str, Any]:
        return await self.writes.create(call.peer, args.collection, args.data, once(call.principal, call.op, args))

    @op("records.update", UpdateArgs)
    async def update(self, call: Call, args: UpdateArgs) -> dict[str, Any]:
        return await self.writes.update(call.peer, args.collection, args.id, args.data, args.version,
                                         once(call.principal, call.op, args))

    @op("records.delete", DeleteArgs)
    async def delete(self, call: Call, args: DeleteArgs) -> dict[str, Any]:
        return await self.writes.delete(call.peer, args.collection, args.id, once(call.principal, call.op, args))

    @op("records.batch", BatchArgs)
    async def batch(self, call: Call, args: BatchArgs) -> dict[str, Any]:
        """Checked whole before anything runs (its ops, and its `publish` messages as channels.publish checks
        them); then each op counted against its single op's rate limit and each message against channels.publish's
        (a batch is no way around them), then all of them in one transaction, the messages written last: they go
        out if it commits, after its changes (live/feed.py)."""
        if not args.atomic:
            raise HaptaError(BAD_REQUEST, "only atomic batches are served (atomic: true); send independent writes "
                             "as single ops, or as many messages in one frame")
        batch.check(args.ops, self.batch_max)
        entries = [(entry.channel, entry.data) for entry in args.publish or ()]
        held = self.channels.hold(call.peer, entries)
        key = once(call.principal, call.op, args)
        for index, step in enumerate(args.ops):
            try:
                await self.charge(call.peer, f"records.{step.op}", step.collection)
            except HaptaError as error:
                raise batch.failed_at(index, step, error) from None
        for index, (channel, _) in enumerate(entries):
            try:
                await self.charge(call.peer, "channels.publish", None)
            except HaptaError as error:
                raise publish_failed(index, channel, error) from None
        return await self.writes.batch(call.peer, args.ops, key, then=held.write if held.notices else None)
