"""Who may join a channel: the rules of `App.channels`. Pure.

`App(channels={"room:*": "@user.id != null"})`: the first pattern that matches the channel's name applies (`*`
matches one `:`-separated part; none matching: only admins). The rule is a filter expression over the channel,
with the fields `name` and `part1`..`part3` (what the `*`s matched), so `"user:*": "part1 = @user.id"` makes a
private channel per user. `App(channels={"room:*": Channel("@user.id != null", presence=("username",))})` also
names the fields of the users record each member of a matching channel carries (access/presence.py shapes them).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..config import Channel, ConfigError
from ..models import EVERYONE
from ..principal import ADMIN, Principal
from ..query import FilterError, bind, evaluate, parse
from ..query import schema as kinds

NAME = re.compile(r"[A-Za-z0-9_.@:-]{1,128}")
MAX_PARTS = 3

RULE_TABLE = kinds.Table("channel", {
    name: kinds.Field(name, kinds.TEXT) for name in ("name", *(f"part{i}" for i in range(1, MAX_PARTS + 1)))})
RULE_SCHEMA = kinds.Schema({"channel": RULE_TABLE})


@dataclass(frozen=True)
class ChannelRule:
    pattern: re.Pattern
    rule: Any           # Node, EVERYONE, or None (admins only)
    presence: tuple[str, ...] = ()   # fields of the users record its members carry


def compile_rules(rules: dict[str, str | None | Channel]) -> list[ChannelRule]:
    compiled = []
    for pattern, given in rules.items():
        text, presence = (given.rule, tuple(given.presence)) if isinstance(given, Channel) else (given, ())
        parts = pattern.split(":")
        if sum(p == "*" for p in parts) > MAX_PARTS or not all(p == "*" or NAME.fullmatch(p) for p in parts):
            raise ConfigError(f"channels: pattern {pattern!r} must be `:`-separated names or `*` (at most "
                              f"{MAX_PARTS} of them)")
        regex = re.compile(":".join("([^:]+)" if p == "*" else re.escape(p) for p in parts))
        if text is None:
            rule: Any = None
        elif not text.strip():
            rule = EVERYONE
        else:
            try:
                rule = bind(parse(text), RULE_TABLE, RULE_SCHEMA)
            except FilterError as exc:
                raise ConfigError(f"channels[{pattern!r}]: {exc}") from None
        compiled.append(ChannelRule(regex, rule, presence))
    return compiled


def presence_of(rules: list[ChannelRule], channel: str) -> tuple[str, ...]:
    """The fields of the users record that members of `channel` carry: its first matching pattern's (none where no
    pattern matches: a channel only admins may join)."""
    for entry in rules:
        if entry.pattern.fullmatch(channel):
            return entry.presence
    return ()


def may_join(rules: list[ChannelRule], channel: str, principal: Principal) -> bool:
    for entry in rules:
        found = entry.pattern.fullmatch(channel)
        if found is None:
            continue
        if principal.role == ADMIN:
            return True
        if entry.rule is None:
            return False
        if entry.rule is EVERYONE:
            return True
        record = {"name": channel, **{f"part{i}": None for i in range(1, MAX_PARTS + 1)}}
        record.update({f"part{i}": value for i, value in enumerate(found.groups(), 1)})
        return evaluate(entry.rule, record, principal.rule_vars())
    return principal.role == ADMIN
