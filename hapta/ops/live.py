"""realtime.* and channels.*: what a connection hears without asking (hapta/live does the hearing: the subscribe
use case is live/subscriptions.py, channels live/channels.py)."""
from __future__ import annotations

from typing import Annotated, Any

import msgspec

from ..access import may_join
from ..live.channels import Channels, channel_name
from ..live.subscriptions import Subscriptions
from ..protocol.errors import BAD_REQUEST, FORBIDDEN, NOT_FOUND, TOO_LARGE, HaptaError
from ..query.kinds import INT64
from .base import Args, Call, after_reply, op
from .records import ChannelName, Expand, FieldNames, FilterText, Name, RecordId


class SubscribeArgs(Args):
    collection: Name
    id: RecordId | None = None
    filter: FilterText | None = None
    fields: FieldNames | None = None
    since: Annotated[int, msgspec.Meta(ge=0, le=INT64[1])] | None = None   # resume after this position
    snapshot: bool = False                                                  # answer the first page too
    sort: Annotated[str, msgspec.Meta(max_length=512)] | None = None      # of the snapshot's page
    per_page: Annotated[int, msgspec.Meta(ge=1, le=500)] = 30
    expand: Expand | None = None                                          # relations its records embed


class QueryArgs(Args):
    collection: Name
    sort: Annotated[str, msgspec.Meta(min_length=1, max_length=512)]   # records.list's grammar; ties by id
    limit: Annotated[int, msgspec.Meta(ge=1, le=500)]
    filter: FilterText | None = None
    fields: FieldNames | None = None
    expand: Expand | None = None
    # the items the client holds, in its order, [id, version] each: answered with ops that bring them up to date
    have: Annotated[list[tuple[Annotated[str, msgspec.Meta(max_length=128)] | int, int]],
                    msgspec.Meta(max_length=500)] | None = None


class UnsubscribeArgs(Args):
    sub: Annotated[str, msgspec.Meta(max_length=32)]


class ChannelArgs(Args):
    channel: ChannelName


class JoinArgs(Args):
    channel: ChannelName
    version: Annotated[str, msgspec.Meta(max_length=64)] | None = None   # of an earlier answer: send what changed


class PublishArgs(Args):
    channel: ChannelName
    data: Any = None


def _channel(args: ChannelArgs | JoinArgs) -> str:
    return channel_name(args.channel)


class LiveOps:
    def __init__(self, subscriptions: Subscriptions, channels: Channels, *, max_channels: int):
        self.subscriptions = subscriptions
        self.channels = channels
        self.max_channels = max_channels

    @op("realtime.subscribe", SubscribeArgs)
    async def subscribe(self, call: Call, args: SubscribeArgs) -> dict[str, Any]:
        answer, start = await self.subscriptions.subscribe(
            call.peer, args.collection, record_id=args.id, filter_text=args.filter, fields=args.fields,
            since=args.since, snapshot=args.snapshot, sort=args.sort, per_page=args.per_page, expand=args.expand)
        after_reply(start)   # what it missed, and what came meanwhile, follow the answer in order
        return answer

    @op("realtime.query", QueryArgs)
    async def query(self, call: Call, args: QueryArgs) -> dict[str, Any]:
        if args.have is not None and len(args.have) > args.limit:
            raise HaptaError(BAD_REQUEST, f"have holds at most limit ({args.limit}) items",
                             details={"field": "have"})
        answer, start = await self.subscriptions.query(
            call.peer, args.collection, filter_text=args.filter, sort=args.sort, limit=args.limit,
            fields=args.fields, expand=args.expand, have=args.have)
        after_reply(start)   # what changed while it was read follows the answer, as one diff
        return answer

    @op("realtime.unsubscribe", UnsubscribeArgs)
    async def unsubscribe(self, call: Call, args: UnsubscribeArgs) -> dict[str, Any]:
        self.subscriptions.unsubscribe(call.peer, args.sub)
        return {}

    @op("channels.join", JoinArgs)
    async def join(self, call: Call, args: JoinArgs) -> dict[str, Any]:
        name = _channel(args)
        if self.channels.member_of(call.peer, name) is None:
            if not may_join(self.channels.rules, name, call.principal):
                raise HaptaError(FORBIDDEN, f"you may not join {name}")
            limit = self.max_channels
            if self.channels.joined(call.peer) >= limit:
                raise HaptaError(TOO_LARGE, f"a connection may join at most {limit} channels",
                                 details={"limit": limit})
        return await self.channels.join(call.peer, name, args.version)

    @op("channels.leave", ChannelArgs)
    async def leave(self, call: Call, args: ChannelArgs) -> dict[str, Any]:
        if not await self.channels.leave(call.peer, _channel(args)):
            raise HaptaError(NOT_FOUND, f"this connection is not in {args.channel}")
        return {}

    @op("channels.publish", PublishArgs)
    async def publish(self, call: Call, args: PublishArgs) -> dict[str, Any]:
        # checked as a batch's `publish` entries are (Channels.message); BusDown: the dispatcher's UNAVAILABLE
        await self.channels.publish(call.peer, args.channel, args.data)
        return {}
