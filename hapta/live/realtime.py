"""Realtime subscriptions: the registry of who listens (topics.py), and delivery of each change in three passes.

    deliver(batch)   the changes a feed batch holds, coalesced per record, with the rows they need read at once
        1. plan      who hears what (plan.py: pure; the rules decided once per topic, or once per group)
        2. enrich    the deliveries that need it, through the collection's before_send hook (once per principal
                     and payload) and the subscription's expand (once per plan and principal): these await
        3. write     each distinct event encoded once (events.Event), written to every connection that hears it
                     without a task per connection; a starting subscription queues it instead (topics.py)

A change to 10,000 subscribers is a tight loop of buffer writes; the plan lets other tasks run every
DELIVERY_SLICE. A connection that cannot keep up is never waited for: past App.connections.outgoing unsent bytes it is
dropped (Connection.deliver). Every event carries its change's position (`pos`, feed.py); a subscription that is
being resumed or snapshotted queues live events until `release` says where it starts (docs/realtime.md).

Visibility through relations. A change to a record of P (an update whose old values show that a column some
subscribed topic of another collection C reads through a relation changed, or a delete) may move records of C in
or out of view without changing them: a post turned private hides its comments. `_outcomes` then reads the C
records pointing at the changed P records (one query per (C, relation) per batch, at most MAX_DEPENDENTS per changed
record and MAX_DEPENDENTS_READ per query) and adds a *derived* outcome for each: the record now and before, judged
before with P's old row and now with its new one. A change nothing subscribed depends on costs no query.

    _outcomes(changes, topics=None) -> Outcomes(pairs, related, unread)
        pairs    (Change, Outcome) in position order, the direct ones and the derived ones. A derived pair's Change
                 has table C, action "update", the C record's id and version, and the causing change's
                 position, inbox place and transaction; its Outcome has now == before (the C row as it stands)
                 and `through` (the relation fields whose related record changed: Outcome.derived is true). Every
                 outcome with a before side (derived or direct: a comment deleted with its post) carries
                 `before_related`, (P, id) -> P's row as it was before the batch, which the before side reads in
                 place of `related`. A C record that also changed itself in the batch gets no derived pair: its
                 own update is judged so (at the later position of the two); its create needs none.
        related  (table, id) -> the row as it stands, for every relation the topics' rules, filters and guards read
        unread   Unread(change, collection, relation): a changed P record with more dependents in C than
                 MAX_DEPENDENTS (or past MAX_DEPENDENTS_READ in its query): the subscriptions of C's topics that
                 follow the relation are told `realtime.reset` (refetch) at that change instead of reading on

Live queries (or anything else kept by diffs of C) consume derived pairs like any update whose before and now were
judged apart: in view before and not now, it left; now and not before, it entered; both or neither, nothing moved.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Iterable, NamedTuple, Protocol

import msgspec

from .. import metrics
from ..clock import Clock, wall
from ..access.live import Outcome
from ..limits.quota import Quota
from ..models import Model
from ..principal import GUEST, Peer, Principal
from ..store.postgres import Database
from ..query.ast import Node
from .events import Event, Events, Payload, event
from .feed import Change, id_param, typed
from .plan import Delivery, audiences, plan
from .queries import DIFF_EVENT, effects
from .topics import State, Subscription, TooMany, Topic
from .window import diff

__all__ = ["Realtime", "Subscription", "TooMany", "View", "Outcomes", "Unread", "reset_event", "CHANGE_EVENT",
           "RESET_EVENT", "MAX_DEPENDENTS", "MAX_DEPENDENTS_READ", "dependencies_of"]

log = logging.getLogger("hapta.realtime")

CHANGE_EVENT = "records.change"
RESET_EVENT = "realtime.reset"
# Seconds of delivery work after which it lets other tasks run (a ping's reply waits at most about this long).
DELIVERY_SLICE = 0.005
PLAN_SLICE = 128   # subscriptions (topics) planned between two looks at the clock
# Records of another collection read per changed record and relation when the change may move them in or out of
# view (a post turned private: its comments); past it, the subscriptions that follow the relation are told
# `realtime.reset` (refetch) rather than read on without bound.
MAX_DEPENDENTS = 1_000
# ... and at most this many per query (one per collection and relation per batch of the feed, up to 1,000 changes):
# the changed records past it get `realtime.reset` too.
MAX_DEPENDENTS_READ = 10_000


@dataclass(frozen=True, slots=True)
class Unread:
    """A changed record (`change`) whose dependents in `collection` through `relation` were not read: too many."""
    change: Change
    collection: str
    relation: str


class Outcomes(NamedTuple):
    """What `_outcomes` makes of a batch of changes (the module's docstring says what each holds)."""
    pairs: list[tuple[Change, Outcome]]
    related: dict[tuple[str, str], dict[str, Any]]
    unread: list[Unread]


# target collection -> (collection, relation field) -> the target's columns read through it
Dependencies = dict[str, dict[tuple[str, str], frozenset[str]]]


class View(Protocol):
    """How records leave the gateway for one reader, as records.* shows them too (records/view.py)."""

    def sends(self, collection: str) -> bool:
        """Has the collection a before_send hook?"""

    def sent(self, principal: Principal, model: Model, records: list) -> Awaitable[list]:
        """The records as the before_send hook lets `principal` see them (those it leaves out, gone)."""

    def expand(self, principal: Principal, model: Model, plan: Any, records: list) -> Awaitable[list]:
        """The records with `plan`'s relations embedded as the related collections' rules show them."""


class Realtime:
    def __init__(self, models: dict[str, Model], db: Database, view: View, *, clock: Clock = wall,
                 per_principal: int = 500, per_address: int = 2000, filter_bytes_per_address: int = 512 * 1024):
        self.models = models
        self.db = db
        self.view = view
        self.clock = clock   # subscribers' access tokens expire by it
        # What one client may hold, across its connections (each connection's own cap is App.realtime.per_connection):
        # distinct filters cost memory and a rule check per change each, so they are bounded by count and by bytes.
        self.counts = Quota({"user": per_principal, "addr": per_address})
        self.filter_bytes = Quota({"addr": filter_bytes_per_address})
        # collection -> record id (None: the whole collection) -> topic key -> Topic
        self.topics: dict[str, dict[str | None, dict[tuple, Topic]]] = {}
        self.by_peer: dict[Peer, dict[str, Subscription]] = {}
        self.numbers: dict[Peer, int] = {}
        self.delivered = 0
        self.holding = 0.0   # when the delivery under way last let other tasks run (perf_counter)
        # Deliveries, and live queries catching up on what they queued while starting, one at a time: a query's
        # diffs go out in position order, and nothing later overtakes what it queued.
        self.turn = asyncio.Lock()
        self.starting: set[asyncio.Task] = set()
        # While a transaction's changes are delivered: each connection's events so far (one, or a list), written
        # together once the transaction is done, in one frame (`_out`, `_let_go`).
        self.gathering: dict[Peer, Any] | None = None
        self.regrouped: list[Subscription] = []   # live queries whose connection signed in as someone else
        self._follows: Dependencies | None = None   # what the topics read through relations (None: work it out)

    # ---- subscriptions ----------------------------------------------------------------------------------

    def count(self, peer: Peer) -> int:
        return len(self.by_peer.get(peer, ()))

    def subscribe(self, peer: Peer, model: Model, record_id: str | None, filter_node: Node | None,
                  fields: tuple[str, ...], *, holders: tuple[str, ...] = (), weight: int = 0,
                  expand: Any = None, query: Any = None, view: Any = None) -> Subscription:
        """A new subscription counted against `holders` (its principal's and its address's quotas) with `weight`
        bytes of filter text; TooMany when a quota has no room. It is held until `release` says where it starts.
        With `query` (queries.Query) and `view` (queries.QueryView) it is a live query."""
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
        key = (record_id, filter_node, fields, None if query is None else query.key)
        topic = by_id.get(key)
        if topic is None:
            topic = by_id[key] = Topic.of(model, record_id, filter_node, fields, query)
            self._follows = None
        sub = Subscription(sub_id, peer, topic, peer.principal, holders=holders, weight=weight, expand=expand,
                           view=view)
        topic.add(sub)
        self.by_peer.setdefault(peer, {})[sub_id] = sub
        metrics.SUBSCRIPTIONS.inc()
        return sub

    def release(self, sub: Subscription, floor: int, replayed: list[Event] = (), *, reset: bool = False,
                skip: frozenset[int] = frozenset()) -> None:
        """A starting subscription goes live: `replayed` first (or `realtime.reset` for it), then what it queued
        after `floor` (what the replay or snapshot covered, and the snapshot's `skip`, left out), then live from
        `floor` on. One that queued more than it may lost some: it gets `realtime.reset` instead of them."""
        if sub.state is State.ENDED:
            return   # unsubscribed (or the connection closed) meanwhile
        if sub.view is not None:   # a live query: what it queued is applied in turn with deliveries
            task = asyncio.get_running_loop().create_task(self._start_query(sub, floor, skip))
            self.starting.add(task)
            task.add_done_callback(self.starting.discard)
            return
        overflowed, queued = sub.release(floor, skip)
        if reset or overflowed:
            sub.peer.deliver(reset_event([sub.id], sub=sub.id))
            replayed = ()
        frames = [*replayed, *queued]
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
        sub.move("end")
        metrics.SUBSCRIPTIONS.dec()
        self.counts.give(sub.holders)
        self.filter_bytes.give(sub.holders, sub.weight)
        topic = sub.topic
        topic.remove(sub)
        if not topic.groups:
            by_id = self.topics.get(topic.model.name, {})
            topics = by_id.get(topic.record_id, {})
            topics.pop(topic.key, None)
            self._follows = None
            if not topics:
                by_id.pop(topic.record_id, None)
            if not by_id:
                self.topics.pop(topic.model.name, None)

    def subscriptions(self) -> int:
        return sum(len(subs) for subs in self.by_peer.values())

    # ---- delivery ---------------------------------------------------------------------------------------

    @property
    def dependencies(self) -> Dependencies:
        """What the subscribed topics read through relations: for each collection they point at, which
        (collection, relation) read which of its columns. Worked out again when a topic comes or goes."""
        if self._follows is None:
            self._follows = dependencies_of(topic for by_id in self.topics.values() for topics in by_id.values()
                                            for topic in topics.values())
        return self._follows

    async def deliver(self, batch: list[Change], tell: Callable[[Change], None] | None = None) -> None:
        """Live: `batch` (from the feed, in position order) to every subscription it concerns. What is not a
        record's change (a channel message that waited for its transaction's commit) goes to `tell` in its place,
        so that what a connection hears of it leaves with the rest of its transaction."""
        follows = self.dependencies
        changes = _coalesce([c for c in batch if c.table in self.topics
                             or (c.table in follows and _moves(c, follows[c.table]))])
        messages = [c for c in batch if c.table not in self.models] if tell is not None else []
        if not changes and not messages:
            return
        async with self.turn:
            outcomes, related, unread = await self._outcomes(changes) if changes else ([], {}, [])
            if messages:   # in position order with the changes (the reads above are done: nothing fails after)
                outcomes = sorted([*outcomes, *((c, None) for c in messages)], key=lambda pair: pair[0].position)
            sent = self.delivered
            self.holding = time.perf_counter()
            unread.reverse()   # popped from the end, oldest first
            reset: set[Subscription] = set()
            # live queries whose windows this transaction changed (or that must be read again for a new principal)
            touched: dict[Subscription, None] = dict.fromkeys(sub for sub in self.regrouped if not sub.starting)
            self.regrouped = []
            xact, position = None, 0
            for change, outcome in outcomes:
                if change.xact != xact:   # the last transaction's events go out together, before the next's
                    if touched and xact is not None:
                        await self._settle(touched, position)
                        touched = {}
                    await self._let_go()
                    self.gathering = {}
                xact = change.xact
                if outcome is None:   # a message: after the diffs of the changes before it
                    if touched:
                        await self._settle(touched, position)
                        touched = {}
                    tell(change)
                    continue
                position = change.position
                while unread and unread[-1].change.position <= position:
                    self._tell_unread(unread.pop(), reset)
                by_id = self.topics.get(change.table, {})
                topics = [*by_id.get(None, {}).values(), *by_id.get(str(change.id), {}).values()]
                if not topics:
                    continue
                plain = [topic for topic in topics if topic.query is None]
                if plain:
                    await self._deliver(change, outcome, plain, related)
                if len(plain) < len(topics):
                    self._query(change, outcome, [topic for topic in topics if topic.query is not None],
                                related, touched)
                    await self._pause()   # many live queries are many window checks: others run between
            while unread:
                self._tell_unread(unread.pop(), reset)
            if touched:
                await self._settle(touched, position)
            await self._let_go()
            metrics.EVENTS.inc(self.delivered - sent)

    def out(self, peer: Peer, frame: Event) -> None:
        """An event for `peer`: written now, or, while a transaction is delivered, gathered with its others."""
        gathering = self.gathering
        if gathering is None:
            peer.deliver(frame)
            return
        held = gathering.get(peer)
        if held is None:
            gathering[peer] = frame
        elif type(held) is list:
            held.append(frame)
        else:
            gathering[peer] = [held, frame]

    async def _let_go(self) -> None:
        """Write what a transaction brought each connection: one event as it is (encoded once for all), several as
        one frame. Other tasks run between slices of it."""
        gathering, self.gathering = self.gathering, None
        if not gathering:
            return
        written = 0
        for peer, held in gathering.items():
            peer.deliver(Events(held) if type(held) is list else held)
            written += 1
            if written == PLAN_SLICE:
                written = 0
                await self._pause()

    # ---- live queries ----

    def _query(self, change: Change, outcome: Outcome, topics: list[Topic], related: dict,
               touched: dict[Subscription, None]) -> None:
        """One change to the live queries of `topics`: into their windows, or into the queues of those starting."""
        now = self.clock()
        moment = datetime.fromtimestamp(now, timezone.utc)
        for topic in topics:
            for sub, pending in effects(change, outcome, topic, related, moment, now):
                if sub.starting:
                    sub.hold(change.position, change.place, (change.position, pending))
                else:
                    sub.view.apply(pending)
                    touched[sub] = None

    async def _settle(self, subs: Iterable[Subscription], position: int) -> None:
        """Each live query's diff from what its client holds to its window's items now, as of `position`; a
        window that ran short is read again first (once per group of queries that share it). A read that fails
        tells the query to start over (`realtime.reset`: the client asks again with `have`)."""
        reads: dict[tuple[int, int], Any] = {}
        for sub in list(subs):
            await self._pause()   # a diff per query: other tasks run between slices of them
            if sub.state is State.ENDED:
                continue
            view = sub.view
            try:
                if view.window.short:
                    shared = (id(sub.topic), id(sub.group))
                    if shared not in reads:
                        reads[shared] = await view.read(sub.principal)
                        metrics.LIVE_QUERY_READS.inc()
                    view.window.fill(*reads[shared])
                items = await view.shown(sub.principal, view.window.items())
            except Exception as exc:   # the database (or a before_send hook) failed us: never a silent gap
                log.warning("live query %s could not be kept: %r", sub.id, exc)
                self.out(sub.peer, reset_event([sub.id], sub=sub.id))
                continue
            ops = diff(view.sent, items)
            view.sent = items
            if ops and sub.state is State.LIVE:
                self.out(sub.peer, Event(DIFF_EVENT, Payload({"pos": position, "ops": ops}), sub.id))
                self.delivered += 1
                metrics.LIVE_QUERY_DIFFS.inc()

    async def _start_query(self, sub: Subscription, floor: int, skip: frozenset[int]) -> None:
        """A live query goes live after `floor`: what it queued meanwhile (past its window's read) is applied,
        in turn with deliveries, and sent as one diff; one that queued more than it may is read again."""
        async with self.turn:
            if sub.state is State.ENDED:
                return
            overflowed, queued = sub.release(floor, skip)
            position = floor
            if overflowed:
                sub.view.window.fill([], complete=False)   # short: read again by _settle
            for position, pending in queued:
                if pending is None:   # its dependents were too many to read (_tell_unread): read it all again
                    sub.view.window.fill([], complete=False)
                else:
                    sub.view.apply(pending)
            await self._settle([sub], position)

    def _tell_unread(self, unread: Unread, told: set[Subscription]) -> None:
        """The dependents of a change were too many to read: `realtime.reset` (refetch) to each subscription that
        follows the relation and hears the change, once per batch; a starting one queues it in its place."""
        change = unread.change
        for topics in self.topics.get(unread.collection, {}).values():
            for topic in topics.values():
                if unread.relation not in topic.relations:
                    continue
                for group in list(topic.groups.values()):
                    for sub in list(group.subs):
                        if sub in told or sub.state is State.ENDED:
                            continue
                        told.add(sub)
                        frame = reset_event([sub.id], sub=sub.id)
                        if sub.starting:   # (a live query starting reads its window again: Pending None)
                            sub.hold(change.position, change.place,
                                     frame if sub.view is None else (change.position, None))
                        elif sub.hears(change.position, change.place):
                            self.out(sub.peer, frame)
                            self.delivered += 1

    async def replay(self, sub: Subscription, changes: list[Change], since: int | None = None) -> list[Event] | None:
        """The events `changes` (from the log, in position order) make for `sub` as the record and the subscriber
        are now: what it missed, checked as a live delivery would be now. `changes` may hold changes of the
        collections its topic reads through relations, from position `since` on: the records they moved in or
        out of view are replayed as derived events (its own collection's changes at or before `since` are not).
        None when the records a change moved were too many to read (MAX_DEPENDENTS): it must refetch.

        The changes at `since` are judged apart from the later ones: the client may have got all, part or none
        of the events they caused (they share that position), so it may hold the records as they were before
        them or after; each group's events, from its own before to now, cover both."""
        topic = sub.topic
        groups = [changes] if since is None else [[c for c in changes if c.position <= since],
                                                  [c for c in changes if c.position > since]]
        replayed: list[Event] = []
        for group in groups:
            if not group:
                continue
            outcomes, related, unread = await self._outcomes(_coalesce(group), [topic])
            if any(u.collection == topic.model.name and u.relation in topic.relations for u in unread):
                return None
            for change, outcome in outcomes:
                if sub.state is State.ENDED:
                    return []   # unsubscribed meanwhile
                if change.table != topic.model.name:
                    continue   # a change of a related collection: only the records it moved concern this topic
                if since is not None and change.position <= since and not outcome.derived:
                    continue   # seen before it dropped (read only as the cause of derived events at `since`)
                if topic.record_id in (None, str(change.id)):
                    await self._deliver(change, outcome, [topic], related, only=sub, sink=replayed)
        return replayed

    async def _deliver(self, change: Change, outcome: Outcome, topics: list[Topic], related: dict, *,
                       only: Subscription | None = None, sink: list[Event] | None = None) -> None:
        """One change: plan, enrich, write (to the connections, or, replaying, into `sink`)."""
        if sink is None and not self.view.sends(change.table) and not any(t.expanding for t in topics):
            await self._send(change, outcome, topics, related)   # nothing to enrich: written as planned
            return
        deliveries = await self._plan(change, outcome, topics, related, only)
        if not deliveries:
            return
        sends = await self._enrich(self.models[change.table], deliveries)
        self._write(change, sends, sink)

    async def _send(self, change: Change, outcome: Outcome, topics: list[Topic], related: dict) -> None:
        """A change whose events need no enrichment (no before_send hook, no expand), live: each audience is
        written as soon as it is planned, with no await in between (so what was decided holds when it is written),
        each event encoded once per payload and subscription id. Other tasks run between slices of it."""
        now = self.clock()
        moment = datetime.fromtimestamp(now, timezone.utc)
        payloads: dict = {}
        frames: dict[Payload, dict[str, Event]] = {}   # payload -> subscription id -> its event
        position, place = change.position, change.place
        out = self.out
        sent = 0
        since_look = 0
        for start in range(0, len(topics), PLAN_SLICE):
            for audience in audiences(change, outcome, topics[start:start + PLAN_SLICE], related, moment, now,
                                      payloads=payloads):
                group = audience.group
                by_id = frames.get(audience.payload)
                if by_id is None:
                    by_id = frames[audience.payload] = {}
                for sub in audience.subs:
                    if sub.group is not group:
                        continue   # regrouped (or gone) while this change's delivery let other tasks run
                    frame = by_id.get(sub.id)
                    if frame is None:
                        frame = by_id[sub.id] = Event(CHANGE_EVENT, audience.payload, sub.id)
                    state = sub.state
                    if state is State.LIVE:
                        out(sub.peer, frame)
                        sent += 1
                    elif state is not State.ENDED:
                        sub.hold(position, place, frame)
                since_look += len(audience.subs) + 1
                if since_look >= PLAN_SLICE:   # a big topic: a look at the clock every PLAN_SLICE deliveries
                    since_look = 0
                    await self._pause()
            await self._pause()
        self.delivered += sent

    async def _plan(self, change: Change, outcome: Outcome, topics: list[Topic], related: dict,
                    only: Subscription | None) -> list[Delivery]:
        """plan.plan's deliveries; one change to thousands of distinct subscriptions is a lot of rule checks, so
        other tasks run between slices of it (a subscription that leaves meanwhile is skipped when written)."""
        now = self.clock()
        moment = datetime.fromtimestamp(now, timezone.utc)
        deliveries: list[Delivery] = []
        payloads: dict = {}
        for start in range(0, len(topics), PLAN_SLICE):
            deliveries.extend(plan(change, outcome, topics[start:start + PLAN_SLICE], related, moment, now,
                                   only=only, payloads=payloads))
            await self._pause()
        return deliveries

    async def _pause(self) -> None:
        """Let other tasks run when this delivery has held the loop for DELIVERY_SLICE: a batch of changes (a
        combined write's rows arrive together) to thousands of subscriptions is a lot of rule checks, matched or
        not."""
        if time.perf_counter() - self.holding > DELIVERY_SLICE:
            await asyncio.sleep(0)
            self.holding = time.perf_counter()

    async def _enrich(self, model: Model, deliveries: list[Delivery]) -> list[tuple[Delivery, Payload]]:
        """Each delivery with the payload it sends: through the before_send hook for its principal and with its
        subscription's expansion, where they apply (each computed once per payload and principal)."""
        hooked = self.view.sends(model.name)
        if not hooked and not any(d.sub.expand is not None for d in deliveries):
            return [(d, d.payload) for d in deliveries]
        personal: dict[tuple, Payload | None] = {}   # (payload, user, role) -> as before_send shows it, or None
        expansions: dict[tuple, Payload] = {}         # (payload, plan, user, role) -> with its expand
        sends = []
        for delivery in deliveries:
            sending: Payload | None = delivery.payload
            principal = delivery.principal
            if hooked and delivery.shown and not principal.is_admin:
                sending = await self._personal(model, principal, sending, personal)
            if sending is not None and delivery.sub.expand is not None and delivery.shown \
                    and delivery.action != "delete":
                sending = await self._expand(model, principal, sending, delivery.sub.expand, expansions)
            if sending is not None:
                sends.append((delivery, sending))
        return sends

    def _write(self, change: Change, sends: list[tuple[Delivery, Payload]], sink: list[Event] | None) -> None:
        """Each event built once per subscription id and payload; to its connection, its queue, or `sink`."""
        frames: dict[tuple, Event] = {}
        for delivery, payload in sends:
            if not delivery.current():
                continue   # unsubscribed, moved or signed in as someone else while delivery awaited
            sub = delivery.sub
            frame_key = (sub.id, id(payload))
            frame = frames.get(frame_key)
            if frame is None:
                frame = frames[frame_key] = Event(CHANGE_EVENT, payload, sub.id)
            if sink is not None:
                sink.append(frame)
            elif sub.starting:
                sub.hold(change.position, change.place, frame)
            else:
                self.out(sub.peer, frame)
                self.delivered += 1

    async def _personal(self, model: Model, principal: Principal, payload: Payload,
                        personal: dict[tuple, Payload | None]) -> Payload | None:
        """The payload as the collection's before_send hook shows it to `principal` (one hook call per principal
        and payload of a change), or None when the hook leaves the record out."""
        key = (id(payload), principal.user_id, principal.role)
        if key not in personal:
            value = payload.value
            shown = await self.view.sent(principal, model, [value["record"]])
            personal[key] = Payload({**value, "record": shown[0]}) if shown else None
        return personal[key]

    async def _expand(self, model: Model, principal: Principal, payload: Payload, expand: Any,
                      expansions: dict[tuple, Payload]) -> Payload:
        """The payload with its record's relations embedded as `principal` may see them (records/expand.py: the
        related records are read once per change and reader's rule variables, through the read cache)."""
        key = (id(payload), id(expand), principal.user_id, principal.role)
        if key not in expansions:
            value = payload.value
            [shown] = await self.view.expand(principal, model, expand, [value["record"]])
            expansions[key] = Payload({**value, "record": shown})
        return expansions[key]

    async def _outcomes(self, changes: list[Change], topics: Iterable[Topic] | None = None) -> Outcomes:
        """Each change with the record now and before, the changes of records whose visibility moved with a change
        to a record their rules read through a relation (derived), and the related records the rules reach; for
        the topics subscribed (or `topics`). The module's docstring says what each holds."""
        topics = None if topics is None else list(topics)
        follows = self.dependencies if topics is None else dependencies_of(topics)
        rows = await self._fetch_rows(changes)
        outcomes: list[tuple[Change, Outcome]] = []
        for change in changes:
            model = self.models[change.table]
            key = str(change.id)
            if change.action == "delete":
                # the old row as the trigger sent it; fields missing from a big row make rules fail closed
                old = typed(model, change.old) if change.old else {"id": change.id}
                outcomes.append((change, Outcome(change.action, None, old)))
                continue
            now = rows.get((change.table, key))
            if now is None:
                continue   # deleted since: its delete follows
            before = {**now, **typed(model, change.old)} if change.action == "update" and change.old else None
            outcomes.append((change, Outcome(change.action, now, before)))
        unread: list[Unread] = []
        olds = self._olds(changes, rows, follows) if any(change.table in follows for change in changes) else {}
        if olds:
            # What a subscriber knew of the related records is how they were before this batch: every record's
            # before side reads them so (a comment deleted with its post: who saw it through the post sees it go)
            outcomes = [(change, outcome if outcome.before is None else replace(outcome, before_related=olds))
                        for change, outcome in outcomes]
            derived, unread = await self._derived(changes, olds, follows)
            if derived:
                outcomes = _fold(outcomes, derived)
        if not outcomes:
            return Outcomes([], {}, unread)
        related = await self._fetch_related(outcomes, rows, changes, topics)
        self._regroup(outcomes)
        return Outcomes(outcomes, related, unread)

    def _olds(self, changes: list[Change], rows: dict[tuple[str, str], dict[str, Any]],
              follows: Dependencies) -> dict[tuple[str, str], dict[str, Any]]:
        """(table, id) -> the row as it was before the batch, of the changed records that topics read through a
        relation and whose change may move what points at them (`_moves`)."""
        olds: dict[tuple[str, str], dict[str, Any]] = {}
        for change in changes:
            wanted = follows.get(change.table)
            if not wanted or not _moves(change, wanted):
                continue
            model = self.models[change.table]
            key = (change.table, str(change.id))
            if change.action == "delete":
                olds[key] = typed(model, change.old) if change.old else {"id": change.id}   # (rules fail closed)
            elif key in rows:   # (else deleted since: its delete follows)
                olds[key] = {**rows[key], **typed(model, change.old)}
        return olds

    async def _derived(self, changes: list[Change], olds: dict[tuple[str, str], dict[str, Any]],
                       follows: Dependencies) -> tuple[dict[tuple[str, str], tuple[Change, Outcome]], list[Unread]]:
        """The records of other collections whose visibility the changes may have moved, each as a derived
        outcome keyed (collection, id), and the changes whose dependents were too many to read."""
        causes: dict[tuple[str, str], list[Change]] = {}   # (collection, relation) -> changes of what it points at
        for change in changes:
            if (change.table, str(change.id)) not in olds:
                continue
            for (collection, relation), columns in follows[change.table].items():
                if change.action == "update" and columns.isdisjoint(change.old):
                    continue   # none of what these rules read through it changed
                causes.setdefault((collection, relation), []).append(change)
        derived: dict[tuple[str, str], tuple[Change, Outcome]] = {}
        unread: list[Unread] = []
        for (collection, relation), caused in causes.items():
            found, over = await self._dependents(self.models[collection], relation, [c.id for c in caused])
            for change in caused:
                key = str(change.id)
                if key in over:
                    unread.append(Unread(change, collection, relation))
                    continue
                for row in found.get(key, ()):
                    record_key = (collection, str(row["id"]))
                    was = derived.get(record_key)
                    if was is None:
                        derived[record_key] = (
                            Change(collection, "update", row["id"], row.get("version", 0), change.xact,
                                   position=change.position, place=change.place),
                            Outcome("update", row, row, olds, frozenset((relation,))))
                        continue
                    # two of its relations changed in this batch: one outcome, at the later change
                    first, outcome = was
                    if change.position > first.position:
                        first = msgspec.structs.replace(first, position=change.position, place=change.place,
                                                        xact=change.xact)
                    derived[record_key] = (first, Outcome("update", row, row, olds, outcome.through | {relation}))
        unread.sort(key=lambda u: u.change.position)
        return derived, unread

    async def _dependents(self, model: Model, relation: str, ids: list[Any]) -> tuple[dict[str, list[dict]], set[str]]:
        """The records of `model` whose `relation` points at one of `ids`, by that id (as text), in one query; and
        the ids whose records were too many to read (MAX_DEPENDENTS of them, or past MAX_DEPENDENTS_READ)."""
        target = self.models[model.table.fields[relation].relation]
        params: list[Any] = []
        for value in ids:
            try:
                params.append(id_param(target, value))
            except (ValueError, TypeError):
                continue
        params = list(dict.fromkeys(params))
        if not params:
            return {}, set()
        columns = ", ".join(f'"{n}"' for n in model.visible)
        kind = {"int": "int8", "uuid": "uuid"}.get(model.info.columns[relation].kind, "text")
        found = await self.db.fetch(
            f'SELECT p.n, d.* FROM unnest($1::{kind}[]) WITH ORDINALITY AS p(v, n) '
            f'CROSS JOIN LATERAL (SELECT {columns} FROM "{model.name}" WHERE "{relation}" = p.v LIMIT $2) AS d '
            f'ORDER BY p.n LIMIT $3', params, MAX_DEPENDENTS + 1, MAX_DEPENDENTS_READ + 1)
        cut = len(params) + 1
        if len(found) > MAX_DEPENDENTS_READ:
            cut = found[-1][0]   # that id's records may be cut short, and those after it were not read
        by_id: dict[str, list[dict]] = {}
        for record in found:
            n = record[0]
            if n < cut:
                by_id.setdefault(str(params[n - 1]), []).append(dict(list(record.items())[1:]))
        over = {key for key, records in by_id.items() if len(records) > MAX_DEPENDENTS}
        over |= {str(params[n - 1]) for n in range(cut, len(params) + 1)}
        for key in over:
            by_id.pop(key, None)
        return by_id, over

    async def _fetch_rows(self, changes: list[Change]) -> dict[tuple[str, str], dict[str, Any]]:
        """The current rows of created/updated records: one query per table."""
        wanted: dict[str, list[Any]] = {}
        for change in changes:
            if change.action != "delete":
                wanted.setdefault(change.table, []).append(change.id)
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

    async def _fetch_related(self, outcomes: list[tuple[Change, Outcome]], rows: dict[tuple[str, str], dict],
                             changes: list[Change], topics: list[Topic] | None) -> dict[tuple[str, str], dict]:
        """Records that rules, filters and guards reach through relations (`post.public`), in one query per
        target table; those the batch already read as changed records (`rows`) or deleted are not read again.
        Keyed by (target table, id)."""
        relations: dict[str, set[str]] = {}
        for topic in (topics if topics is not None else (
                topic for by_id in self.topics.values() for group in by_id.values() for topic in group.values())):
            relations.setdefault(topic.model.name, set()).update(topic.relations)
        gone = {(change.table, str(change.id)) for change in changes if change.action == "delete"}
        related: dict[tuple[str, str], dict[str, Any]] = {}
        wanted: dict[str, set[Any]] = {}
        for change, outcome in outcomes:
            names = relations.get(change.table)
            if not names:
                continue
            fields = self.models[change.table].table.fields
            for name in names:
                target = fields[name].relation
                for record in (outcome.now, outcome.before):
                    if record is None or record.get(name) is None:
                        continue
                    key = (target, str(record[name]))
                    if key in rows:
                        related[key] = rows[key]
                    elif key not in gone:
                        wanted.setdefault(target, set()).add(record[name])
        for table, ids in wanted.items():
            for record in await self._fetch(self.models[table], ids):
                related[(table, str(record["id"]))] = record
        return related

    def _regroup(self, outcomes: list[tuple[Change, Outcome]]) -> None:
        """Move subscriptions whose connection signed in as someone else since they subscribed. A live query's
        window was read for its old principal: it is read again for the new one (`regrouped`, settled first)."""
        for collection in {change.table for change, _ in outcomes}:
            for topics in self.topics.get(collection, {}).values():
                for topic in topics.values():
                    for sub in topic.regroup():
                        if sub.view is not None and sub.principal.role != GUEST:
                            sub.view.window.fill([], complete=False)
                            self.regrouped.append(sub)


def dependencies_of(topics: Iterable[Topic]) -> Dependencies:
    """For each collection the topics' rules, filters and guards read through a relation: which (collection,
    relation) read which of its columns."""
    found: Dependencies = {}
    for topic in topics:
        fields = topic.model.table.fields
        for relation, columns in topic.follows.items():
            target = fields[relation].relation
            if target is None:
                continue
            by = found.setdefault(target, {})
            key = (topic.model.name, relation)
            by[key] = by.get(key, frozenset()) | columns
    return found


def _moves(change: Change, wanted: dict[tuple[str, str], frozenset[str]]) -> bool:
    """May `change` move records that point at its record in or out of someone's view? Its delete may; an update
    only where its old values show a column those records' rules read through the relation changed."""
    if change.action == "delete":
        return True
    if change.action != "update" or not change.old:
        return False
    return any(not columns.isdisjoint(change.old) for columns in wanted.values())


def _fold(outcomes: list[tuple[Change, Outcome]],
          derived: dict[tuple[str, str], tuple[Change, Outcome]]) -> list[tuple[Change, Outcome]]:
    """The direct and the derived outcomes in position order (a derived one right after the change that caused
    it). A record that changed itself in the batch keeps its own outcome: a create as it stands; an update judged
    before with the related records' old rows too, at the later position of the two; a delete as it came."""
    derived = dict(derived)
    out: list[tuple[Change, Outcome]] = []
    for change, outcome in outcomes:
        also = derived.pop((change.table, str(change.id)), None)
        if also is not None and change.action == "update":
            cause, moved = also
            outcome = Outcome("update", outcome.now, outcome.before if outcome.before is not None else outcome.now,
                              moved.before_related)
            if cause.position > change.position:
                change = msgspec.structs.replace(change, position=cause.position, place=cause.place)
        out.append((change, outcome))
    out.extend(derived.values())
    out.sort(key=lambda pair: pair[0].position)   # stable: a change's own outcome before those it caused
    return out


def _coalesce(changes: list[Change]) -> list[Change]:
    """Several changes of one record become one, in the place (and with the position) of its last: its first action
    (a create stays a create), its oldest known old values, and the record as it now stands. Deletes are kept as
    they come. So positions still rise from one event to the next."""
    places: dict[tuple[str, str], int] = {}
    out: list[Change | None] = []
    for change in changes:
        if change.action != "delete":
            key = (change.table, str(change.id))
            place = places.get(key)
            if place is not None:
                first = out[place]
                out[place] = None
                change = msgspec.structs.replace(change, action=first.action,
                                                 old={**(change.old or {}), **(first.old or {})} or None)
            places[key] = len(out)
        out.append(change)
    return [change for change in out if change is not None]


def reset_event(subs: list[str], channels: list[str] = (), sub: str | None = None) -> Event:
    """`realtime.reset`: these subscriptions may have missed changes (refetch), these channels' notices."""
    return event(RESET_EVENT, {"subs": sorted(subs), "channels": sorted(channels)}, sub)
