"""A worker: the child process that imports the app's folder (rules/, functions/) and runs its calls, one at a time.

It starts from a fresh interpreter (multiprocessing 'spawn') with an allowlist of the environment, and before it
imports any of the app's code it leads a process group of its own and, under a root gateway, gives up root's
powers (hapta.isolation.confine). Then it imports its kind's child side by module name (Kind.program:
hapta.hooks.child, hapta.functions.child), whose `program(folder, collections)` imports the app's folder and returns
the Program this process runs. It holds no database connection (ctx.sql goes back to the gateway over the same
socket) and exits as soon as the gateway closes its end, ending what it started, so a worker never outlives its
gateway. One call at a time keeps deadlines exact: when a call overruns, the gateway kills this process and its
group and loses nothing else.
"""
from __future__ import annotations

import importlib
import inspect
import logging
import signal
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

from ..isolation import WorkerUser, confine, end_own_group
from .api import Deny, SqlError
from .loading import describe
from .messages import (Answer, Denied, Invoke, LoadFailed, Raised, Ready, Returned, Sql, SqlResult,
                       decode_in_worker, encode_for_gateway)


class Program(Protocol):
    """A kind's child side, as its module's `program(folder, collections)` returns it: what the worker imported, and
    how it runs one call."""

    def report(self) -> Any:
        """What Ready tells the gateway the folder holds (the kind's gateway side reads it: Kind.read)."""

    def context(self, invoke: Invoke, link: "Runner") -> Any:
        """The `ctx` the call gets; `link` carries its requests to the gateway (Runner.sql, Runner.ask)."""

    def run(self, ctx: Any, invoke: Invoke, link: "Runner") -> Any:
        """Call the hook or function; what it returned (an awaitable is run to its end: Runner.settle)."""

    def logs(self, ctx: Any) -> list[str]:
        """What the call logged to be kept with it (functions' ctx.log), read once it is over."""


def main(conn: Connection, program: str, folder: str, collections: list[str], noun: str,
         memory_limit: int | None = None, user: WorkerUser | None = None) -> None:
    """The process target (it must be importable by name, for 'spawn'). `program`: the module of the kind's child
    side; `noun` names the kind ("hook", "function") in what the operator reads; `memory_limit`: bytes of address
    space this process may map (past it, an allocation raises MemoryError: the call fails, the worker lives on);
    `user`: whom to run as under a root gateway (HAPTA_WORKER_USER; None: uid 0 without capabilities)."""
    # Ctrl-C in a terminal reaches the whole process group, and systemd's default stop (KillMode=control-group)
    # sends SIGTERM to every process of the service at once: the gateway decides when workers stop (it closes our
    # socket), so that a stop never looks like a worker that died and must be replaced. SIGTERM came blocked from
    # birth (WorkerPool._spawn): one sent before this line is dropped with the unblock.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        confine(user)
    except OSError as exc:   # fail closed: the app's code never runs with the powers the gateway has
        conn.send_bytes(encode_for_gateway(LoadFailed(
            f"the {noun} worker cannot give up the gateway's powers ({exc}): run the gateway as a user other than "
            "root, or set HAPTA_WORKER_USER", "")))
        return
    if memory_limit:
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    try:
        try:
            side = importlib.import_module(program)
            loaded: Program = side.program(Path(folder), collections)
            ready = Ready(loaded.report())
        except Exception as exc:
            conn.send_bytes(encode_for_gateway(LoadFailed(describe(exc, Path(folder)), traceback.format_exc())))
            return
        conn.send_bytes(encode_for_gateway(ready))
        Runner(conn, loaded).serve()
    except (EOFError, OSError):
        pass   # the gateway closed our socket (it retired us, or it is gone): nothing left to do
    finally:
        end_own_group()   # whatever the app's code started leaves with this worker (and so does the worker)


class Runner:
    """Runs a Program's calls over the worker's end of the socket, and carries their requests to the gateway."""

    def __init__(self, conn: Connection, program: Program):
        self.conn = conn
        self.program = program
        self._loop = None   # made on the first async call; most hooks are plain functions
        # frames of ours (and asyncio's) that a traceback of the app's code leaves out
        self._plumbing = (__file__, inspect.getfile(type(program)), _ASYNCIO)

    def serve(self) -> None:
        while True:
            message = decode_in_worker(self.conn.recv_bytes())
            if isinstance(message, Invoke):
                self.conn.send_bytes(self.run(message))
            # A SqlResult arriving here answers a call that is already over: nobody is waiting for it.

    def run(self, invoke: Invoke) -> bytes:
        ctx = self.program.context(invoke, self)
        logs = self.program.logs(ctx)   # a list the call appends to: read when it is over
        try:
            result = self.settle(self.program.run(ctx, invoke, self))
        except Deny as deny:
            return encode_for_gateway(Denied(invoke.call, str(deny.message), logs))
        except Exception as exc:
            return encode_for_gateway(Raised(invoke.call, self.traceback(exc), logs))
        try:
            return encode_for_gateway(Returned(invoke.call, result, logs))
        except (TypeError, ValueError, OverflowError) as exc:
            return encode_for_gateway(Raised(invoke.call, f"it returned a value that cannot be sent back: {exc}", logs))

    def settle(self, result: Any) -> Any:
        """What a hook or function returned, its coroutine run to the end if it is async."""
        if inspect.isawaitable(result):
            return self.loop().run_until_complete(result)
        return result

    async def sql(self, call: int, query: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        """ctx.sql: the rows of one statement the gateway runs for `call`, or SqlError."""
        # Blocking on the socket is fine here: this worker serves one call, and this call waits for these rows.
        self.conn.send_bytes(encode_for_gateway(Sql(call, query, list(params))))
        while True:
            reply = decode_in_worker(self.conn.recv_bytes())
            if isinstance(reply, SqlResult) and reply.call == call:
                break
        if reply.error is not None:
            raise SqlError(reply.error, reply.sqlstate)
        return reply.rows or []

    async def ask(self, message: Any) -> Answer:
        """A request to the gateway (a function's RunOp, Publish, Transaction): the gateway's Answer to it."""
        self.conn.send_bytes(encode_for_gateway(message))
        while True:
            reply = decode_in_worker(self.conn.recv_bytes())
            if isinstance(reply, Answer) and reply.call == message.call:
                return reply

    def traceback(self, exc: BaseException) -> str:
        """The traceback as the app's author wants it: their frames, not ours or asyncio's."""
        summary = traceback.TracebackException.from_exception(exc)
        summary.stack = traceback.StackSummary.from_list(
            [frame for frame in summary.stack if not frame.filename.startswith(self._plumbing)])
        return "".join(summary.format())

    def loop(self):
        if self._loop is None:
            import asyncio
            self._loop = asyncio.new_event_loop()
        return self._loop


_ASYNCIO = str(Path(inspect.getfile(inspect)).parent / "asyncio")
