"""A rule worker: the child process that imports the app's rules/ and runs hook calls, one at a time.

It starts from a fresh interpreter (multiprocessing 'spawn') with an allowlist of the environment, and before it
imports any of the app's code it leads a process group of its own and, under a root gateway, gives up root's
powers (hapta.isolation.confine). It holds no database connection (ctx.sql goes back to the gateway over the same
socket) and exits as soon as the gateway closes its end, ending what it started, so a worker never outlives its
gateway. One call at a time keeps deadlines exact: when a call overruns, the gateway kills this process and its
group and loses nothing else.
"""
from __future__ import annotations

import inspect
import logging
import signal
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ..isolation import WorkerUser, confine, end_own_group
from .api import Context, Deny, FunctionContext, OpError, RunLog, SqlError
from .loader import HookTable, describe, load, load_functions
from .messages import (SQL_FAILED, Answer, Denied, FunctionInfo, Invoke, LoadFailed, Publish, Raised, Ready,
                       Returned, RunOp, Sql, SqlResult, Transaction, decode_in_worker, encode_for_gateway)


def main(conn: Connection, folder: str, collections: list[str], kind: str = "rules",
         memory_limit: int | None = None, user: WorkerUser | None = None) -> None:
    """The process target (it must be importable by name, for 'spawn'). `kind`: what to import, the hooks of
    rules/ or the functions of functions/; `memory_limit`: bytes of address space this process may map (past it,
    an allocation raises MemoryError: the call fails, the worker lives on); `user`: whom to run as under a root
    gateway (HAPTA_WORKER_USER; None: uid 0 without capabilities)."""
    # Ctrl-C in a terminal reaches the whole process group; the gateway decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        confine(user)
    except OSError as exc:   # fail closed: the app's code never runs with the powers the gateway has
        conn.send_bytes(encode_for_gateway(LoadFailed(
            f"the {kind} worker cannot give up the gateway's powers ({exc}): run the gateway as a user other than "
            "root, or set HAPTA_WORKER_USER", "")))
        return
    if memory_limit:
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    try:
        try:
            if kind == "functions":
                functions = load_functions(Path(folder))
                hooks: HookTable = {FUNCTIONS: {name: function for name, (function, _) in functions.items()}}
                ready = Ready({}, {name: FunctionInfo(d.allow, d.timeout, list(d.secrets), _file(f), d.admin,
                                                                  [list(t) for t in d.triggers])
                                   for name, (f, d) in functions.items()})
            else:
                hooks = load(Path(folder), set(collections))
                ready = Ready({name: sorted(table) for name, table in hooks.items()})
        except Exception as exc:
            conn.send_bytes(encode_for_gateway(LoadFailed(describe(exc, Path(folder)), traceback.format_exc())))
            return
        conn.send_bytes(encode_for_gateway(ready))
        Runner(conn, hooks).serve()
    except (EOFError, OSError):
        pass   # the gateway closed our socket (it retired us, or it is gone): nothing left to do
    finally:
        end_own_group()   # whatever the app's code started leaves with this worker (and so does the worker)


FUNCTIONS = "functions"   # the table's key (Invoke.collection) for a functions/ worker's functions


def _file(function: Any) -> str:
    try:
        return Path(inspect.getfile(function)).name
    except (TypeError, OSError):
        return ""


class Runner:
    def __init__(self, conn: Connection, hooks: HookTable):
        self.conn = conn
        self.hooks = hooks
        self._loop = None   # made on the first async hook; most hooks are plain functions

    def context(self, invoke: Invoke) -> Any:
        who, call = invoke.who, invoke.call
        sql = lambda query, *params: self.sql(call, query, params)  # noqa: E731
        if invoke.collection == FUNCTIONS:
            return FunctionContext(who.user_id, who.role, who.address, dict(invoke.secrets or {}),
                                   log=RunLog(invoke.hook), _sql=sql,
                                   _op=lambda op, args: self.ask(RunOp(call, op, args)),
                                   _publish=lambda channel, data: self.ask(Publish(call, channel, data)),
                                   _transaction=lambda statements: self.ask(Transaction(call, statements)))
        return Context(who.user_id, who.role, who.op, who.collection, who.address, _sql=sql)

    def serve(self) -> None:
        while True:
            message = decode_in_worker(self.conn.recv_bytes())
            if isinstance(message, Invoke):
                self.conn.send_bytes(self.run(message))
            # A SqlResult arriving here answers a call that is already over: nobody is waiting for it.

    def run(self, invoke: Invoke) -> bytes:
        ctx = self.context(invoke)
        logs = ctx.log.lines if isinstance(ctx, FunctionContext) else []
        try:
            hook = self.hooks[invoke.collection][invoke.hook]
            if invoke.hook == "before_send":   # one call for a whole page: each record, or None (left out)
                result = [self.send_one(hook, ctx, record) for record in invoke.args[0]]
            else:
                result = hook(ctx, *invoke.args)
            if inspect.isawaitable(result):
                result = self.loop().run_until_complete(result)
        except Deny as deny:
            return encode_for_gateway(Denied(invoke.call, str(deny.message), logs))
        except Exception as exc:
            return encode_for_gateway(Raised(invoke.call, hook_traceback(exc), logs))
        try:
            return encode_for_gateway(Returned(invoke.call, result, logs))
        except (TypeError, ValueError, OverflowError) as exc:
            return encode_for_gateway(Raised(invoke.call, f"it returned a value that cannot be sent back: {exc}", logs))

    def send_one(self, hook: Any, ctx: Any, record: dict[str, Any]) -> dict[str, Any] | None:
        """before_send for one record: what it returned (None: the record as it was), None when it raised Deny or
        failed (a record the hook could not check does not leave; the failure is logged). Only the record's own
        fields come back: a hook can mask and remove, not add."""
        try:
            result = hook(ctx, dict(record))
            if inspect.isawaitable(result):
                result = self.loop().run_until_complete(result)
            if result is not None and not isinstance(result, dict):
                raise TypeError(f"before_send returned {type(result).__name__}; return the record (a dict), or None")
        except Deny:
            return None
        except Exception as exc:
            logging.getLogger("hapta.rules").error("hook %s.before_send failed: the record is left out\n%s",
                                                   ctx.collection, hook_traceback(exc).rstrip())
            return None
        if result is None:
            return record
        return {key: value for key, value in result.items() if key in record}

    async def sql(self, call: int, query: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        # Blocking on the socket is fine here: this worker serves one call, and this call waits for these rows.
        self.conn.send_bytes(encode_for_gateway(Sql(call, query, list(params))))
        while True:
            reply = decode_in_worker(self.conn.recv_bytes())
            if isinstance(reply, SqlResult) and reply.call == call:
                break
        if reply.error is not None:
            raise SqlError(reply.error, reply.sqlstate)
        return reply.rows or []

    async def ask(self, message: RunOp | Publish | Transaction) -> Any:
        """A function's request to the gateway (an op, a publish): its data, or OpError with the gateway's code."""
        self.conn.send_bytes(encode_for_gateway(message))
        while True:
            reply = decode_in_worker(self.conn.recv_bytes())
            if isinstance(reply, Answer) and reply.call == message.call:
                break
        if reply.code == SQL_FAILED:
            raise SqlError(reply.message or "the statement failed", reply.value)
        if reply.code is not None:
            raise OpError(reply.code, reply.message or "")
        return reply.value

    def loop(self):
        if self._loop is None:
            import asyncio
            self._loop = asyncio.new_event_loop()
        return self._loop


def hook_traceback(exc: BaseException) -> str:
    """The traceback as the app's author wants it: their frames, not this module's or asyncio's."""
    summary = traceback.TracebackException.from_exception(exc)
    summary.stack = traceback.StackSummary.from_list(
        [frame for frame in summary.stack if not frame.filename.startswith(_PLUMBING)])
    return "".join(summary.format())


_PLUMBING = (__file__, str(Path(inspect.getfile(inspect)).parent / "asyncio"))
