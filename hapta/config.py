"""The types an app's config.py fills in: its collections, their rules, and the gateway's bounds.

A rule is a filter expression over the record and `@user` (see docs/protocol.md):
    None -> admin only,  "" -> everyone past the guest stage (anon key or signed-in),  "expr" -> where expr holds.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

ADMIN_ONLY = None
EVERYONE = ""

# Columns every collection has, managed by the gateway: clients read them, never write them.
SYSTEM_FIELDS = ("id", "created", "updated", "version")


@dataclass(frozen=True)
class Collection:
    name: str
    list: str | None = ADMIN_ONLY
    view: str | None = ADMIN_ONLY
    create: str | None = ADMIN_ONLY
    update: str | None = ADMIN_ONLY
    delete: str | None = ADMIN_ONLY
    hidden: tuple[str, ...] = ()                       # never leave the gateway, cannot be filtered on
    guarded: dict[str, str] = field(default_factory=dict)  # field -> rule under which a reader sees it
    readonly: tuple[str, ...] = ()                     # clients may not write these (beyond SYSTEM_FIELDS)

    def rule(self, op: str) -> str | None:
        return getattr(self, op)


@dataclass(frozen=True)
class Limit:
    """`rate` events per `per` seconds, with up to `burst` at once."""
    rate: int
    per: float = 1.0
    burst: int | None = None


@dataclass(frozen=True)
class App:
    collections: tuple[Collection, ...] | list[Collection]
    limits: dict[str, Limit] = field(default_factory=dict)
    origins: tuple[str, ...] | None = None     # allowed Origin headers; None allows any (native apps send none)
    max_message: int = 64 * 1024                # bytes in one frame
    max_in_flight: int = 64                     # requests a connection may have unanswered at once
    access_token_ttl: int = 15 * 60             # seconds
    session_ttl: int = 30 * 24 * 3600           # absolute lifetime of a session, seconds
    min_password_length: int = 8

    def collection(self, name: str) -> Collection | None:
        return self.by_name.get(name)

    @property
    def by_name(self) -> dict[str, Collection]:
        cached = self.__dict__.get("_by_name")
        if cached is None:
            cached = {c.name: c for c in self.collections}
            object.__setattr__(self, "_by_name", cached)
        return cached


def load_app(path: Path) -> App:
    """Import the app's config.py and return its `app`."""
    spec = importlib.util.spec_from_file_location("hapta_app_config", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    app = getattr(module, "app", None)
    if not isinstance(app, App):
        raise TypeError(f"{path} must define `app = hapta.config.App(...)`")
    return app
