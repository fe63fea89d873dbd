"""functions.*: the app's server functions over the socket (hapta.functions; docs/functions.md)."""
from __future__ import annotations

from typing import Any

import msgspec

from ..functions.service import Functions
from .base import Call, op


class CallArgs(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    args: Any = None


class RunsArgs(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    limit: int = 50


class RetryArgs(msgspec.Struct, forbid_unknown_fields=True):
    id: int


class FunctionOps:
    def __init__(self, functions: Functions):
        self.functions = functions

    @op("functions.call", CallArgs)
    async def call(self, call: Call, args: CallArgs) -> Any:
        """The function's return value; NOT_FOUND, FORBIDDEN (its allow rule), RULE_DENIED (it raised Deny),
        TIMEOUT (past its timeout: its worker is killed), UNAVAILABLE (workers busy or one died), INTERNAL."""
        return await self.functions.call(call.peer, args.name, args.args)

    @op("functions.status", admin=True)
    async def status(self, call: Call, args: None) -> dict[str, Any]:
        """{size, live, busy, queued, generation, calls, timeouts, deaths, rejected, limited, functions}: the
        function workers, as hooks.status shows the hook workers (admins only)."""
        return self.functions.status()

    @op("functions.list", admin=True)
    async def list(self, call: Call, args: None) -> dict[str, Any]:
        """{functions: [{name, triggers, allow, timeout, secrets, admin, file, last_run, dead}]} (admins only)."""
        return {"functions": await self.functions.describe()}

    @op("functions.runs", RunsArgs, admin=True)
    async def runs(self, call: Call, args: RunsArgs) -> dict[str, Any]:
        """{runs: [{id, trigger, started, finished, duration_ms, outcome, message}]}: a function's newest background
        runs (schedule ticks), newest first (admins only)."""
        return {"runs": await self.functions.runs(args.name, max(1, min(args.limit, 100)))}

    @op("functions.dead", RunsArgs, admin=True)
    async def dead(self, call: Call, args: RunsArgs) -> dict[str, Any]:
        """{dead: [{id, position, change, error, at}]}: the changes an @on function gave up on (admins only)."""
        return {"dead": await self.functions.dead(args.name, max(1, min(args.limit, 100)))}

    @op("functions.retry", RetryArgs, admin=True)
    async def retry(self, call: Call, args: RetryArgs) -> dict[str, Any]:
        """{outcome}: run a dead letter again now; on `ok` it is gone from functions.dead (admins only)."""
        return {"outcome": await self.functions.retry(args.id)}
