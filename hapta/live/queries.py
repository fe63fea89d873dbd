"""Live queries (realtime.query): what one change does to each query's window. Pure: no I/O, no awaits.

A live query is a subscription (topics.py) whose topic carries a Query (its order and limit) and whose
subscription carries a QueryView (its window and what its client holds). Queries with the same collection,
filter, fields, order and limit share a topic; inside it, those whose principals the list rule cannot tell apart
share a group, and each change is judged once per group, as for subscriptions (plan.py):

    effects(change, outcome, topic, ...)   for each group: does the record match now (list rule and filter, in
                                           Python, on the record as it now stands)? Then each of the group's
                                           queries gets the same Pending: put this entry (its sort key, its
                                           version, the record as the group is sent it) or drop this id.

Realtime applies the pendings to the windows (window.py) and, once per transaction, sends each query whose
items changed one `realtime.diff`; a window that drops below its limit is read again first (records.window, one
read per group). A query that is still starting queues its pendings like any subscription (Subscription.hold).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Awaitable, Callable, NamedTuple

from ..access.live import Checks, Outcome, guard_outcomes, project
from ..principal import GUEST, Principal
from .feed import Change
from .plan import _related
from .topics import State, Subscription, Topic
from .window import Entry, Order, Window

DIFF_EVENT = "realtime.diff"


def margin(limit: int) -> int:
    """Records a window holds beyond its limit, so that records leaving it are replaced without a read."""
    return min(max(limit // 2, 10), 100)


def ident(value: Any) -> Any:
    """A record id as the wire carries it (an int stays an int; a UUID is its text): what ops name records by."""
    return value if isinstance(value, (int, str)) else str(value)


@dataclass(frozen=True, eq=False)
class Query:
    """A live query's order and limit: what its topic holds beyond a subscription's."""
    order: Order
    limit: int
    sorted_fields: tuple[str, ...]   # the fields the order reads, guarded ones included
    guarded: tuple[str, ...]         # fields it sends or sorts by that a guard may blank

    @property
    def key(self) -> tuple:
        return (tuple(self.order.terms), self.limit)


# What reads a window afresh for a reader (records.window): its first entries, and whether that is all.
Read = Callable[[Principal], Awaitable[tuple[list[Entry], bool]]]
# The window's items as a reader receives them (before_send, expand): (id, version, record) each.
Shown = Callable[[Principal, list[Entry]], Awaitable[list[tuple[Any, int, dict]]]]


@dataclass(eq=False)
class QueryView:
    """One live query's state: its window, how to read it again, how its items leave, what its client holds."""
    window: Window
    read: Read
    shown: Shown
    sent: list[tuple[Any, int, dict]] = field(default_factory=list)

    def apply(self, pending: "Pending") -> None:
        if pending.entry is None:
            self.window.drop(pending.id)
        else:
            self.window.put(pending.entry)


class Pending(NamedTuple):
    """One change as a query's window takes it: the entry to put, or (None) the id to drop."""
    id: Any
    entry: Entry | None


def effects(change: Change, outcome: Outcome, topic: Topic, related: dict[tuple[str, str], dict],
            moment: datetime, wall: float) -> list[tuple[Subscription, Pending]]:
    """The queries of `topic` whose window this change changes, each with what it does to it. Decided once per
    group on the record as it now stands: it matches (an entry, at its place in the order) or it does not (drop).
    Where the rule and filter say no for anyone (another filter's record, a delete), no group is asked. A live
    query's window that neither holds the record nor would take it in is left out (Window.takes), and that is looked
    at first: a change costs a query something only where it lands. A starting query queues every pending (its
    window is not read yet)."""
    model = topic.model
    query: Query = topic.query
    now = outcome.now
    record_id = ident(change.id if now is None else now["id"])
    now_related = _related(model, topic.relations, now, related)
    checks = Checks(topic.rule, topic.filter, Outcome(change.action, now, None), now_related, {})
    anyone = checks.decide_for_anyone()
    nobody = anyone is not None and anyone[0] is None   # no group but an admin's sees it now
    position, place = change.position, change.place
    live = State.LIVE
    out: list[tuple[Subscription, Pending]] = []
    for group in topic.groups.values():
        entry = None
        if now is not None and (group.admin or not nobody) and checks.shows(group, moment, now=True):
            guards = guard_outcomes(model, query.guarded, now, group, moment, now_related)
            seen = project(now, query.sorted_fields, guards)
            record = model.public(project(now, topic.fields, guards))
            entry = Entry(query.order.key(seen), record_id, now.get("version", 0), record)
        pending = None
        for sub in group.subs:
            if sub.state is live:
                if entry is None:
                    if record_id not in sub.view.window.where:
                        continue   # not held, not entering: its window stays as it is, no diff to work out
                elif not sub.view.window.takes(record_id, entry):
                    continue
                if not sub.hears(position, place):
                    continue   # already in the window it started with
            principal = sub.peer.principal
            if principal is not sub.principal:
                continue   # signed in as someone else since it was grouped: regrouped before the next change
            if principal.role == GUEST or (principal.expires_at is not None and wall >= principal.expires_at):
                continue   # signed out or expired: its query stands still
            if pending is None:
                pending = Pending(record_id, entry)
            out.append((sub, pending))
    return out
