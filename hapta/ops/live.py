"""realtime.* and channels.*: what a connection hears without asking (hapta/live does the hearing).

Subscribing checks only that the collection exists and has a view rule for this principal: whether a change
reaches the subscriber is decided for each change, by the view rule, when it is delivered.
"""
from __future__ import annotations

from typing import Annotated, Any

import msgspec

from ..limits import principal_key
from ..live import bus, channels as channel_rules   # modules, not names: hapta.live imports the ops in turn
from ..live.realtime import TooMany
from ..protocol.codec import MAX_NESTING, nesting
from ..protocol.errors import BAD_REQUEST, FORBIDDEN, NOT_FOUND, TOO_LARGE, UNAVAILABLE, HaptaError
from .base import Args, Call, op
from .records import Name, RecordId, _fields, _key, _model, client_filter

ChannelName = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class SubscribeArgs(Args):
    collection: Name
    id: RecordId | None = None
    filter: Annotated[str, msgspec.Meta(max_length=4096)] | None = None
    fields: Annotated[list[Name], msgspec.Meta(max_length=100)] | None = None


class UnsubscribeArgs(Args):
    sub: Annotated[str, msgspec.Meta(max_length=32)]


class ChannelArgs(Args):
    channel: ChannelName


class PublishArgs(Args):
    channel: ChannelName
    data: Any = None


@op("realtime.subscribe", SubscribeArgs)
async def subscribe(call: Call, args: SubscribeArgs) -> dict[str, str]:
    gateway = call.gateway
    model = _model(call, args.collection)
    if model.rules["view"] is None and not call.principal.is_admin:
        raise HaptaError(FORBIDDEN, f"view on {model.name} is for admins only")
    record_id = None if args.id is None else str(_key(model, args.id))
    found = client_filter(call, model, args.filter)
    filter_node = None if found is None else found.node
    fields = _fields(model, args.fields)
    limit = gateway.app.max_subscriptions
    if gateway.live.realtime.count(call.peer) >= limit:
        raise HaptaError(TOO_LARGE, f"a connection may hold at most {limit} subscriptions",
                         details={"limit": limit})
    holders = tuple(dict.fromkeys((principal_key(call.peer), principal_key(call.peer, by_address=True))))
    try:
        sub = gateway.live.realtime.subscribe(call.peer, model, record_id, filter_node, fields, holders=holders,
                                              weight=len(args.filter or ""))
    except TooMany as exc:
        raise HaptaError(TOO_LARGE, f"at most {exc.limit} {exc.what}", details={"limit": exc.limit}) from None
    return {"sub": sub}


@op("realtime.unsubscribe", UnsubscribeArgs)
async def unsubscribe(call: Call, args: UnsubscribeArgs) -> dict[str, Any]:
    if not call.gateway.live.realtime.unsubscribe(call.peer, args.sub):
        raise HaptaError(NOT_FOUND, f"no subscription {args.sub!r} on this connection")
    return {}


def _channel(args: ChannelArgs | PublishArgs) -> str:
    if not channel_rules.NAME.fullmatch(args.channel):
        raise HaptaError(BAD_REQUEST, "a channel name is 1-128 of A-Z a-z 0-9 _ . @ : -")
    return args.channel


@op("channels.join", ChannelArgs)
async def join(call: Call, args: ChannelArgs) -> dict[str, Any]:
    channels = call.gateway.live.channels
    name = _channel(args)
    if channels.member_of(call.peer, name) is None:
        if not channel_rules.may_join(channels.rules, name, call.principal):
            raise HaptaError(FORBIDDEN, f"you may not join {name}")
        limit = call.gateway.app.max_channels
        if channels.joined(call.peer) >= limit:
            raise HaptaError(TOO_LARGE, f"a connection may join at most {limit} channels", details={"limit": limit})
    return await channels.join(call.peer, name)


@op("channels.leave", ChannelArgs)
async def leave(call: Call, args: ChannelArgs) -> dict[str, Any]:
    if not await call.gateway.live.channels.leave(call.peer, _channel(args)):
        raise HaptaError(NOT_FOUND, f"this connection is not in {args.channel}")
    return {}


@op("channels.publish", PublishArgs)
async def publish(call: Call, args: PublishArgs) -> dict[str, Any]:
    channels = call.gateway.live.channels
    name = _channel(args)
    if channels.member_of(call.peer, name) is None:
        raise HaptaError(FORBIDDEN, f"join {name} before publishing to it")
    if nesting(args.data) > MAX_NESTING:
        raise HaptaError(BAD_REQUEST, f"data is nested more than {MAX_NESTING} levels deep")
    try:
        sent = await channels.publish(call.peer, name, args.data)
    except bus.BusDown:
        raise HaptaError(UNAVAILABLE, "channels are unavailable right now", retry_after=1.0) from None
    if not sent:
        raise HaptaError(TOO_LARGE, f"a channel message is at most {channels.bus.limit} bytes encoded")
    return {}
