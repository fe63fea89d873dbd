"""@call: functions a client calls over its socket (functions.call), as the caller or, with admin=True, as admin.

A call is: the function declares @call (else NOT_FOUND), the caller passes its `allow` rule (FORBIDDEN), a worker
runs it within its timeout under the caller's share of the workers; its own failures reach the client as
RULE_DENIED (it raised Deny) or INTERNAL (anything else: the traceback is logged for the operator, never sent). A
call that fails or logs is recorded in functions.runs after its reply; one that succeeds silently costs no write.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, Mapping

from ..access import may_call
from ..principal import ADMIN, Peer, Principal, SocketPeer
from ..protocol.errors import FORBIDDEN, INTERNAL, NOT_FOUND, RULE_DENIED, HaptaError
from ..workers.messages import Denied, Raised, Who
from .journal import Journal
from .triggers import Function, Runs

log = logging.getLogger("hapta.functions")


class Calls:
    kind = "call"

    def __init__(self, runs: Runs, journal: Journal):
        self.runs = runs
        self.journal = journal
        self.functions: dict[str, Function] = {}   # the ones a client may call by name

    def check(self, function: Function, spec: str, option: str) -> None:
        pass   # @call(allow=...) is compiled with the function (service.Functions)

    def describe(self, spec: str, option: str) -> str:
        return "call"

    def use(self, functions: Mapping[str, Function]) -> None:
        self.functions = {name: f for name, f in functions.items() if f.declares("call")}

    def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def call(self, peer: Peer, name: str, args: Any) -> Any:
        """functions.call: the function's return value, or the error the client gets."""
        function = self.functions.get(name)
        if function is None:
            raise HaptaError(NOT_FOUND, f"no function {name[:64]!r}")
        principal = peer.principal
        if not may_call(function.allow, principal):
            raise HaptaError(FORBIDDEN, f"you may not call {name}")
        who = Who(principal.user_id, principal.role, "functions.call", "", peer.address)
        acting = SocketPeer(Principal(ADMIN), peer.address) if function.admin else peer
        started = datetime.now(timezone.utc)
        try:
            outcome = await self.runs.invoke(function, who, acting, args)
        except HaptaError as error:
            self.runs.later(self.journal.call(name, started, error.code.lower(), error.message, []))
            raise
        if isinstance(outcome, Denied):
            self.runs.later(self.journal.call(name, started, "denied", outcome.message[:500], outcome.logs))
            raise HaptaError(RULE_DENIED, outcome.message[:500] or "refused by the function")
        if isinstance(outcome, Raised):
            log.error("function %s failed:\n%s", name, outcome.traceback.rstrip())
            self.runs.later(self.journal.call(name, started, "failed",
                                              outcome.traceback.strip().splitlines()[-1][:500], outcome.logs))
            raise HaptaError(INTERNAL, "internal error")
        if outcome.logs:
            self.runs.later(self.journal.call(name, started, "ok", None, outcome.logs))
        return outcome.value
