"""What of a channel member's users record each other member is shown: its presence profile. Pure.

A channel pattern may name fields of the `users` record that its members carry (`Channel(rule, presence=("username",
"avatar"))`). Each reader sees a member's profile as `records.get` of that users record would show it to them: not at
all (`None`) where the users collection's view rule does not let them view it, and each field it names as its guard
lets them read it (`None` where not: a guarded email reaches its owner alone). Admins see it whole.

    Profiles(model, fields)   checked once at start (ConfigError): fields of the users collection that a reader may
                              receive, judged by rules that read no relation; `columns` is what to load of the record
    profiles.shown(record, principal)   the profile this reader sees
    profiles.key(principal)   readers with the same key see the same profiles (a presence event is shaped once per key)
"""
from __future__ import annotations

from typing import Any, Mapping

from ..config import ConfigError
from ..models import AUTH_COLLECTION, Model
from ..principal import Principal
from ..query import evaluate, fields_used, relations_used
from ..query.ast import Node
from .rules import reads, variable_key


class Profiles:
    """The presence profiles of one channel pattern: `fields` of the users record, judged per reader."""

    def __init__(self, model: Model | None, fields: tuple[str, ...], where: str):
        if model is None:
            raise ConfigError(f"{where}.presence names fields of {AUTH_COLLECTION}, which App.collections does not "
                              f"declare")
        for name in fields:
            if name not in model.table.fields:
                raise ConfigError(f"{where}.presence names {name!r}, which is not a visible field of "
                                  f"{AUTH_COLLECTION} (its fields: {', '.join(model.table.fields)})")
        self.model = model
        self.fields = fields
        rule = model.rules["view"]
        self.rule: Node | None = rule if isinstance(rule, Node) else None
        self.nobody = rule is None   # admin-only: no one else sees anyone's profile
        self.guards: dict[str, Node] = {name: guard for name in fields
                                        if (guard := model.table.fields[name].guard) is not None}
        nodes = tuple(node for node in (self.rule, *self.guards.values()) if node is not None)
        # Judged in the gateway for each reader, from the record alone: a rule that reads a related record could not be.
        for node in nodes:
            if relations_used(node):
                raise ConfigError(f"{where}.presence: {AUTH_COLLECTION}'s view rule or a guard of a field it names "
                                  f"reads through a relation, which presence cannot judge per reader")
        self.names = reads(nodes)[0]
        read = {path[0] for node in nodes for path in fields_used(node)}
        self.columns: tuple[str, ...] = tuple(dict.fromkeys(("id", *fields, *sorted(read))))

    def key(self, principal: Principal) -> tuple | None:
        """Readers with the same key are shown the same profiles; None: judge this reader alone (a rule reads @now)."""
        if "now" in self.names:
            return None
        return variable_key(self.names, principal)

    def shown(self, record: Mapping[str, Any] | None, principal: Principal) -> dict[str, Any] | None:
        """The profile `principal` sees of a member whose users record is `record` (None: the member has none, an
        anon or admin connection, or it is gone)."""
        if record is None:
            return None
        admin = principal.is_admin
        values = principal.rule_vars()
        if not admin and (self.nobody or (self.rule is not None and not _holds(self.rule, record, values))):
            return None
        shown = {}
        for name in self.fields:
            guard = self.guards.get(name)
            allowed = admin or guard is None or _holds(guard, record, values)
            shown[name] = record.get(name) if allowed else None
        return self.model.public(shown)


def _holds(node: Node, record: Mapping[str, Any], values: Mapping[str, Any]) -> bool:
    try:
        return evaluate(node, record, values)
    except KeyError:   # a field it reads was not loaded: not shown
        return False

