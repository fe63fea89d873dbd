"""Who may call a function: the `allow` rule its @call declares. Pure.

The rule is a filter expression over `@user` alone (a function has no record to read): `"@user.id != null"`,
`'@user.role = "user"'`. None means admins only; "" means anyone past the guest stage (an anon key included).
Admins pass every rule, as they do the collections'.
"""
from __future__ import annotations

from typing import Any

from ..config import ConfigError
from ..models import EVERYONE
from ..principal import Principal
from ..query import FilterError, bind, evaluate, parse
from ..query import schema as kinds

RULE_TABLE = kinds.Table("function", {})
RULE_SCHEMA = kinds.Schema({"function": RULE_TABLE})


def compile_allow(name: str, text: str | None) -> Any:
    """A function's rule as the gateway keeps it: a bound Node, EVERYONE, or None (admins only)."""
    if text is None:
        return None
    if not text.strip():
        return EVERYONE
    try:
        return bind(parse(text), RULE_TABLE, RULE_SCHEMA)
    except FilterError as exc:
        raise ConfigError(f"function {name}: allow: {exc}") from None


def may_call(rule: Any, principal: Principal) -> bool:
    if principal.is_admin:
        return True
    if rule is None:
        return False
    return rule is EVERYONE or evaluate(rule, {}, principal.rule_vars())
