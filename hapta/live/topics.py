"""Who listens to what: subscriptions, the groups the rules cannot tell apart, and the topics they share. Pure.

Subscriptions with the same collection (or record), filter and fields form a Topic; inside it, those whose
principals look the same to the rules (the same values for the variables the rules read: access.rules.variable_key)
form a Group. Delivery decides once per topic where the answer is the same for anyone, else once per group
(plan.py); subscriptions only receive.

A subscription's life is a small state machine, kept in one table (as h11's _state.py keeps HTTP's):

    state        what an event for it does                  events that move it
    -----------  -----------------------------------------  --------------------------------------------------
    STARTING     waits in its queue (its start is being     queue -> STARTING; overflow (MAX_HELD reached)
                 read: a snapshot, or a replay)             -> OVERFLOWED; release -> LIVE; end -> ENDED
    OVERFLOWED   is dropped: it is told realtime.reset      queue -> OVERFLOWED; release -> LIVE (after the
                 when released, then goes on live           reset); end -> ENDED
    LIVE         is written to its connection               end -> ENDED
    ENDED        nothing (unsubscribed, or closed)          -
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from ..access.live import related_columns, topic_nodes
from ..access.rules import reads, variable_key
from ..models import Model
from ..principal import ADMIN, Peer, Principal
from ..query.ast import Node

# Live events a starting subscription may queue; past it, it gets `realtime.reset` instead of them.
MAX_HELD = 10_000


class State(enum.Enum):
    STARTING = "starting"
    OVERFLOWED = "overflowed"
    LIVE = "live"
    ENDED = "ended"


# (state, what happened) -> the next state. Anything else is a bug, and raises.
TRANSITIONS: dict[tuple[State, str], State] = {
    (State.STARTING, "queue"): State.STARTING,
    (State.STARTING, "overflow"): State.OVERFLOWED,
    (State.STARTING, "release"): State.LIVE,
    (State.STARTING, "end"): State.ENDED,
    (State.OVERFLOWED, "queue"): State.OVERFLOWED,
    (State.OVERFLOWED, "overflow"): State.OVERFLOWED,
    (State.OVERFLOWED, "release"): State.LIVE,
    (State.OVERFLOWED, "end"): State.ENDED,
    (State.LIVE, "end"): State.ENDED,
}


class BadTransition(RuntimeError):
    """A subscription was asked to do what its state does not allow: a bug in the caller."""


@dataclass(eq=False)
class Subscription:
    id: str
    peer: Peer
    topic: "Topic"
    principal: Principal          # the principal its group was chosen for
    group: "Group | None" = None
    holders: tuple[str, ...] = () # whose quotas it counts against (its principal's, its address's)
    weight: int = 0               # the bytes of filter text it holds
    floor: int = 0                # it hears changes at positions after this
    skip: frozenset[int] = frozenset()   # inbox places of changes its snapshot already showed
    expand: Any = None            # the relations its events embed (records/expand.py Plan), or None
    view: Any = None              # a live query's window and what its client holds (queries.QueryView), or None
    state: State = State.STARTING
    queue: list[tuple[int, int, Any]] = field(default_factory=list)   # (position, inbox place, event) while starting

    def move(self, what: str) -> State:
        """Apply `what` ("queue", "overflow", "release", "end") to the state, by TRANSITIONS."""
        try:
            self.state = TRANSITIONS[(self.state, what)]
        except KeyError:
            raise BadTransition(f"subscription {self.id}: {what} while {self.state.value}") from None
        return self.state

    def hold(self, position: int, place: int, frame: Any) -> None:
        """An event while starting: queued, or, past MAX_HELD, dropped (it will be told to refetch)."""
        if self.state is State.STARTING and len(self.queue) < MAX_HELD:
            self.move("queue")
            self.queue.append((position, place, frame))
        else:
            self.move("overflow")
            self.queue.clear()

    def release(self, floor: int, skip: frozenset[int] = frozenset()) -> tuple[bool, list[Any]]:
        """Start live after `floor`: (whether it overflowed, the queued events it must still get: after `floor`
        and not among the snapshot's `skip`)."""
        overflowed = self.state is State.OVERFLOWED
        queued, self.queue = self.queue, []
        self.move("release")
        self.floor, self.skip = floor, skip
        return overflowed, [frame for position, place, frame in queued if position > floor and place not in skip]

    def hears(self, position: int, place: int) -> bool:
        """Is a live change at `position` (inbox `place`) news to it? (Not from before it started, nor in the
        snapshot it started with.)"""
        return position > self.floor and place not in self.skip

    @property
    def starting(self) -> bool:
        return self.state is State.STARTING or self.state is State.OVERFLOWED


@dataclass(eq=False)
class Group:
    key: tuple
    vars: dict[str, Any]          # the rule variables shared by its members ("now" is set at delivery)
    admin: bool
    subs: set[Subscription] = field(default_factory=set)


@dataclass(eq=False)
class Topic:
    model: Model
    record_id: str | None
    filter: Node | None
    fields: tuple[str, ...]
    var_names: frozenset[str]     # what the rule, filter and guards of `fields` read about the principal
    relations: frozenset[str]     # relation fields they follow
    guarded: tuple[str, ...]      # fields among `fields` that a guard may blank
    # relation field -> the related record's columns they read (a change of one of them may move records of this
    # topic in or out of view: Realtime's derived outcomes)
    follows: dict[str, frozenset[str]] = field(default_factory=dict)
    groups: dict[tuple, Group] = field(default_factory=dict)
    expanding: int = 0            # its subscriptions whose events embed relations (`Subscription.expand`)
    query: Any = None             # a live query's order and limit (queries.Query), or None: a subscription

    @classmethod
    def of(cls, model: Model, record_id: str | None, filter_node: Node | None, fields: tuple[str, ...],
           query: Any = None) -> "Topic":
        """A subscription's topic (the view rule decides), or, with `query`, a live query's (the list rule decides,
        as records.list's does, and the guards of the fields it sorts by are read too)."""
        rule_op, read = ("view", fields) if query is None else ("list", (*fields, *query.order.fields))
        nodes = tuple(topic_nodes(model, filter_node, tuple(dict.fromkeys(read)), rule_op))
        var_names, relations = reads(nodes)
        guarded = tuple(f for f in fields if model.table.fields[f].guard is not None)
        return cls(model, record_id, filter_node, fields, var_names, relations, guarded, related_columns(nodes),
                   query=query)

    @property
    def rule(self) -> Any:
        return self.model.rules["view" if self.query is None else "list"]

    @property
    def key(self) -> tuple:
        return (self.record_id, self.filter, self.fields, None if self.query is None else self.query.key)

    def group_key(self, principal: Principal) -> tuple:
        return variable_key(self.var_names, principal)

    def add(self, sub: Subscription) -> None:
        principal = sub.principal
        key = self.group_key(principal)
        group = self.groups.get(key)
        if group is None:
            variables = {name: value for name, value in principal.rule_vars().items() if name != "now"}
            group = self.groups[key] = Group(key, variables, principal.role == ADMIN)
        group.subs.add(sub)
        sub.group = group
        if sub.expand is not None:
            self.expanding += 1

    def remove(self, sub: Subscription) -> None:
        group = sub.group
        if group is not None:
            group.subs.discard(sub)
            if not group.subs:
                self.groups.pop(group.key, None)
            if sub.expand is not None:
                self.expanding -= 1
        sub.group = None

    def regroup(self) -> list[Subscription]:
        """Move the subscriptions whose connection signed in as someone else since they joined their group; the
        ones moved."""
        moved = [sub for group in self.groups.values() for sub in group.subs if sub.peer.principal is not sub.principal]
        for sub in moved:
            self.remove(sub)
            sub.principal = sub.peer.principal
            self.add(sub)
        return moved

    def __len__(self) -> int:
        return sum(len(g.subs) for g in self.groups.values())


class TooMany(Exception):
    """A subscription would take its principal or address over a quota; `what` says which, for the client."""

    def __init__(self, what: str, limit: int):
        super().__init__(what)
        self.what = what
        self.limit = limit
