"""realtime.subscribe as a use case: from what the client asked to the answer and what starts the subscription.

Subscribing checks only that the collection exists and has a view rule for this principal: whether a change
reaches the subscriber is decided for each change, by the view rule, when it is delivered (plan.py). A subscription
starts live at the newest position this process has handed on, or resumes after `since`, or starts with a snapshot
(the first page of records.list and the position it was read at); it is held (starting) while that is prepared,
and the caller starts it once its answer is on its way, so that what it missed and what came meanwhile follow the
answer in order (docs/realtime.md).
"""
from __future__ import annotations

from typing import Any, Callable

from ..access import realtime_filter
from ..limits import principal_key
from ..principal import Peer
from ..protocol.errors import BAD_REQUEST, FORBIDDEN, NOT_FOUND, TOO_LARGE, HaptaError
from ..records.service import Records
from ..records.values import record_key
from . import Live
from .topics import TooMany

Start = Callable[[], None]


class Subscriptions:
    def __init__(self, live: Live, records: Records, *, max_per_connection: int):
        self.live = live
        self.realtime = live.realtime
        self.records = records
        self.max_per_connection = max_per_connection

    async def subscribe(self, peer: Peer, collection: str, *, record_id: str | None = None,
                        filter_text: str | None = None, fields: list[str] | None = None, since: int | None = None,
                        snapshot: bool = False, sort: str | None = None, per_page: int = 30,
                        expand: list[str] | None = None) -> tuple[dict[str, Any], Start]:
        """({sub, pos} and, with `snapshot`, the first page; what starts it): call the start once the answer is
        on its way to the client."""
        principal = peer.principal
        model = self.records.model(collection)
        if model.rules["view"] is None and not principal.is_admin:
            raise HaptaError(FORBIDDEN, f"view on {model.name} is for admins only")
        if snapshot and (since is not None or record_id is not None):
            raise HaptaError(BAD_REQUEST, "snapshot is for a collection's subscription, without since or id")
        record = None if record_id is None else str(record_key(model, record_id))
        found = realtime_filter(self.records.filter(principal, model, filter_text))
        shown = self.records.fields(model, fields)
        plan = self.records.expansion(model, expand, shown)
        limit = self.max_per_connection
        if self.realtime.count(peer) >= limit:
            raise HaptaError(TOO_LARGE, f"a connection may hold at most {limit} subscriptions",
                             details={"limit": limit})
        holders = tuple(dict.fromkeys((principal_key(peer), principal_key(peer, by_address=True))))
        try:
            sub = self.realtime.subscribe(peer, model, record, None if found is None else found.node, shown,
                                          holders=holders, weight=len(filter_text or ""), expand=plan)
        except TooMany as exc:
            raise HaptaError(TOO_LARGE, f"at most {exc.limit} {exc.what}", details={"limit": exc.limit}) from None
        try:
            if snapshot:
                page, position, start = await self.live.snapshot(sub, lambda conn: self.records.page(
                    conn, principal, model, found, shown, sort, per_page))
                view = self.records.view
                page = await view.page(principal, model, page)   # through before_send, if any
                if plan is not None:
                    page = {**page, "items": await view.expand(principal, model, plan, page["items"])}
                return {"sub": sub.id, "pos": position, **page}, start
            if since is not None:
                position, start = await self.live.resume(sub, since)
            else:
                position, start = await self.live.begin(sub)
            return {"sub": sub.id, "pos": position}, start
        except BaseException:
            self.realtime.unsubscribe(peer, sub.id)
            raise

    def unsubscribe(self, peer: Peer, sub_id: str) -> None:
        if not self.realtime.unsubscribe(peer, sub_id):
            raise HaptaError(NOT_FOUND, f"no subscription {sub_id!r} on this connection")
