"""The pool of rule workers as the gateway sees it: start them, hand out calls, keep deadlines, replace the dead.

    call ─▶ an idle worker ─▶ Invoke ─▶ (Sql ⇄ SqlResult)* ─▶ Returned | Denied | Raised
        └─▶ else the queue (at most `queue_limit` calls, each waiting at most `timeout`) ─▶ else UNAVAILABLE

The rules it keeps:
- A worker runs one call at a time, and the call has `timeout` seconds from the moment the worker gets it. Past
  that the worker is killed (SIGKILL) and replaced, and the call answers TIMEOUT.
- A worker whose socket closes mid-call has died (os._exit, a segfault, the OOM killer): the call answers
  UNAVAILABLE and the worker is replaced. A worker that answers for a call it was not given is killed as well,
  so an answer never reaches the wrong request.
- A full queue, or a call that waited `timeout` for a worker, answers UNAVAILABLE with retry_after: the queue
  never grows past its bound and a caller never waits on it without limit.
- Callers take turns (a functions/ pool's `Shares`): each call names its caller (a principal and its address, a
  webhook's address, the gateway's own background work), a caller holds at most its share of the workers at once
  and may have only so many calls waiting (past that RATE_LIMITED at once; a webhook: UNAVAILABLE), and a free
  worker goes to the oldest call of the next caller in turn that has room. So one client's slow calls queue behind
  each other, not in front of everyone else's.
- Nothing here blocks the event loop: sockets are read by an asyncio protocol, a death shows as end-of-file,
  the dead are reaped by polling.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing
import os
import socket
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Awaitable, Callable

import msgspec

from .. import metrics
from ..isolation import WorkerUser, end_group, keep_environ, scrubbed_environ
from ..limits import address_key
from ..protocol.errors import RATE_LIMITED, TIMEOUT, UNAVAILABLE, HaptaError
from .loader import RulesError
from .messages import (MAX_FRAME, Answer, FrameError, FrameReader, Invoke, LoadFailed, Outcome, Publish, Ready,
                       RunOp, Sql, SqlResult, Transaction, Who, decode_in_gateway, encode_for_worker, frame)
from .worker import main as worker_main

log = logging.getLogger("hapta.rules")

# 'spawn' starts each worker from a fresh interpreter: nothing of the gateway's memory (its secrets, its sockets,
# its event loop) is copied into the process that runs the app's code. It is also what a frozen binary supports.
SPAWN = multiprocessing.get_context("spawn")

START_TIMEOUT = 60.0              # seconds for a new worker to import the rules and say Ready
RETIRE_GRACE = 2.0                # seconds a retired worker has to exit on its own before it is killed
RESPAWN_DELAYS = (0.5, 1, 2, 5, 10, 30)   # back-off while a replacement cannot start (e.g. a broken rules/ file)

def default_size() -> int:
    """One worker per core this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


class WorkerLost(Exception):
    """A worker went away before it was ready."""


WAITING_PER_SHARE = 8   # calls a caller may have waiting for each worker of its share; more: refused at once
SHARE_RETRY_AFTER = 1.0   # seconds a caller over its share is told to wait


@dataclass(frozen=True, slots=True)
class Caller:
    """Whom a call counts against in the pool. `turn`: the queue it waits in, taking turns with the others for a
    free worker; `shares`: (key, workers) pairs, the most calls the holders of each key run at once (and
    WAITING_PER_SHARE times as many may wait); `refusal`: what a call past its share is answered (a socket's
    client RATE_LIMITED, a webhook UNAVAILABLE, i.e. HTTP 503 with Retry-After, which senders retry)."""
    turn: str
    shares: tuple[tuple[str, int], ...] = ()
    refusal: str = RATE_LIMITED


ANYONE = Caller("")   # a pool without shares (rules/ hooks): one queue, first come first served


@dataclass(frozen=True, slots=True)
class Shares:
    """How many of a functions/ pool's workers one caller may hold at once (App.functions.per_principal, ...).

    A principal (a user; anon and guests: their address) and an address (every client behind it) each hold at most
    their share; webhooks together at most `http`, and each sending address `http_per_address` of that. The
    gateway's own work (@every ticks, @on changes) and admins have no cap: they take turns like everyone else."""
    per_principal: int
    per_address: int
    http: int
    http_per_address: int

    @classmethod
    def of(cls, size: int, per_principal: int | None = None, per_address: int | None = None,
           http: int | None = None, http_per_address: int | None = None) -> "Shares":
        """The shares of a pool of `size` workers; None: a principal half of them, an address three quarters,
        webhooks half and one webhook address a quarter (each at least one worker)."""
        principal = max(1, size // 2) if per_principal is None else per_principal
        webhooks = max(1, size // 2) if http is None else http
        shares = cls(principal, max(principal, size * 3 // 4) if per_address is None else per_address, webhooks,
                     max(1, min(webhooks, size // 4)) if http_per_address is None else http_per_address)
        if min(shares.per_principal, shares.per_address, shares.http, shares.http_per_address) < 1:
            raise ValueError("functions: the workers' shares (function_per_principal, function_per_address, "
                             "function_http_workers, function_http_per_address) must be >= 1")
        return shares

    def caller(self, who: Who) -> Caller:
        """Whom a call counts against, from who makes it: a webhook (`who.op` functions.http) by the address that
        sent it, whatever its function acts as; an admin, or the gateway's own schedules and change triggers, not
        at all; anyone else by their principal and their address."""
        address = address_key(who.address)
        if who.op == "functions.http":
            return Caller("w|" + address, (("http", self.http), ("w|" + address, self.http_per_address)), UNAVAILABLE)
        if who.role == "admin":
            return Caller("admin" if who.op == "functions.call" else "background")
        principal = f"p|user:{who.user_id}" if who.user_id else f"p|addr:{address}"
        return Caller(principal, ((principal, self.per_principal), ("a|" + address, self.per_address)))


class Pending:
    """One call, from submission to its outcome."""
    __slots__ = ("id", "label", "payload", "sql", "future", "timer", "queries", "timeout", "serve", "caller",
                 "waiting", "holding")

    def __init__(self, call_id: int, label: str, sql: Callable[..., Awaitable[Any]], future: asyncio.Future,
                 timeout: float, serve: Callable[[Any], Awaitable[Answer]] | None = None, caller: Caller = ANYONE):
        self.id = call_id
        self.caller = caller                # whose share it counts against
        self.waiting = False                # in the queue, counted against its caller's waiting calls
        self.holding = False                # running on a worker, counted against its caller's share
        self.label = label                  # "the posts.before_create hook", for logs and messages
        self.timeout = timeout              # seconds from the moment a worker has it
        self.serve = serve                  # answers a function's Publish and RunOp (None: hooks have neither)
        self.payload = b""
        self.sql = sql                      # runs the hook's ctx.sql statements (a pool's or a transaction's fetch)
        self.future = future
        self.timer: asyncio.TimerHandle | None = None
        self.queries: set[asyncio.Task] = set()

    def fail(self, error: HaptaError) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if not self.future.done():
            self.future.set_exception(error)


class Worker(asyncio.Protocol):
    """One child process and the gateway's end of its socket."""

    def __init__(self, pool: "WorkerPool", process: Any, generation: int):
        self.pool = pool
        self.process = process
        self.pid = process.pid
        self.generation = generation
        self.frames = FrameReader()
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future = pool.loop.create_future()   # Ready or LoadFailed
        self.pending: Pending | None = None
        self.gone = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport   # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            for payload in self.frames.feed(data):
                if self.gone:
                    return
                self.pool.received(self, decode_in_gateway(payload))
        except (FrameError, msgspec.DecodeError) as exc:
            self.pool.lost(self, f"sent garbage ({exc})")

    def connection_lost(self, exc: Exception | None) -> None:
        self.pool.lost(self, "died")

    def send(self, payload: bytes) -> None:
        assert self.transport is not None
        self.transport.write(frame(payload))


class WorkerPool:
    def __init__(self, folder: Path, collections: set[str], *, size: int, timeout: float, queue_limit: int,
                 kind: str = "rules", memory_limit: int | None = None, shares: Shares | None = None,
                 environ: Callable[[str], bool] | None = None, user: WorkerUser | None = None):
        if size < 1 or timeout <= 0 or queue_limit < 0:
            raise ValueError(f"{kind}: workers must be >= 1, the timeout > 0 and the queue >= 0")
        self.environ = environ or keep_environ()   # which variables a worker starts with (an allowlist)
        self.user = user                  # under a root gateway, whom workers run as (None: uid 0, no capabilities)
        self.shares = shares              # None: no caller is capped, one queue (rules/ hooks)
        self.folder = folder
        self.collections = sorted(collections)
        self.kind = kind                  # what the workers import: "rules" (hooks) or "functions"
        self.memory_limit = memory_limit  # bytes of address space per worker (RLIMIT_AS); None: no limit
        self.functions: dict[str, Any] = {}   # a functions/ pool's: name -> FunctionInfo, as the workers reported
        self.size = size
        self.timeout = timeout
        self.queue_limit = queue_limit
        self.loop = asyncio.get_running_loop()
        self.table: dict[str, frozenset[str]] = {}   # collection -> hook names, as the workers reported them
        self.generation = 0               # --reload starts a new one; older workers finish their call and leave
        self.workers: set[Worker] = set()  # ready workers of the current generation, idle or busy
        self.idle: list[Worker] = []
        # Waiting calls, one queue per caller's turn, the turns in the order they come (a dict keeps it): a free
        # worker takes the oldest call of the first turn with room, and that turn goes to the back.
        self.turns: dict[str, deque[Pending]] = {}
        self.queued = 0
        self.running: dict[str, int] = {}   # share key -> calls running (only keys above zero)
        self.waiting: dict[str, int] = {}   # share key -> calls waiting (only keys above zero)
        self.everyone: set[Worker] = set()   # every worker not yet gone, of any generation, ready or not
        self.respawns: set[asyncio.Task] = set()
        self.burials: set[asyncio.Task] = set()
        self.closing = False
        self.ids = itertools.count(1)
        self.counts = {"calls": 0, "timeouts": 0, "deaths": 0, "rejected": 0, "limited": 0}
        # /metrics: this pool's own series (hooks or functions), never the other pool's
        self.metric_label = "functions" if kind == "functions" else "hooks"
        self._gauge = metrics.WORKERS.labels(self.metric_label)
        self._restarts = metrics.WORKER_RESTARTS.labels(self.metric_label)
        self._errors = metrics.UPSTREAM_ERRORS.labels("functions" if kind == "functions" else "rules")

    # ---- life cycle ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start `size` workers and wait until each has imported the rules (RulesError if they do not load)."""
        fresh, ready = await self._start_workers(self.generation, self.size)
        self.table, self.functions = _table(ready), ready.functions
        for worker in fresh:
            self._admit(worker)

    async def restart(self) -> None:
        """Start a new generation from rules/ as it is now; the old one finishes its calls, then stops. If the new
        rules do not load (RulesError), the running generation stays."""
        generation = self.generation + 1
        fresh, ready = await self._start_workers(generation, self.size)
        if self.closing:
            for worker in fresh:
                self._retire(worker)
            return
        self.generation = generation
        self.table, self.functions = _table(ready), ready.functions
        for worker in list(self.workers):
            self.workers.discard(worker)
            if worker.pending is None:
                self._retire(worker)       # a busy one retires when its call is done (see _release)
        for worker in fresh:
            self._admit(worker)

    async def close(self) -> None:
        self.closing = True
        for task in self.respawns:
            task.cancel()
        await asyncio.gather(*self.respawns, return_exceptions=True)
        for queue in list(self.turns.values()):
            for pending in list(queue):
                self._unqueue(pending)
                pending.fail(HaptaError(UNAVAILABLE, "the gateway is shutting down", retry_after=1.0))
        for worker in list(self.everyone):
            if worker.pending is not None:
                pending, worker.pending = worker.pending, None
                self._leave(pending)
                pending.fail(HaptaError(UNAVAILABLE, "the gateway is shutting down", retry_after=1.0))
                self._remove(worker, kill=True)
            else:
                self._retire(worker)
        while self.burials:
            await asyncio.gather(*self.burials, return_exceptions=True)

    def status(self) -> dict[str, Any]:
        counts = self.counts if self.shares is not None else {k: v for k, v in self.counts.items() if k != "limited"}
        return {"size": self.size, "live": len(self.workers),
                "busy": sum(1 for worker in self.workers if worker.pending is not None),
                "queued": self.queued, "generation": self.generation, **counts}

    # ---- calls --------------------------------------------------------------------------------------------

    async def call(self, collection: str, hook: str, who: Who, args: list[Any],
                   sql: Callable[..., Awaitable[Any]], *, timeout: float | None = None,
                   secrets: dict[str, str] | None = None,
                   serve: Callable[[Any], Awaitable[Answer]] | None = None, caller: Caller | None = None) -> Outcome:
        """Run one hook (or function); return its outcome (Returned, Denied or Raised) or raise HaptaError
        TIMEOUT/UNAVAILABLE, or RATE_LIMITED when its caller has too many calls under way. `timeout`: this call's
        own deadline, if shorter than the pool's. `caller`: whose share of the workers it counts against (Caller);
        None: as the pool's Shares read `who` (a webhook by `who.op` "functions.http" and `who.address`)."""
        if self.closing:
            raise HaptaError(UNAVAILABLE, "the gateway is shutting down", retry_after=1.0)
        if caller is None:
            caller = self.shares.caller(who) if self.shares is not None else ANYONE
        label = f"function {hook}" if self.kind == "functions" else f"{collection}.{hook} hook"
        pending = Pending(next(self.ids), label, sql, self.loop.create_future(),
                          min(timeout or self.timeout, self.timeout), serve, caller)
        pending.payload = encode_for_worker(Invoke(pending.id, collection, hook, who, args, secrets))
        if self.idle and self._room(caller):   # a worker is idle only while no waiting call may run
            self._run(self.idle.pop(), pending)
        elif any(self.waiting.get(key, 0) >= share * WAITING_PER_SHARE for key, share in caller.shares):
            self.counts["limited"] += 1   # the caller's own doing: no upstream error
            raise self._over_share(caller)
        elif self.queued >= self.queue_limit:
            self._count("rejected")
            raise self._busy()
        else:
            self._enqueue(pending)
            pending.timer = self.loop.call_later(self.timeout, self._waited_too_long, pending)
        try:
            return await pending.future
        finally:
            if pending.waiting:   # its caller gave up (a deadline, a closed socket): it leaves the queue
                self._unqueue(pending)
            if pending.queries:   # the call is over (answered, timed out, cancelled): so are its statements
                for task in pending.queries:
                    task.cancel()
                await asyncio.gather(*pending.queries, return_exceptions=True)

    def _count(self, what: str) -> None:
        """A call that failed for the pool's sake (not the hook's own answer): an upstream error in /metrics."""
        self.counts[what] += 1
        self._errors.inc()

    def _busy(self) -> HaptaError:
        return HaptaError(UNAVAILABLE, f"the {'function' if self.kind == 'functions' else 'rule'} workers are busy; "
                          "try again", retry_after=self.timeout)

    def _over_share(self, caller: Caller) -> HaptaError:
        if caller.refusal == UNAVAILABLE:
            return HaptaError(UNAVAILABLE, "the workers webhooks may use are busy; try again",
                              retry_after=SHARE_RETRY_AFTER)
        return HaptaError(RATE_LIMITED, "too many function calls at once from this client; wait for your other "
                          "calls", retry_after=SHARE_RETRY_AFTER)

    # ---- shares and turns ---------------------------------------------------------------------------------

    def _room(self, caller: Caller) -> bool:
        running = self.running
        return all(running.get(key, 0) < share for key, share in caller.shares)

    def _enqueue(self, pending: Pending) -> None:
        self.turns.setdefault(pending.caller.turn, deque()).append(pending)
        pending.waiting = True
        self.queued += 1
        _add(self.waiting, pending.caller.shares, 1)

    def _unqueue(self, pending: Pending) -> None:
        """Take a waiting call out of its queue (to run it, or because it is over)."""
        queue = self.turns.get(pending.caller.turn)
        if queue is not None:
            try:
                queue.remove(pending)
            except ValueError:
                pass
            if not queue:
                del self.turns[pending.caller.turn]
        pending.waiting = False
        self.queued -= 1
        _add(self.waiting, pending.caller.shares, -1)

    def _next(self) -> Pending | None:
        """The call a free worker takes: the oldest of the first turn whose caller has room, that turn then
        going to the back; None when every waiting caller holds its share already."""
        for turn, queue in self.turns.items():
            if self._room(queue[0].caller):
                pending = queue[0]
                self._unqueue(pending)
                if turn in self.turns:   # more of its calls wait: its next turn comes after everyone else's
                    self.turns[turn] = self.turns.pop(turn)
                return pending
        return None

    def _pump(self) -> None:
        """Give idle workers the calls that may run now (after a worker or a share came free)."""
        while self.idle and self.turns:
            pending = self._next()
            if pending is None:
                return
            if pending.timer is not None:
                pending.timer.cancel()
            if pending.future.done():
                continue   # its caller gave up a moment ago
            self._run(self.idle.pop(), pending)

    def _leave(self, pending: Pending) -> None:
        """A running call is over: its caller's share has room again."""
        if pending.holding:
            pending.holding = False
            _add(self.running, pending.caller.shares, -1)

    def _run(self, worker: Worker, pending: Pending) -> None:
        worker.pending = pending
        pending.holding = True
        _add(self.running, pending.caller.shares, 1)
        self.counts["calls"] += 1
        worker.send(pending.payload)
        pending.timer = self.loop.call_later(pending.timeout, self._overran, worker, pending)

    def _waited_too_long(self, pending: Pending) -> None:
        if not pending.waiting:
            return
        self._unqueue(pending)
        if not self._room(pending.caller):   # its own calls held its share all along: the caller's doing
            self.counts["limited"] += 1
            pending.fail(self._over_share(pending.caller))
        else:
            self._count("rejected")
            pending.fail(self._busy())

    def _overran(self, worker: Worker, pending: Pending) -> None:
        if worker.pending is not pending:
            return
        self._count("timeouts")
        log.warning("%s worker %d did not finish the %s within %g s: killed, starting another",
                    self.kind, worker.pid, pending.label, pending.timeout)
        worker.pending = None
        self._leave(pending)
        pending.fail(HaptaError(TIMEOUT, f"the {pending.label} did not finish within {pending.timeout:g} s"))
        self._remove(worker, kill=True)
        self._pump()   # its caller's share came free: an idle worker may take its next call

    def received(self, worker: Worker, message: Any) -> None:
        if isinstance(message, (Ready, LoadFailed)):
            if worker.ready.done():
                return self.lost(worker, "said Ready twice")
            worker.ready.set_result(message)
            return
        pending = worker.pending
        if pending is None or message.call != pending.id:
            return self.lost(worker, "answered a call it was not given")
        if isinstance(message, (Sql, Publish, RunOp, Transaction)):
            work = self._query(worker, pending, message) if isinstance(message, Sql) else \
                self._serve(worker, pending, message)
            task = self.loop.create_task(work)
            pending.queries.add(task)
            task.add_done_callback(pending.queries.discard)
            return
        worker.pending = None
        self._leave(pending)
        if pending.timer is not None:
            pending.timer.cancel()
        if not pending.future.done():
            pending.future.set_result(message)
        self._release(worker)

    async def _query(self, worker: Worker, pending: Pending, message: Sql) -> None:
        """ctx.sql, the gateway's half: run the statement, send the rows (or the error) back to the hook."""
        try:
            rows = [dict(row) for row in await pending.sql(message.query, *message.params)]
            reply = SqlResult(message.call, rows=rows)
        except Exception as exc:   # the hook's own statement failed: the hook decides what that means
            reply = SqlResult(message.call, error=str(exc) or type(exc).__name__,
                              sqlstate=getattr(exc, "sqlstate", None))
        try:
            payload = encode_for_worker(reply)
        except (TypeError, ValueError, OverflowError) as exc:
            payload = encode_for_worker(SqlResult(message.call, error=f"the result cannot be sent: {exc}"))
        if len(payload) > MAX_FRAME:
            payload = encode_for_worker(SqlResult(message.call, error=f"the result is too large ({len(payload)} "
                                                                      "bytes); select fewer rows"))
        if worker.pending is pending:   # else the call is over and nobody waits for these rows
            worker.send(payload)

    async def _serve(self, worker: Worker, pending: Pending, message: Publish | RunOp | Transaction) -> None:
        """A function's ctx.publish, ctx.records or ctx.transaction, the gateway's half."""
        if pending.serve is None:
            answer = Answer(message.call, code="BAD_REQUEST", message="hooks cannot publish or call ops")
        else:
            try:
                answer = await pending.serve(message)
            except HaptaError as error:
                answer = Answer(message.call, code=error.code, message=error.message)
        try:
            payload = encode_for_worker(answer)
        except (TypeError, ValueError, OverflowError) as exc:
            payload = encode_for_worker(Answer(message.call, code="INTERNAL", message=f"cannot be sent: {exc}"))
        if worker.pending is pending:
            worker.send(payload)

    # ---- workers come and go ------------------------------------------------------------------------------

    async def _spawn(self, generation: int) -> Worker:
        ours, theirs = socket.socketpair()
        child_end = Connection(theirs.detach())
        process = SPAWN.Process(target=worker_main, args=(child_end, str(self.folder), self.collections, self.kind,
                                                          self.memory_limit, self.user),
                                name=f"hapta-{self.kind}", daemon=True)
        try:
            with scrubbed_environ(self.environ):
                process.start()
        except BaseException:
            ours.close()
            raise
        finally:
            child_end.close()   # the child has its copy; ours would keep the socket open after the child died
        worker = Worker(self, process, generation)
        self.everyone.add(worker)
        await self.loop.connect_accepted_socket(lambda: worker, ours)
        return worker

    async def _start_workers(self, generation: int, count: int) -> tuple[list[Worker], Ready]:
        started: list[Worker] = []
        try:
            for _ in range(count):
                started.append(await self._spawn(generation))
            answers = await asyncio.wait_for(asyncio.gather(*(w.ready for w in started)), START_TIMEOUT)
        except BaseException as exc:
            for worker in started:
                self._remove(worker, kill=True)
            if isinstance(exc, WorkerLost):
                raise RulesError(f"a worker exited while importing {self.kind}/") from None
            if isinstance(exc, asyncio.TimeoutError):
                raise RulesError(f"the workers did not import {self.kind}/ within {START_TIMEOUT:g} s") from None
            raise
        failed = next((a for a in answers if isinstance(a, LoadFailed)), None)
        if failed is not None:
            for worker in started:
                self._remove(worker, kill=True)
            raise RulesError(failed.message, failed.traceback)
        return started, answers[0]

    def _admit(self, worker: Worker) -> None:
        if self.closing or worker.generation != self.generation:
            return self._retire(worker)
        self.workers.add(worker)
        self._gauge.set(len(self.workers))
        self._release(worker)
        if len(self.workers) == self.size and self.counts["deaths"] + self.counts["timeouts"]:
            log.info("%s workers back to %d", self.kind, self.size)

    def _release(self, worker: Worker) -> None:
        """A worker is free: it takes the next call in turn that may run, or waits (idle) for one."""
        if self.closing or worker.generation != self.generation:
            self._retire(worker)
        else:
            self.idle.append(worker)
        self._pump()

    def lost(self, worker: Worker, why: str) -> None:
        """The worker's socket closed, or it broke the protocol: fail its call, kill it, start another."""
        if worker.gone:
            return   # we removed it ourselves
        if not worker.ready.done():
            worker.ready.set_exception(WorkerLost(why))
            worker.ready.exception()   # retrieved: whoever awaits it may be gone already
        pending = worker.pending
        if pending is not None:
            worker.pending = None
            self._leave(pending)
            self._count("deaths")
            log.warning("%s worker %d %s during the %s: starting another", self.kind, worker.pid, why, pending.label)
            pending.fail(HaptaError(UNAVAILABLE, f"the worker running the {pending.label} died; "
                                                 "try again", retry_after=1.0))
        elif worker in self.workers:
            self.counts["deaths"] += 1   # it cost no call: no upstream error
            log.warning("%s worker %d %s while idle: starting another", self.kind, worker.pid, why)
        self._remove(worker, kill=True)
        self._pump()

    def _remove(self, worker: Worker, *, kill: bool) -> None:
        """Take a worker out of service; a killed one of the current generation is replaced."""
        if worker.gone:
            return
        worker.gone = True
        if not worker.ready.done():   # whoever waits for it to start must not wait in vain
            worker.ready.set_exception(WorkerLost("taken out of service while starting"))
            worker.ready.exception()
        replace = worker in self.workers and not self.closing
        self.workers.discard(worker)
        self._gauge.set(len(self.workers))
        self.everyone.discard(worker)
        if worker in self.idle:
            self.idle.remove(worker)
        if kill:
            end_group(worker.pid)    # the worker and whatever it started in its group
            worker.process.kill()    # (one killed before it had made its group)
            if worker.transport is not None:
                worker.transport.abort()
        elif worker.transport is not None:
            worker.transport.close()   # end-of-file tells the worker to exit
        self._chore(self.burials, self._bury(worker.process, 0.0 if kill else RETIRE_GRACE))
        if replace and kill:
            self._restarts.inc()
            self._chore(self.respawns, self._respawn(self.generation))

    def _retire(self, worker: Worker) -> None:
        self._remove(worker, kill=False)

    async def _respawn(self, generation: int) -> None:
        for attempt in itertools.count():
            try:
                (worker,), _ = await self._start_workers(generation, 1)
            except Exception as exc:   # RulesError (rules/ broken meanwhile), OSError (out of processes), ...
                log.error("a %s worker could not start: %s", self.kind, exc)
            else:
                return self._admit(worker)
            await asyncio.sleep(RESPAWN_DELAYS[min(attempt, len(RESPAWN_DELAYS) - 1)])
            if self.closing or generation != self.generation:
                return

    async def _bury(self, process: Any, grace: float) -> None:
        """Wait for a worker to exit (killing it after `grace`) and reap it, without blocking the loop."""
        deadline = self.loop.time() + grace
        killed = False
        while process.exitcode is None:   # polls waitpid(WNOHANG), which reaps it once it has exited
            if self.loop.time() >= deadline:
                if killed:
                    log.error("%s worker %d does not exit even when killed", self.kind, process.pid)
                    return
                end_group(process.pid)
                process.kill()
                killed = True
                deadline = self.loop.time() + 10
            await asyncio.sleep(0.01)
        process.close()

    def _chore(self, tasks: set[asyncio.Task], coroutine: Any) -> None:
        task = self.loop.create_task(coroutine)
        tasks.add(task)
        task.add_done_callback(tasks.discard)


def _add(counts: dict[str, int], shares: tuple[tuple[str, int], ...], step: int) -> None:
    """Count a call in (step 1) or out (-1) under each of its share keys; a key lives only while above zero."""
    for key, _ in shares:
        count = counts.get(key, 0) + step
        if count > 0:
            counts[key] = count
        else:
            counts.pop(key, None)


def _table(ready: Ready) -> dict[str, frozenset[str]]:
    return {collection: frozenset(names) for collection, names in ready.hooks.items()}
