"""Which condition a principal's op must meet, and what of the principal a condition reads. Pure.

    rule_for(model, op, principal)   the collection's rule for `op` (EVERYONE for admins); FORBIDDEN if admin-only
    check_caller(principal, ...)     may this principal call an op at all (guests, expired tokens)
    reads(nodes)                     the variables and relations a set of rules, guards and filters reads
    variable_key(names, principal)   what those variables hold for this principal: two principals with the same key
                                     are told apart by no rule, so they may share a cached answer or a realtime group
"""
from __future__ import annotations

from typing import Any

from cachetools import LRUCache

from ..models import EVERYONE, Model, Rule
from ..principal import ADMIN, GUEST, Principal
from ..protocol.errors import FORBIDDEN, TOKEN_EXPIRED, UNAUTHENTICATED, HaptaError
from ..query import relations_used, vars_used
from ..query.ast import Node

ADMIN_KEY = (ADMIN,)


def check_caller(principal: Principal, op: str, guest_ok: bool, admin_only: bool = False,
                 now: float | None = None) -> None:
    """Guests may call only what a guest may (auth.*, ping); an expired access token (by `now`, epoch seconds)
    only that too, until the connection refreshes or resumes; an op for admins only, admins."""
    if guest_ok:
        return
    if principal.expired(now):
        raise HaptaError(TOKEN_EXPIRED, "the access token has expired; refresh or resume")
    if principal.role == GUEST:
        raise HaptaError(UNAUTHENTICATED, f"{op} needs auth.login, auth.resume or auth.anon first")
    if admin_only and not principal.is_admin:
        raise HaptaError(FORBIDDEN, f"{op} is for admins only")


def rule_for(model: Model, op: str, principal: Principal, *, changed: list[str] | None = None) -> Rule:
    """The condition this principal's `op` ("list", "view", "create", "update", "delete") must meet; EVERYONE when
    none. Admins bypass rules. `changed`: for "update", the fields it writes, and the rule is then what the record
    must satisfy once updated (Model.update_rule: the create rule too when the update moves the record)."""
    if principal.is_admin:
        return EVERYONE
    rule = model.rules[op]
    if rule is None:
        raise HaptaError(FORBIDDEN, f"{op} on {model.name} is for admins only")
    return model.update_rule(changed) if changed is not None else rule


def reads(nodes: tuple[Node, ...]) -> tuple[frozenset[str], frozenset[str]]:
    """(variables, relations) the nodes read, through the guards and view conditions they touch; remembered per
    set of nodes (the app's rules and guards: few, and they live as long as the gateway)."""
    found = _read.get(nodes)
    if found is None:
        names: set[str] = set()
        relations: set[str] = set()
        for node in nodes:
            names |= vars_used(node)
            relations |= relations_used(node)
        found = _read[nodes] = (frozenset(names), frozenset(relations))
    return found


_read: LRUCache = LRUCache(4096)


def variable_key(names: frozenset[str] | set[str], principal: Principal) -> tuple[Any, ...]:
    """What the variables `names` hold for `principal`: the part of a cache key or a realtime group that tells
    principals apart exactly as far as the rules do. Admins, whom no rule restricts, are one key of their own."""
    if principal.role == ADMIN:
        return ADMIN_KEY
    values = principal.rule_vars()
    return tuple((name, values.get(name)) for name in sorted(names) if name != "now")
