"""realtime.* and channels.*: what a connection hears without asking (hapta/live does the hearing).

Subscribing checks only that the collection exists and has a view rule for this principal: whether a change
reaches the subscriber is decided for each change, by the view rule, when it is delivered (access/live.py).
A subscription starts live at the newest position this process has handed on, or resumes after `since`, or starts
with a snapshot (the first page of records.list and the position it was read at); the last two are held while
they are prepared and start once their reply is on its way (docs/realtime.md).
"""
from __future__ import annotations

from typing import Annotated, Any

import msgspec

from ..access import NAME as CHANNEL_NAME, may_join, realtime_filter
from ..limits import principal_key
from ..live import Live
from ..live.bus import BusDown
from ..live.topics import TooMany
from ..protocol.codec import MAX_NESTING, nesting
from ..protocol.errors import BAD_REQUEST, FORBIDDEN, NOT_FOUND, TOO_LARGE, UNAVAILABLE, HaptaError
from ..records.service import Records
from ..records.values import INT64, record_key
from .base import Args, Call, after_reply, op
from .records import Expand, FieldNames, FilterText, Name, RecordId

ChannelName = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


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


def _channel(args: ChannelArgs | JoinArgs | PublishArgs) -> str:
    if not CHANNEL_NAME.fullmatch(args.channel):
        raise HaptaError(BAD_REQUEST, "a channel name is 1-128 of A-Z a-z 0-9 _ . @ : -")
    return args.channel


class LiveOps:
    def __init__(self, live: Live, records: Records, *, max_subscriptions: int, max_channels: int):
        self.live = live
        self.realtime = live.realtime
        self.channels = live.channels
        self.records = records
        self.max_subscriptions = max_subscriptions
        self.max_channels = max_channels

    @op("realtime.subscribe", SubscribeArgs)
    async def subscribe(self, call: Call, args: SubscribeArgs) -> dict[str, Any]:
        principal = call.principal
        model = self.records.model(args.collection)
        if model.rules["view"] is None and not principal.is_admin:
            raise HaptaError(FORBIDDEN, f"view on {model.name} is for admins only")
        if args.snapshot and (args.since is not None or args.id is not None):
            raise HaptaError(BAD_REQUEST, "snapshot is for a collection's subscription, without since or id")
        record_id = None if args.id is None else str(record_key(model, args.id))
        found = realtime_filter(self.records.filter(principal, model, args.filter))
        fields = self.records.fields(model, args.fields)
        plan = self.records.expansion(model, args.expand, fields)
        limit = self.max_subscriptions
        if self.realtime.count(call.peer) >= limit:
            raise HaptaError(TOO_LARGE, f"a connection may hold at most {limit} subscriptions",
                             details={"limit": limit})
        holders = tuple(dict.fromkeys((principal_key(call.peer), principal_key(call.peer, by_address=True))))
        try:
            sub = self.realtime.subscribe(call.peer, model, record_id, None if found is None else found.node, fields,
                                          holders=holders, weight=len(args.filter or ""), expand=plan)
        except TooMany as exc:
            raise HaptaError(TOO_LARGE, f"at most {exc.limit} {exc.what}", details={"limit": exc.limit}) from None
        try:   # held until its reply is on its way: then what it missed, and what came meanwhile, follow in order
            if args.snapshot:
                page, position, start = await self.live.snapshot(sub, lambda conn: self.records.page(
                    conn, principal, model, found, fields, args.sort, args.per_page))
                page = await self.records.view.page(principal, model, page)   # through before_send, if any
                if plan is not None:
                    page = {**page, "items": await self.records.view.expand(principal, model, plan, page["items"])}
                after_reply(start)
                return {"sub": sub.id, "pos": position, **page}
            if args.since is not None:
                position, start = await self.live.resume(sub, args.since)
            else:
                position, start = await self.live.begin(sub)
            after_reply(start)
            return {"sub": sub.id, "pos": position}
        except BaseException:
            self.realtime.unsubscribe(call.peer, sub.id)
            raise

    @op("realtime.unsubscribe", UnsubscribeArgs)
    async def unsubscribe(self, call: Call, args: UnsubscribeArgs) -> dict[str, Any]:
        if not self.realtime.unsubscribe(call.peer, args.sub):
            raise HaptaError(NOT_FOUND, f"no subscription {args.sub!r} on this connection")
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
        name = _channel(args)
        if self.channels.member_of(call.peer, name) is None:
            raise HaptaError(FORBIDDEN, f"join {name} before publishing to it")
        if nesting(args.data) > MAX_NESTING:
            raise HaptaError(BAD_REQUEST, f"data is nested more than {MAX_NESTING} levels deep")
        try:
            sent = await self.channels.publish(call.peer, name, args.data)
        except BusDown:
            raise HaptaError(UNAVAILABLE, "channels are unavailable right now", retry_after=1.0) from None
        if not sent:
            raise HaptaError(TOO_LARGE, f"a channel message is at most {self.channels.bus.limit} bytes encoded")
        return {}
