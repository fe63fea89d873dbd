"""The rules' Python form, for what is decided per change rather than per query: realtime delivery. Pure.

For one change and one topic (subscriptions sharing a collection or record, filter and fields), Checks answers
whether a group of subscribers (principals the rules cannot tell apart: access.rules.variable_key) sees the record
now, saw it before, and so what they hear: the change, a `delete` carrying only the id (the record left their
view), or nothing. It first asks whether the answer is the same for anyone (a public post), and only where it
depends on the asker evaluates per group. The same bound rule that becomes SQL for records.* is evaluated here
(hapta.query.evaluate agrees with the SQL, three-valued logic included).

A *derived* outcome (Outcome.through) is a record that did not change while a record its rules read through a
relation did (a comment whose post turned private): it is judged before with the related record's old row
(Outcome.before_related) and now with its new one, and a group hears it only if that moved it in or out of view:
a `create` with the record where it came into view, a `delete` with its id alone where it left.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Protocol

from ..models import EVERYONE, Model, Rule
from ..query import evaluate, evaluate_for_anyone, fields_used
from ..query.ast import Node


class Viewer(Protocol):
    """A group of subscribers as the checks see it: the variables its rules read, and whether it is admins."""
    vars: dict[str, Any]
    admin: bool


@dataclass
class Outcome:
    """What one change looks like: the record now (None if gone) and before (None if not known or not needed).

    The rules read related records (`post.public`) from the rows delivery fetched, as they stand now, on both
    sides; `before_related`, keyed like them ((table, id) -> row, or None where it did not exist), says which
    related records the before side reads as they were instead: the old rows of related records that changed in
    the same delivery. `through` names the relation fields whose related record changed when the record itself
    did not (a derived outcome: now and before are the same row)."""
    action: str                          # the change's: "create", "update" or "delete"
    now: dict[str, Any] | None
    before: dict[str, Any] | None
    before_related: dict[tuple[str, str], dict[str, Any] | None] | None = None
    through: frozenset[str] = frozenset()

    @property
    def derived(self) -> bool:
        """Only its visibility may have changed, through a related record: heard as a create or a delete, or not."""
        return bool(self.through)


def related_columns(nodes: Iterable[Node]) -> dict[str, frozenset[str]]:
    """Relation field -> the related record's columns that `nodes` read through it (`post.public` -> post:
    {public}), guards and view rules of the related collection included."""
    found: dict[str, set[str]] = {}
    for node in nodes:
        if node is None or node is EVERYONE:
            continue
        for path in fields_used(node):
            if len(path) == 2:
                found.setdefault(path[0], set()).add(path[1])
    return {name: frozenset(columns) for name, columns in found.items()}


def topic_nodes(model: Model, filter_node: Node | None, fields: tuple[str, ...], rule_op: str = "view") -> list[Node]:
    """What a topic's delivery reads: its rule (a subscription's view rule, a live query's list rule), the filter,
    and the guards of the fields it sends (or sorts by)."""
    rule = model.rules[rule_op]
    nodes = [n for n in (rule, filter_node) if n is not None and n is not EVERYONE]
    nodes += [model.table.fields[f].guard for f in fields if model.table.fields[f].guard is not None]
    return nodes


class Checks:
    """Rule and filter answers for one change in one topic: computed for anyone once, per group only if needed."""

    def __init__(self, rule: Rule, filter_node: Node | None, outcome: Outcome, now_related: dict,
                 before_related: dict):
        self.rule = rule
        self.filter = filter_node
        self.outcome = outcome
        self.now_related = now_related
        self.before_related = before_related
        self.shared: dict[tuple[bool, bool], bool | None] = {}
        self.left = {"id": outcome.now["id"]} if outcome.now is not None else None

    def decide(self, group: Viewer, moment: datetime) -> tuple[str | None, dict[str, Any] | None]:
        outcome = self.outcome
        action = outcome.action
        if outcome.derived:
            shown, was_shown = self.shows(group, moment, now=True), self.shows(group, moment, now=False)
            return self._moved(shown, was_shown)
        if outcome.now is not None:
            if self.shows(group, moment, now=True):
                return action, outcome.now
            if outcome.before is not None and self.shows(group, moment, now=False):
                return "delete", self.left   # it left this subscriber's view: only its id
            return None, None
        if outcome.before is not None and self.shows(group, moment, now=False):
            return "delete", outcome.before
        return None, None

    def decide_for_anyone(self) -> tuple[str | None, dict[str, Any] | None] | None:
        """decide() for every non-admin group at once, or None when the answer depends on who asks."""
        outcome = self.outcome
        if outcome.derived:
            shown = self._shows_for_anyone(now=True)
            was_shown = self._shows_for_anyone(now=False) if shown is not None else None
            if shown is None or was_shown is None:
                return None
            return self._moved(shown, was_shown)
        if outcome.now is not None:
            shown = self._shows_for_anyone(now=True)
            if shown is None:
                return None
            if shown:
                return outcome.action, outcome.now
            if outcome.before is None:
                return None, None
            was_shown = self._shows_for_anyone(now=False)
            if was_shown is None:
                return None
            return ("delete", self.left) if was_shown else (None, None)
        if outcome.before is None:
            return None, None
        was_shown = self._shows_for_anyone(now=False)
        if was_shown is None:
            return None
        return ("delete", outcome.before) if was_shown else (None, None)

    def _moved(self, shown: bool, was_shown: bool) -> tuple[str | None, dict[str, Any] | None]:
        """A derived outcome: news only where it came into view (the whole record) or left it (its id)."""
        if shown == was_shown:
            return None, None
        return ("create", self.outcome.now) if shown else ("delete", self.left)

    def _shows_for_anyone(self, now: bool) -> bool | None:
        if self.rule is None:
            return False
        answers = []
        for node, is_filter in ((None if self.rule is EVERYONE else self.rule, False), (self.filter, True)):
            if node is None:
                continue
            key = (now, is_filter)
            try:
                if key not in self.shared:
                    record = self.outcome.now if now else self.outcome.before
                    self.shared[key] = evaluate_for_anyone(node, record, self.now_related if now
                                                           else self.before_related)
            except KeyError:
                return None   # a field is missing: let each group decide (and fail closed)
            answers.append(self.shared[key])
        if False in answers:
            return False
        return None if None in answers else True

    def shows(self, group: Viewer, moment: datetime, now: bool) -> bool:
        """Would this group see the record (now, or before the change) through rule and filter?"""
        if group.admin:
            return self._truth(self.filter, group, moment, now, is_filter=True)
        if self.rule is None:
            return False
        return ((self.rule is EVERYONE or self._truth(self.rule, group, moment, now, is_filter=False))
                and self._truth(self.filter, group, moment, now, is_filter=True))

    def _truth(self, node: Node | None, group: Viewer, moment: datetime, now: bool, is_filter: bool) -> bool:
        if node is None:
            return True
        record = self.outcome.now if now else self.outcome.before
        related = self.now_related if now else self.before_related
        key = (now, is_filter)
        try:
            if key not in self.shared:
                self.shared[key] = evaluate_for_anyone(node, record, related)
            shared = self.shared[key]
            if shared is not None:
                return shared
            return evaluate(node, record, {**group.vars, "now": moment}, related)
        except KeyError:
            # A field the check needs is missing (a deleted row too big for its notification). A filter that
            # cannot be checked lets the event through (the rule still decides); a rule fails closed.
            return is_filter


def guard_outcomes(model: Model, guarded: tuple[str, ...], record: dict[str, Any] | None, group: Viewer,
                    moment: datetime, related: dict) -> tuple:
    """For each guarded field: may this group read it? (Admins may.)"""
    if record is None or not guarded:
        return ()
    outcomes = []
    for name in guarded:
        guard = model.table.fields[name].guard
        if name not in record:
            continue
        try:
            allowed = group.admin or evaluate(guard, record, {**group.vars, "now": moment}, related)
        except KeyError:
            allowed = False
        outcomes.append((name, allowed))
    return tuple(outcomes)


def project(record: dict[str, Any], fields: tuple[str, ...], guards: tuple) -> dict[str, Any]:
    hidden = {name for name, allowed in guards if not allowed}
    return {name: (None if name in hidden else record[name]) for name in fields if name in record}
