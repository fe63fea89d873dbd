"""The delivery plan: for one change, who hears what. Pure: no I/O, no awaits, nothing written.

    plan(change, outcome, topics, related, moment, wall, personal) -> Delivery, Delivery, ...

For each topic the change concerns, the rule and the filter are first asked "is the answer the same for anyone?"
(a public post is visible to all): then it is decided once for the topic; only where it depends on the asker is it
decided once per group (access/live.py Checks). Each distinct payload (action, fields, guard outcomes) is built
once and shared by every delivery that sends it, so that it is encoded once (events.py). A delivery names the
subscription, the group and the principal it was decided for: what runs after the plan (before_send hooks and
expansions, which await) checks that the subscription is still where it was (`Delivery.current`) before writing.

Rules are checked against the record as it stands when delivered, with the principal as it is then: an expired
token or a signed-out connection hears nothing; a record that stops being viewable reaches those who could see it
as a `delete` carrying only its id; one that becomes viewable reaches them as its change.

A derived outcome (a comment whose post turned private: Outcome.through) is planned like any other, for the topics
that follow one of its changed relations: its before side reads the related records' old rows
(Outcome.before_related), and a group hears a `create` where it came into view, a `delete` of its id where it left,
and nothing where neither.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Iterator

from ..access.live import Checks, Outcome, guard_outcomes, project
from ..models import Model
from ..principal import GUEST, Principal
from .events import Payload
from .feed import Change
from .topics import Group, State, Subscription, Topic


@dataclass(frozen=True, slots=True)
class Delivery:
    sub: Subscription
    group: Group
    principal: Principal      # the connection's principal it was decided for
    payload: Payload          # {action, collection, record, pos} as the rules show it to this group
    shown: bool               # the record itself (not only the id of one that left the subscriber's view)
    action: str

    def current(self) -> bool:
        """Is the subscription still in the group it was decided for, with the same principal (delivery may have
        awaited a hook meanwhile)?"""
        sub = self.sub
        return sub.group is self.group and sub.peer.principal is self.principal and sub.state is not State.ENDED


@dataclass(slots=True)
class Audience:
    """The subscriptions of one group that hear one payload of a change: the plan's unit. Delivery writes an audience
    as soon as it is planned (no await in between), so what was decided still holds when it is written."""
    group: Group
    payload: Payload
    shown: bool
    action: str
    subs: list[Subscription]   # signed in as the principal they were grouped for, unexpired, and it is news to them


def plan(change: Change, outcome: Outcome, topics: Iterable[Topic], related: dict[tuple[str, str], dict],
         moment: datetime, wall: float, *, only: Subscription | None = None,
         payloads: dict[tuple, Payload] | None = None) -> Iterator[Delivery]:
    """The deliveries of one change to the subscriptions of `topics` (or, replaying, to `only`), in order: each
    audience (`audiences`) one subscription at a time."""
    for audience in audiences(change, outcome, topics, related, moment, wall, only=only, payloads=payloads):
        for sub in audience.subs:
            yield Delivery(sub, audience.group, sub.principal, audience.payload, audience.shown, audience.action)


def audiences(change: Change, outcome: Outcome, topics: Iterable[Topic], related: dict[tuple[str, str], dict],
              moment: datetime, wall: float, *, only: Subscription | None = None,
              payloads: dict[tuple, Payload] | None = None) -> Iterator[Audience]:
    """Who hears what of one change: per group of `topics` (or, replaying, `only`'s), the payload it is sent and
    its subscriptions that hear it, in order.

    `related`: the rows the rules reach through relations, keyed (table, id); `moment`: the rules' @now; `wall`:
    epoch seconds, against which access tokens expire. A live subscription hears only changes after where it
    started (`Subscription.hears`); a replay (`only`) is given exactly what it missed. `payloads`: the payloads
    made so far for this change, when its topics are planned a slice at a time.

    The caller may let other tasks run between two audiences: each topic's groups and their members are taken as
    they are when the topic is reached, so a subscription regrouped meanwhile is in one audience at most (and the
    caller skips it when its group is no longer the audience's)."""
    if payloads is None:   # shared by every topic of the change that sends the same fields (across calls: given)
        payloads = {}
    position, place = change.position, change.place
    for topic in topics:
        model = topic.model
        if outcome.through and outcome.through.isdisjoint(topic.relations):
            continue   # derived through a relation this topic does not read: nothing moved for it
        now_related = _related(model, topic.relations, outcome.now, related)
        before_related = _related(model, topic.relations, outcome.before, related, outcome.before_related)
        checks = Checks(model.rules["view"], topic.filter, outcome, now_related, before_related)
        # Usually the rule and filter answer the same for anyone (a public post): decide once for the topic.
        shared = checks.decide_for_anyone() if not topic.guarded else None
        if only is not None:
            members = [(only.group, [only])] if only.group is not None else []
        else:
            members = [(group, list(group.subs)) for group in topic.groups.values()]
        for group, subs in members:
            action, record = shared if shared is not None and not group.admin else checks.decide(group, moment)
            if action is None:
                continue
            left = record is checks.left   # only its id: the subscriber may no longer see the rest
            if left:
                guards: tuple = ()
                key: tuple = ("left",)
            else:
                guards = guard_outcomes(model, topic.guarded, record, group, moment,
                                        now_related if outcome.now is not None else before_related) \
                    if topic.guarded else ()
                key = (action, topic.fields, guards)
            payload = payloads.get(key)
            if payload is None:
                shown = record if left else model.public(project(record, topic.fields, guards))
                payload = payloads[key] = Payload({"action": action, "collection": model.name, "record": shown,
                                                   "pos": position})
            hearing = []
            for sub in subs:
                principal = sub.peer.principal
                if principal is not sub.principal:
                    continue   # signed in as someone else since it was grouped: regrouped before the next change
                if principal.role == GUEST or (principal.expires_at is not None and wall >= principal.expires_at):
                    continue   # signed out or expired since it subscribed: it hears nothing
                if only is None and not (position > sub.floor and place not in sub.skip):
                    continue   # from before it started, or already in its snapshot (Subscription.hears)
                hearing.append(sub)
            if hearing:
                yield Audience(group, payload, not left, action, hearing)


def _related(model: Model, relations: frozenset[str], record: dict[str, Any] | None,
             rows: dict[tuple[str, str], dict[str, Any]],
             instead: dict[tuple[str, str], dict[str, Any] | None] | None = None) -> dict[str, dict[str, Any] | None]:
    """The related rows a record's relations point at, by relation field (None where the row is not there); from
    `instead` where it has the row (the before side of an outcome whose related record changed)."""
    if record is None or not relations:
        return {}
    out = {}
    for name in relations:
        value = record.get(name)
        if value is None:
            out[name] = None
            continue
        key = (model.table.fields[name].relation, str(value))
        out[name] = instead[key] if instead is not None and key in instead else rows.get(key)
    return out
