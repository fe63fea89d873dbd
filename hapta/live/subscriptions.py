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

from ..access import BoundFilter, realtime_filter, rule_for
from ..limits import principal_key
from ..models import Model
from ..principal import Peer, Principal
from ..protocol.errors import BAD_REQUEST, FORBIDDEN, NOT_FOUND, TOO_LARGE, HaptaError
from ..query import schema as kinds
from ..records.cursors import RANK, sort_terms
from ..records.expand import Plan
from ..records.service import Records
from ..records.values import record_key
from . import Live
from .queries import Query, QueryView, ident, margin
from .topics import Subscription, TooMany
from .window import Entry, Order, Window, diff

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
        sub = self._subscribe(peer, model, record, found, shown, len(filter_text or ""), plan)
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

    async def query(self, peer: Peer, collection: str, *, filter_text: str | None, sort: str, limit: int,
                    fields: list[str] | None = None, expand: list[str] | None = None,
                    have: list[tuple[Any, int]] | None = None) -> tuple[dict[str, Any], Start]:
        """realtime.query: ({sub, pos, items}, or with `have` {sub, pos, ops} that turn the items the client
        holds into the current ones; what starts it). The items are records.list's first page of `limit` for
        this reader at `pos`, kept current by realtime.diff from then on (queries.py, window.py)."""
        principal = peer.principal
        model = self.records.model(collection)
        rule_for(model, "list", principal)   # FORBIDDEN when listing is for admins only
        found = realtime_filter(self.records.filter(principal, model, filter_text))
        shown = self.records.fields(model, fields)
        missing = [name for name in ("id", "version") if name not in shown and name in model.table.fields]
        if missing:
            raise HaptaError(BAD_REQUEST, f"fields of a live query must include {' and '.join(missing)}: its "
                             "diffs and its resume name records by them", details={"field": "fields"})
        plan = self.records.expansion(model, expand, shown)
        query = self._query_of(model, sort, limit, shown)
        terms = query.order.terms
        read_size = query.limit + margin(query.limit)

        async def read(reader: Principal, conn: Any = None) -> tuple[list[Entry], bool]:
            found = realtime_filter(self.records.filter(reader, model, filter_text))   # bound for this reader
            rows = await self.records.window(conn, reader, model, found, shown, terms, read_size + 1)
            entries = [Entry(query.order.key({name: row[f"__k{i}"] for i, (name, _) in enumerate(terms)}),
                             ident(row["id"]), row["__v"], model.public({name: row[name] for name in shown})) for row in rows]
            return entries[:read_size], len(entries) <= read_size

        async def items_shown(reader: Principal, entries: list[Entry]) -> list[tuple[Any, int, dict]]:
            return await self._shown(reader, model, plan, entries)

        view = QueryView(Window(query.limit, margin(query.limit)), read, items_shown)
        sub = self._subscribe(peer, model, None, found, shown, len(filter_text or "") + len(sort), plan, query, view)
        try:
            (entries, complete), position, start = await self.live.snapshot(sub, lambda conn: read(principal, conn))
            view.window.fill(entries, complete)
            items = await items_shown(principal, view.window.items())
            view.sent = items
            if have is None:
                return {"sub": sub.id, "pos": position, "items": [record for _, _, record in items]}, start
            ops = diff([(ident(held_id), version, None) for held_id, version in have], items)
            if len(ops) > len(items):   # more to say as a diff than as the items themselves
                return {"sub": sub.id, "pos": position, "items": [record for _, _, record in items]}, start
            return {"sub": sub.id, "pos": position, "ops": ops}, start
        except BaseException:
            self.realtime.unsubscribe(peer, sub.id)
            raise

    def _query_of(self, model: Model, sort: str, limit: int, shown: tuple[str, ...]) -> Query:
        """The order and limit of a live query, refused when it cannot be kept in Python."""
        terms = sort_terms(model, sort)
        if any(name == RANK for name, _ in terms):
            raise HaptaError(BAD_REQUEST, f"a live query cannot sort by {RANK}: a rank needs the database")
        columns = model.info.columns
        text_key = self.live.text_key
        if text_key is None and any(columns[name].kind == kinds.TEXT for name, _ in terms):
            raise HaptaError(BAD_REQUEST, "a live query sorts text only under a collation this gateway can "
                             "reproduce (C or C.UTF-8, or a C-library locale it has); the database's is "
                             f"{self.live.collation!r}", details={"field": "sort"})
        order = Order(terms, {name: columns[name].kind for name, _ in terms}, text_key or str)
        sorted_fields = tuple(name for name, _ in terms)
        guarded = tuple(dict.fromkeys(f for f in (*shown, *sorted_fields)
                                      if model.table.fields[f].guard is not None))
        return Query(order, limit, sorted_fields, guarded)

    async def _shown(self, principal: Principal, model: Model, plan: Plan | None,
                     entries: list[Entry]) -> list[tuple[Any, int, dict]]:
        """A window's items as its reader receives them: through the collection's before_send hook (a record it
        leaves out is not among them, as records.list leaves it out of a page) and with `expand`."""
        view = self.records.view
        items = [(entry.id, entry.version, entry.record) for entry in entries]
        if view.sends(model.name) and not principal.is_admin:
            records = await view.each(principal, model, [record for _, _, record in items])
            items = [(i, v, r) for (i, v, _), r in zip(items, records) if r is not None]
        if plan is not None and items:
            records = await view.expand(principal, model, plan, [record for _, _, record in items])
            items = [(i, v, r) for (i, v, _), r in zip(items, records)]
        return items

    def _subscribe(self, peer: Peer, model: Model, record: str | None, found: BoundFilter | None,
                   shown: tuple[str, ...], weight: int, plan: Plan | None, query: Query | None = None,
                   view: QueryView | None = None) -> Subscription:
        """A held subscription (or live query), counted against the connection's, principal's and address's
        bounds."""
        limit = self.max_per_connection
        if self.realtime.count(peer) >= limit:
            raise HaptaError(TOO_LARGE, f"a connection may hold at most {limit} subscriptions",
                             details={"limit": limit})
        holders = tuple(dict.fromkeys((principal_key(peer), principal_key(peer, by_address=True))))
        try:
            return self.realtime.subscribe(peer, model, record, None if found is None else found.node, shown,
                                           holders=holders, weight=weight, expand=plan, query=query, view=view)
        except TooMany as exc:
            raise HaptaError(TOO_LARGE, f"at most {exc.limit} {exc.what}", details={"limit": exc.limit}) from None

    def unsubscribe(self, peer: Peer, sub_id: str) -> None:
        if not self.realtime.unsubscribe(peer, sub_id):
            raise HaptaError(NOT_FOUND, f"no subscription {sub_id!r} on this connection")
