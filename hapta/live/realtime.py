"""Realtime subscriptions: which connection hears about which change, decided when the change is delivered.

Subscriptions with the same collection (or record), filter and fields form a Topic; inside it, those whose
principals look the same to the rules (the same values for the variables the rules read) form a Group. For each
change a Topic first asks the rule and filter "is the answer the same for anyone?" (evaluate_for_anyone: a public
post is visible to all, whoever asks); only where the answer depends on the asker is it evaluated once per Group.
Each distinct event is encoded once (events.Event) and written to every connection without a task per
connection, so a change to 10,000 subscribers is a tight loop of buffer writes. A connection that cannot keep up is
never waited for: past App.max_outgoing unsent bytes it is dropped (Connection.deliver).

Rules are checked against the record as it stands when delivered, with the principal as it is then: an expired
token or a signed-out connection hears nothing; a record that stops being viewable reaches those who could see
it as a `delete` carrying only its id; one that becomes viewable reaches them as an `update`.

Every event carries its change's position (`pos`, feed.py). A subscription hears only changes after its `floor`
(where it started); one that is being resumed or snapshotted is `held` meanwhile: live events queue on it, and
`release` sends the replayed ones first, then those queued that the replay did not cover (docs/realtime.md).
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Iterable

import msgspec

from .. import metrics
from ..access.live import Checks, Outcome, guard_outcomes, project, topic_nodes
from ..access.rules import reads, variable_key
from ..limits.quota import Quota
from ..models import Model
from ..principal import ADMIN, GUEST, Peer, Principal
from ..store.postgres import Database
from ..query.ast import Node
from .events import Event, Payload, event
from .feed import Change, id_param, typed

CHANGE_EVENT = "records.change"
RESET_EVENT = "realtime.reset"
# Seconds of delivery work after which it lets other tasks run (a ping's reply waits at most about this long).
DELIVERY_SLICE = 0.005
# Live events a subscription being started may hold; past it, it gets `realtime.reset` instead of them.
MAX_HELD = 10_000


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
    held: list[tuple[int, int, Event]] | None = None   # (position, inbox place, event) while being started
    overflowed: bool = False      # more was held than MAX_HELD: it is reset when released
    expand: Any = None            # the relations its events embed (records/expand.py Plan), or None


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
    groups: dict[tuple, Group] = field(default_factory=dict)

    @classmethod
    def of(cls, model: Model, record_id: str | None, filter_node: Node | None, fields: tuple[str, ...]) -> "Topic":
        var_names, relations = reads(tuple(topic_nodes(model, filter_node, fields)))
        guarded = tuple(f for f in fields if model.table.fields[f].guard is not None)
        return cls(model, record_id, filter_node, fields, var_names, relations, guarded)

    @property
    def key(self) -> tuple:
        return (self.record_id, self.filter, self.fields)

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

    def remove(self, sub: Subscription) -> None:
        group = sub.group
        if group is not None:
            group.subs.discard(sub)
            if not group.subs:
                self.groups.pop(group.key, None)
        sub.group = None

    def __len__(self) -> int:
        return sum(len(g.subs) for g in self.groups.values())


class TooMany(Exception):
    """A subscription would take its principal or address over a quota; `what` says which, for the client."""

    def __init__(self, what: str, limit: int):
        super().__init__(what)
        self.what = what
        self.limit = limit


class Realtime:
    def __init__(self, models: dict[str, Model], db: Database, *, per_principal: int = 500,
                 per_address: int = 2000, filter_bytes_per_address: int = 512 * 1024):
        self.models = models
        self.db = db
        # The collections' before_send hooks, per receiving principal (the composition root sets them):
        # sends(collection) -> has one; sent(principal, model, records) -> as it lets them leave (records.Records)
        self.sends: Callable[[str], bool] = lambda collection: False
        self.sent: Callable[[Principal, Model, list], Awaitable[list]] | None = None
        # expanded(principal, model, plan, records) -> records with `expand`, as the related rules show them
        self.expanded: Callable[[Principal, Model, Any, list], Awaitable[list]] | None = None
        # What one client may hold, across its connections (each connection's own cap is App.max_subscriptions):
        # distinct filters cost memory and a rule check per change each, so they are bounded by count and by bytes.
        self.counts = Quota({"user": per_principal, "addr": per_address})
        self.filter_bytes = Quota({"addr": filter_bytes_per_address})
        # collection -> record id (None: the whole collection) -> topic key -> Topic
        self.topics: dict[str, dict[str | None, dict[tuple, Topic]]] = {}
        self.by_peer: dict[Peer, dict[str, Subscription]] = {}
        self.numbers: dict[Peer, int] = {}
        self.delivered = 0

    # ---- subscriptions ----------------------------------------------------------------------------------

    def count(self, peer: Peer) -> int:
        return len(self.by_peer.get(peer, ()))

    def subscribe(self, peer: Peer, model: Model, record_id: str | None, filter_node: Node | None,
                  fields: tuple[str, ...], *, holders: tuple[str, ...] = (), weight: int = 0,
                  expand: Any = None) -> Subscription:
        """A new subscription counted against `holders` (its principal's and its address's quotas) with `weight`
        bytes of filter text; TooMany when a quota has no room. It is held until `release` says where it starts."""
        refused = self.counts.take(holders)
        if refused is not None:
            raise TooMany(f"subscriptions per {'user' if refused == 'user' else 'client address'}",
                          self.counts.cap(refused) or 0)
        if self.filter_bytes.take(holders, weight) is not None:
            self.counts.give(holders)
            raise TooMany("bytes of subscription filters per client address", self.filter_bytes.cap("addr") or 0)
        number = self.numbers.get(peer, 0) + 1
        self.numbers[peer] = number
        sub_id = f"s{number}"
        by_id = self.topics.setdefault(model.name, {}).setdefault(record_id, {})
        key = (record_id, filter_node, fields)
        topic = by_id.get(key)
        if topic is None:
            topic = by_id[key] = Topic.of(model, record_id, filter_node, fields)
        sub = Subscription(sub_id, peer, topic, peer.principal, holders=holders, weight=weight, held=[],
                           expand=expand)
        topic.add(sub)
        self.by_peer.setdefault(peer, {})[sub_id] = sub
        metrics.SUBSCRIPTIONS.inc()
        return sub

    def release(self, sub: Subscription, floor: int, replayed: list[Event] = (), *, reset: bool = False,
                skip: frozenset[int] = frozenset()) -> None:
        """A held subscription starts: `replayed` first (or `realtime.reset` for it), then the held events after
        `floor` (those at or before it the replay or snapshot covered, and those in `skip`), then live from `floor`
        on. One that held more than MAX_HELD lost some: it gets `realtime.reset` instead of them."""
        held, sub.held = sub.held or [], None
        sub.floor, sub.skip = floor, skip
        if self.by_peer.get(sub.peer, {}).get(sub.id) is not sub:
            return   # unsubscribed (or the connection closed) meanwhile
        if reset or sub.overflowed:
            sub.overflowed = False
            sub.peer.deliver(reset_event([sub.id], sub=sub.id))
            replayed = ()
        frames = [*replayed, *(frame for position, place, frame in held if position > floor and place not in skip)]
        for frame in frames:
            sub.peer.deliver(frame)
        self.delivered += len(frames)
        metrics.EVENTS.inc(len(frames))

    def unsubscribe(self, peer: Peer, sub_id: str) -> bool:
        sub = self.by_peer.get(peer, {}).pop(sub_id, None)
        if sub is None:
            return False
        self._drop(sub)
        return True

    def leave(self, peer: Peer) -> None:
        """The connection closed: forget everything it had."""
        for sub in self.by_peer.pop(peer, {}).values():
            self._drop(sub)
        self.numbers.pop(peer, None)

    def _drop(self, sub: Subscription) -> None:
        metrics.SUBSCRIPTIONS.dec()
        self.counts.give(sub.holders)
        self.filter_bytes.give(sub.holders, sub.weight)
        topic = sub.topic
        topic.remove(sub)
        if not topic.groups:
            by_id = self.topics.get(topic.model.name, {})
            topics = by_id.get(topic.record_id, {})
            topics.pop(topic.key, None)
            if not topics:
                by_id.pop(topic.record_id, None)
            if not by_id:
                self.topics.pop(topic.model.name, None)

    def subscriptions(self) -> int:
        return sum(len(subs) for subs in self.by_peer.values())

    # ---- delivery ---------------------------------------------------------------------------------------

    async def deliver(self, batch: list[Change]) -> None:
        """Live: `batch` (from the feed, in position order) to every subscription it concerns."""
        changes = _coalesce([c for c in batch if c.t in self.topics])
        if not changes:
            return
        outcomes, related = await self._outcomes(changes)
        moment = datetime.now(timezone.utc)
        wall = time.time()
        sent = self.delivered
        for change, outcome in outcomes:
            await self._deliver_one(change, outcome, related, moment, wall)
        metrics.EVENTS.inc(self.delivered - sent)

    async def _personal(self, model: Model, principal: Principal, payload: Payload,
                        personal: dict[tuple, Payload | None]) -> Payload | None:
        """The payload as the collection's before_send hook shows it to `principal` (one hook call per principal
        and payload of a change), or None when the hook leaves the record out."""
        key = (id(payload), principal.user_id, principal.role)
        if key not in personal:
            assert self.sent is not None
            value = payload.value
            shown = await self.sent(principal, model, [value["record"]])
            personal[key] = Payload({**value, "record": shown[0]}) if shown else None
        return personal[key]

    async def _expand(self, model: Model, principal: Principal, payload: Payload, plan: Any,
                      expansions: dict[tuple, Payload]) -> Payload:
        """The payload with its record's relations embedded as `principal` may see them (records/expand.py: the
        related records are read once per change and reader's rule variables, through the read cache)."""
        key = (id(payload), id(plan), principal.user_id, principal.role)
        if key not in expansions:
            assert self.expanded is not None
            value = payload.value
            [shown] = await self.expanded(principal, model, plan, [value["record"]])
            expansions[key] = Payload({**value, "record": shown})
        return expansions[key]

    async def replay(self, sub: Subscription, changes: list[Change]) -> list[Event]:
        """The events `changes` (from the log, in position order) make for `sub` as the record and the subscriber
        are now: what it missed, checked as a live delivery would be now."""
        outcomes, related = await self._outcomes(_coalesce(changes))
        moment = datetime.now(timezone.utc)
        wall = time.time()
        replayed: list[Event] = []
        for change, outcome in outcomes:
            if sub.group is None:
                return []   # unsubscribed meanwhile
            await self._deliver_one(change, outcome, related, moment, wall, only=sub, sink=replayed)
        return replayed

    async def _outcomes(self, changes: list[Change]) -> tuple[list[tuple[Change, Outcome]], dict]:
        """Each change with the record now and before, and the related records the rules reach."""
        rows = await self._fetch_rows(changes)
        outcomes = []
        for change in changes:
            model = self.models[change.t]
            key = str(change.id)
            if change.a == "delete":
                # the old row as the trigger sent it; fields missing from a big row make rules fail closed
                old = typed(model, change.o) if change.o else {"id": change.id}
                outcomes.append((change, Outcome(change.a, None, old)))
                continue
            now = rows.get((change.t, key))
            if now is None:
                continue   # deleted since: its delete follows
            before = {**now, **typed(model, change.o)} if change.a == "update" and change.o else None
            outcomes.append((change, Outcome(change.a, now, before)))
        if not outcomes:
            return [], {}
        related = await self._fetch_related(outcomes)
        self._regroup(outcomes)
        return outcomes, related

    async def _fetch_rows(self, changes: list[Change]) -> dict[tuple[str, str], dict[str, Any]]:
        """The current rows of created/updated records: one query per table."""
        wanted: dict[str, list[Any]] = {}
        for change in changes:
            if change.a != "delete":
                wanted.setdefault(change.t, []).append(change.id)
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for table, ids in wanted.items():
            for record in await self._fetch(self.models[table], ids):
                rows[(table, str(record["id"]))] = record
        return rows

    async def _fetch(self, model: Model, ids: Iterable[Any]) -> list[dict[str, Any]]:
        params = []
        for value in ids:
            try:
                params.append(id_param(model, value))
            except (ValueError, TypeError):
                continue
        if not params:
            return []
        columns = ", ".join(f'"{n}"' for n in model.visible)
        id_type = {"int": "int8", "uuid": "uuid"}.get(model.info.columns["id"].kind, "text")
        found = await self.db.fetch(f'SELECT {columns} FROM "{model.name}" WHERE "id" = ANY($1::{id_type}[])',
                                      list(dict.fromkeys(params)))
        return [dict(r) for r in found]

    async def _fetch_related(self, outcomes: list[tuple[Change, Outcome]]) -> dict[tuple[str, str], dict[str, Any]]:
        """Records that rules, filters and guards reach through relations (`post.public`), in one query per
        target table. Keyed by (target table, id)."""
        wanted: dict[str, set[Any]] = {}
        for change, outcome in outcomes:
            model = self.models[change.t]
            relations: set[str] = set()
            for topics in self.topics.get(model.name, {}).values():
                for topic in topics.values():
                    relations |= topic.relations
            for name in relations:
                target = model.table.fields[name].relation
                for record in (outcome.now, outcome.before):
                    if record is not None and record.get(name) is not None:
                        wanted.setdefault(target, set()).add(record[name])
        related: dict[tuple[str, str], dict[str, Any]] = {}
        for table, ids in wanted.items():
            for record in await self._fetch(self.models[table], ids):
                related[(table, str(record["id"]))] = record
        return related

    def _regroup(self, outcomes: list[tuple[Change, Outcome]]) -> None:
        """Move subscriptions whose connection signed in as someone else since they subscribed."""
        for collection in {change.t for change, _ in outcomes}:
            for topics in self.topics.get(collection, {}).values():
                for topic in topics.values():
                    moved = [sub for group in topic.groups.values() for sub in group.subs
                             if sub.peer.principal is not sub.principal]
                    for sub in moved:
                        topic.remove(sub)
                        sub.principal = sub.peer.principal
                        topic.add(sub)

    async def _deliver_one(self, change: Change, outcome: Outcome, related_rows: dict, moment: datetime,
                           wall: float, only: Subscription | None = None, sink: list[Event] | None = None) -> None:
        """To every subscription the change concerns; or, replaying, to `only` into `sink`."""
        model = self.models[change.t]
        if only is not None:
            topics = [only.topic] if only.topic.record_id in (None, str(change.id)) else []
        else:
            by_id = self.topics.get(change.t)
            if not by_id:
                return
            topics = [*by_id.get(None, {}).values(), *by_id.get(str(change.id), {}).values()]
        if not topics:
            return
        rule = model.rules["view"]
        frames: dict[tuple, Event] = {}
        payloads: dict[tuple, Payload] = {}
        hooked = self.sent is not None and self.sends(model.name)
        personal: dict[tuple, Payload | None] = {}   # (payload, user, role) -> as before_send shows it, or None
        expansions: dict[tuple, Payload] = {}         # (payload, plan, user, role) -> with its expand
        slice_began = time.perf_counter()
        for topic in topics:
            now_related = _related(model, topic.relations, outcome.now, related_rows)
            before_related = _related(model, topic.relations, outcome.before, related_rows)
            checks = Checks(rule, topic.filter, outcome, now_related, before_related)
            # Usually the rule and filter answer the same for anyone (a public post): decide once for the topic.
            shared = checks.decide_for_anyone() if not topic.guarded else None
            for group in list(topic.groups.values()) if only is None else [only.group]:
                if time.perf_counter() - slice_began > DELIVERY_SLICE:
                    # One change to thousands of distinct subscriptions is a lot of rule checks: let the other
                    # sockets' requests run between slices. A member that left meanwhile is skipped below.
                    await asyncio.sleep(0)
                    slice_began = time.perf_counter()
                action, record = shared if shared is not None and not group.admin else checks.decide(group, moment)
                if action is None:
                    continue
                if record is checks.left:   # only its id: the subscriber may no longer see the rest
                    guards, payload_key = (), ("left",)
                else:
                    guards = guard_outcomes(model, topic.guarded, record, group, moment,
                                             now_related if outcome.now is not None else before_related)
                    payload_key = (action, topic.fields, guards)
                payload = payloads.get(payload_key)
                if payload is None:
                    shown = record if record is checks.left else model.public(project(record, topic.fields, guards))
                    payload = payloads[payload_key] = Payload({
                        "action": action, "collection": model.name, "record": shown, "pos": change.p})
                for sub in list(group.subs) if only is None else [only]:
                    if sub.group is not group:
                        continue   # unsubscribed (or moved) while delivery yielded
                    principal = sub.peer.principal
                    if principal is not sub.principal:
                        continue   # signed in as someone else while delivery yielded: decided for another
                    if principal.role == GUEST or (principal.expires_at is not None and wall >= principal.expires_at):
                        continue   # signed out or expired since it subscribed: it hears nothing
                    if sink is None and (change.p <= sub.floor or change.s in sub.skip):
                        continue   # from before it started, or already in its snapshot
                    sending = payload
                    if hooked and record is not checks.left and not principal.is_admin:
                        sending = await self._personal(model, principal, payload, personal)
                        if sending is None or sub.group is not group or sub.peer.principal is not principal:
                            continue   # left out by before_send (or the subscriber changed while it ran)
                    if sub.expand is not None and record is not checks.left and action != "delete":
                        sending = await self._expand(model, principal, sending, sub.expand, expansions)
                        if sub.group is not group or sub.peer.principal is not principal:
                            continue   # the subscriber changed while the expansion was read
                    frame_key = (sub.id, id(sending))
                    frame = frames.get(frame_key)
                    if frame is None:
                        frame = frames[frame_key] = Event(CHANGE_EVENT, sending, sub.id)
                    if sink is not None:
                        sink.append(frame)
                    elif sub.held is not None:
                        if len(sub.held) < MAX_HELD:
                            sub.held.append((change.p, change.s, frame))
                        else:
                            sub.overflowed = True
                    else:
                        sub.peer.deliver(frame)
                        self.delivered += 1


def _coalesce(changes: list[Change]) -> list[Change]:
    """Several changes of one record become one, in the place (and with the position) of its last: its first action
    (a create stays a create), its oldest known old values, and the record as it now stands. Deletes are kept as
    they come. So positions still rise from one event to the next."""
    places: dict[tuple[str, str], int] = {}
    out: list[Change | None] = []
    for change in changes:
        if change.a != "delete":
            key = (change.t, str(change.id))
            place = places.get(key)
            if place is not None:
                first = out[place]
                out[place] = None
                change = msgspec.structs.replace(change, a=first.a, o={**(change.o or {}), **(first.o or {})} or None)
            places[key] = len(out)
        out.append(change)
    return [change for change in out if change is not None]


def reset_event(subs: list[str], channels: list[str] = (), sub: str | None = None) -> Event:
    """`realtime.reset`: these subscriptions may have missed changes (refetch), these channels' notices."""
    return event(RESET_EVENT, {"subs": sorted(subs), "channels": sorted(channels)}, sub)


def _related(model: Model, relations: frozenset[str], record: dict[str, Any] | None,
             rows: dict[tuple[str, str], dict[str, Any]]) -> dict[str, dict[str, Any] | None]:
    if record is None or not relations:
        return {}
    out = {}
    for name in relations:
        value = record.get(name)
        out[name] = None if value is None else rows.get((model.table.fields[name].relation, str(value)))
    return out
