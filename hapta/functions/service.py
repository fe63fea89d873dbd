"""The gateway's side of functions/: its own pool of workers, who may call what, and calls.

The workers import functions/ and report what each function declares (hooks.messages.FunctionInfo); the gateway
compiles the `allow` rules and checks the declared secrets once, at start. A call is then: the function exists
(else NOT_FOUND), the caller passes its rule (FORBIDDEN), a worker runs it with the values of the secrets it
declared, read from the gateway's environment at that moment, and within its timeout (TIMEOUT: the worker is
killed and replaced). The function's own failures reach the client as RULE_DENIED (it raised Deny) or INTERNAL
(anything else; the traceback is logged for the operator, never sent).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

from ..access import NAME, compile_allow, may_call
from ..config import App, ConfigError
from ..hooks.loader import RulesError
from ..hooks.messages import Answer, Denied, Raised, Who
from ..hooks.messages import Publish as Publish_
from ..hooks.workers import WorkerPool, default_size, is_gateway_own
from ..live.bus import BusDown
from ..principal import ADMIN, Peer, Principal, SocketPeer
from ..protocol.errors import (BAD_REQUEST, FORBIDDEN, INTERNAL, NOT_FOUND, RULE_DENIED, TOO_LARGE, UNAVAILABLE,
                               HaptaError)

log = logging.getLogger("hapta.functions")

FUNCTIONS = "functions"   # Invoke.collection of a function call (hooks.worker.FUNCTIONS)


# What a function's ctx.records may run: the records ops, which need no socket of their own.
RECORD_OPS = frozenset({"records.get", "records.list", "records.create", "records.update", "records.delete"})

# run_op(peer, op, args) -> the reply ({ok, data} or {ok: false, error}), through the gateway's own dispatch
RunOp = Callable[[Peer, str, dict[str, Any]], Awaitable[dict[str, Any]]]
# publish(channel, data) -> False when too large (live.channels.Channels.announce)
Publish = Callable[[str, Any], Awaitable[bool]]


@dataclass(frozen=True)
class Function:
    name: str
    allow: Any              # access.compile_allow's: a Node, EVERYONE or None (admins only)
    allow_text: str | None
    timeout: float
    secrets: tuple[str, ...]
    file: str
    admin: bool             # its ctx.records run as admin, not as the caller


class Functions:
    def __init__(self, pool: WorkerPool | None, functions: dict[str, Function],
                 database: Callable[..., Awaitable[Any]]):
        self.pool = pool            # None: the app has no functions/
        self.functions = functions
        self._database = database   # runs ctx.sql (db.fetch_for_app)
        self._run_op: RunOp | None = None
        self._publish: Publish | None = None

    def wire(self, run_op: RunOp, publish: Publish) -> None:
        """What ctx.records and ctx.publish reach: the gateway's dispatch, the channels (the composition root
        hands them over once both exist)."""
        self._run_op, self._publish = run_op, publish

    @classmethod
    async def start(cls, app: App, folder: Path, database: Callable[..., Awaitable[Any]]) -> "Functions":
        if not any(folder.glob("*.py")):
            return cls(None, {}, database)
        memory = app.function_memory * 2**20 if app.function_memory else None
        try:
            pool = WorkerPool(folder, set(), size=app.function_workers or default_size(),
                              timeout=app.function_timeout, queue_limit=app.rule_queue, kind=FUNCTIONS,
                              memory_limit=memory)
            await pool.start()
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        except RulesError as exc:
            raise ConfigError(f"functions/ does not load: {exc}") from None
        try:
            longest = min(app.function_timeout, app.request_timeout)   # a call's reply has request_timeout
            functions = {name: _function(name, info, longest) for name, info in pool.functions.items()}
        except ConfigError:
            await pool.close()
            raise
        log.info("%d function workers ready; functions: %s", pool.size, ", ".join(sorted(functions)) or "none")
        return cls(pool, functions, database)

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    async def call(self, peer: Peer, name: str, args: Any) -> Any:
        function = self.functions.get(name)
        if function is None or self.pool is None:
            raise HaptaError(NOT_FOUND, f"no function {name[:64]!r}")
        principal = peer.principal
        if not may_call(function.allow, principal):
            raise HaptaError(FORBIDDEN, f"you may not call {name}")
        secrets = {key: os.environ[key] for key in function.secrets if key in os.environ}
        who = Who(principal.user_id, principal.role, "functions.call", FUNCTIONS, peer.address)
        acting = SocketPeer(Principal(ADMIN), peer.address) if function.admin else peer

        async def serve(message: Any) -> Answer:
            return await self._serve(acting, message)
        outcome = await self.pool.call(FUNCTIONS, name, who, [args], self._database, timeout=function.timeout,
                                       secrets=secrets, serve=serve)
        if isinstance(outcome, Denied):
            raise HaptaError(RULE_DENIED, outcome.message[:500] or "refused by the function")
        if isinstance(outcome, Raised):
            log.error("function %s failed:\n%s", name, outcome.traceback.rstrip())
            raise HaptaError(INTERNAL, "internal error")
        return outcome.value

    async def _serve(self, peer: Peer, message: Any) -> Answer:
        """ctx.records (an op through the gateway's dispatch, as `peer`) and ctx.publish."""
        if self._run_op is None or self._publish is None:
            return Answer(message.call, code=UNAVAILABLE, message="not wired to a gateway")
        if isinstance(message, Publish_):
            if not NAME.fullmatch(message.channel):
                return Answer(message.call, code=BAD_REQUEST, message=f"{message.channel[:64]!r} is not a channel name")
            try:
                sent = await self._publish(message.channel, message.data)
            except BusDown:
                return Answer(message.call, code=UNAVAILABLE, message="channels are unavailable right now")
            return Answer(message.call) if sent else Answer(message.call, code=TOO_LARGE, message="too large")
        if message.op not in RECORD_OPS:
            return Answer(message.call, code=BAD_REQUEST, message=f"ctx.records runs records.* ops, not {message.op[:64]}")
        reply = await self._run_op(peer, message.op, message.args)
        if reply["ok"]:
            return Answer(message.call, reply["data"])
        return Answer(message.call, code=reply["error"]["code"], message=reply["error"]["message"])

    def describe(self) -> list[dict[str, Any]]:
        """What functions.list shows an admin: each function, who may call it, its timeout and secret names."""
        return [{"name": f.name, "triggers": ["call"], "allow": f.allow_text, "timeout": f.timeout,
                 "secrets": list(f.secrets), "admin": f.admin, "file": f.file} for f in sorted(self.functions.values(),
                                                                           key=lambda f: f.name)]


def _function(name: str, info: Any, longest: float) -> Function:
    own = [secret for secret in info.secrets if is_gateway_own(secret)]
    if own:
        raise ConfigError(f"functions/{info.file}: {name} may not read {own[0]}: the gateway's own settings and "
                          "credentials never reach a function")
    if info.timeout > longest:
        raise ConfigError(f"functions/{info.file}: {name} declares a timeout of {info.timeout:g} s, more than "
                          f"App.function_timeout and App.request_timeout allow ({longest:g} s)")
    return Function(name, compile_allow(name, info.allow), info.allow, info.timeout, tuple(info.secrets), info.file,
                    info.admin)
