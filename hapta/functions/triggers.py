"""What sets a function running, as the functions service sees it: one Trigger per kind of declaration.

Each decorator of hapta.functions adds a trigger to a function's declaration, as (kind, spec, option): @call
("call"), @every (schedule.py), @on (changes.py), @http (webhooks.py), and calls.py serves @call. The service
(service.Functions) holds one Trigger of each kind and handles them all alike:

    at start, and at each --reload   every declared trigger is checked by its kind's `check` (ConfigError: the start
                                     stops; a reload keeps the running version), then each Trigger is handed the
                                     functions as declared now (`use`)
    once the gateway serves          `start` (a loop, consumers), and before a reload and at shutdown `close`
    functions.list                   each declared trigger as its kind `describe`s it

A trigger runs a function through what the service offers it (Runs): a run on the workers, recorded in
functions.runs or not. A new kind of trigger is one module with a class like these, and one line in
Functions.__init__ that builds it.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Awaitable, Mapping, Protocol

from ..principal import Peer
from ..protocol.errors import HaptaError
from ..workers.messages import Outcome, Who


@dataclass(frozen=True)
class Function:
    """A function as the gateway checked its declaration (what its worker reported: functions.child.FunctionInfo)."""
    name: str
    allow: Any              # access.compile_allow's: a Node, EVERYONE or None (admins only)
    allow_text: str | None
    timeout: float
    secrets: tuple[str, ...]
    file: str
    admin: bool             # its ctx.records run as admin, not as the caller
    triggers: tuple[tuple[str, str, str], ...]   # (kind, spec, option), as hapta.functions declares them

    def declares(self, kind: str) -> list[tuple[str, str]]:
        """The (spec, option) of each trigger of `kind` it declares, in the order declared."""
        return [(spec, option) for declared, spec, option in self.triggers if declared == kind]


class Trigger(Protocol):
    kind: str   # the first part of the triggers it serves: "call", "every", "on", "http"

    def check(self, function: Function, spec: str, option: str) -> None:
        """ConfigError, naming the function's file, when `function` may not declare (kind, spec, option) here."""

    def describe(self, spec: str, option: str) -> str:
        """How functions.list shows one such trigger ("every */5 * * * *")."""

    def use(self, functions: Mapping[str, Function]) -> None:
        """The functions as declared now (every one of them; at start, and after each --reload)."""

    def start(self) -> None:
        """The gateway serves: begin what runs by itself (a schedule's loop, change consumers)."""

    async def close(self) -> None:
        """Before a reload and at shutdown: end what start began (runs under way of a loop end with it)."""


class Runs(Protocol):
    """What a trigger uses of the functions service to run a function (service.Functions)."""

    async def invoke(self, function: Function, who: Who, acting: Peer, argument: Any) -> Outcome:
        """One run on the function workers for `who`, its ctx.records and ctx.publish acting as `acting`: the
        outcome, or HaptaError from the pool (TIMEOUT, UNAVAILABLE, RATE_LIMITED). Not recorded."""

    async def recorded(self, function: Function, acting: Peer, trigger: str, argument: Any,
                       run: int | None = None) -> tuple[Outcome | None, HaptaError | None]:
        """A run with no socket caller, as `acting`, recorded in functions.runs (as `run`, when its row is written
        already): its outcome, or the pool's error."""

    async def background(self, function: Function, trigger: str, argument: Any) -> str:
        """A recorded run as admin (a tick, a change): ok | denied | failed | timeout | unavailable."""

    def later(self, work: Awaitable[Any]) -> asyncio.Task:
        """Work that no reply waits for, finished (for a moment) before the gateway stops."""
