"""A pool of workers as the gateway sees it: start them, hand out calls, keep deadlines, replace the dead. Hooks and
functions each have one, told apart by their Kind (kind.py).

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
- Callers take turns (the kind's `callers`: functions/ shares its workers, hooks have one queue): each call names
  its caller (a principal and its address, a webhook's address, the gateway's own background work), a caller
  holds at most its share of the workers at once and may have only so many calls waiting (past that RATE_LIMITED
  at once; a webhook: UNAVAILABLE), and a free worker goes to the oldest call of the next caller in turn that has
  room. So one client's slow calls queue behind each other, not in front of everyone else's.
- Nothing here blocks the event loop: sockets are read by an asyncio protocol, a death shows as end-of-file,
  the dead are reaped by polling.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing
import os
import signal
import socket
from collections import deque
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Awaitable, Callable

import msgspec

from .. import metrics
from ..config import ConfigError
from ..isolation import WorkerUser, end_group, scrubbed_environ
from ..protocol.errors import RATE_LIMITED, TIMEOUT, UNAVAILABLE, HaptaError
from .child import main as worker_main
from .kind import ANYONE, Caller, Kind
from .loading import LoadError
from .messages import (MAX_FRAME, Answer, FrameError, FrameReader, Invoke, LoadFailed, Outcome, Publish, Ready,
                       RunOp, Sql, SqlResult, Transaction, Who, decode_in_gateway, encode_for_worker, frame)

# 'spawn' starts each worker from a fresh interpreter: nothing of the gateway's memory (its secrets, its sockets,
# its event loop) is copied into the process that runs the app's code. It is also what a frozen binary supports.
SPAWN = multiprocessing.get_context("spawn")

START_TIMEOUT = 60.0              # seconds for a new worker to import its folder and say Ready
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
        self.label = label                  # "posts.before_create hook", for logs and messages
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
    def __init__(self, kind: Kind, folder: Path, collections: set[str], *, size: int, timeout: float,
                 queue_limit: int, user: WorkerUser | None = None):
        if size < 1 or timeout <= 0 or queue_limit < 0:
            raise ValueError(f"{kind.name}: workers must be >= 1, the timeout > 0 and the queue >= 0")
        self.kind = kind                  # what the workers import and run, and what they may have (Kind)
        self.log = logging.getLogger(kind.logger)
        self.user = user                  # under a root gateway, whom workers run as (None: uid 0, no capabilities)
        self.folder = folder
        self.collections = sorted(collections)
        self.size = size
        self.timeout = timeout
        self.queue_limit = queue_limit
        self.loop = asyncio.get_running_loop()
        self.table: Any = kind.read({})   # what the current generation's workers reported, as the kind reads it
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
        self._gauge = metrics.WORKERS.labels(kind.name)
        self._restarts = metrics.WORKER_RESTARTS.labels(kind.name)
        self._errors = metrics.UPSTREAM_ERRORS.labels(kind.upstream)

    # ---- life cycle ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start `size` workers and wait until each has imported the folder (LoadError if it does not load)."""
        fresh, ready = await self._start_workers(self.generation, self.size)
        self.table = self.kind.read(ready.report)
        for worker in fresh:
            self._admit(worker)

    async def restart(self, check: Callable[[Any], Any] | None = None) -> Any:
        """Start a new generation from the folder as it is now; the old one finishes its calls, then stops. If the
        new files do not load (LoadError), or `check` refuses what they declare (it raises; it is given the new
        table, and what it returns is returned), the new workers leave and the running generation stays."""
        generation = self.generation + 1
        fresh, ready = await self._start_workers(generation, self.size)
        table = self.kind.read(ready.report)
        try:
            checked = check(table) if check is not None else None
        except BaseException:
            for worker in fresh:
                self._retire(worker)
            raise
        if self.closing:
            for worker in fresh:
                self._retire(worker)
            return checked
        self.generation = generation
        self.table = table
        for worker in list(self.workers):
            self.workers.discard(worker)
            if worker.pending is None:
                self._retire(worker)       # a busy one retires when its call is done (see _release)
        for worker in fresh:
            self._admit(worker)
        return checked

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
        counts = self.counts if self.kind.callers is not None else \
            {k: v for k, v in self.counts.items() if k != "limited"}
        return {"size": self.size, "live": len(self.workers),
                "busy": sum(1 for worker in self.workers if worker.pending is not None),
                "queued": self.queued, "generation": self.generation, **counts}

    # ---- calls --------------------------------------------------------------------------------------------

    async def call(self, collection: str, name: str, who: Who, args: list[Any],
                   sql: Callable[..., Awaitable[Any]], *, timeout: float | None = None,
                   secrets: dict[str, str] | None = None,
                   serve: Callable[[Any], Awaitable[Answer]] | None = None, caller: Caller | None = None) -> Outcome:
        """Run one hook (a collection's `name`) or function (`name`, collection ""); return its outcome (Returned,
        Denied or Raised) or raise HaptaError TIMEOUT/UNAVAILABLE, or RATE_LIMITED when its caller has too many calls
        under way. `timeout`: this call's own deadline, if shorter than the pool's. `caller`: whose share of the
        workers it counts against (Caller); None: as the kind's `callers` read `who` (functions: a webhook by
        `who.op` "functions.http" and `who.address`)."""
        if self.closing:
            raise HaptaError(UNAVAILABLE, "the gateway is shutting down", retry_after=1.0)
        if caller is None:
            caller = self.kind.callers(who) if self.kind.callers is not None else ANYONE
        pending = Pending(next(self.ids), self.kind.label(collection, name), sql, self.loop.create_future(),
                          min(timeout or self.timeout, self.timeout), serve, caller)
        pending.payload = encode_for_worker(Invoke(pending.id, collection, name, who, args, secrets))
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
        return HaptaError(UNAVAILABLE, f"the {self.kind.noun} workers are busy; try again", retry_after=self.timeout)

    def _over_share(self, caller: Caller) -> HaptaError:
        if caller.refusal == UNAVAILABLE:
            return HaptaError(UNAVAILABLE, "the workers webhooks may use are busy; try again",
                              retry_after=SHARE_RETRY_AFTER)
        return HaptaError(RATE_LIMITED, f"too many {self.kind.noun} calls at once from this client; wait for your "
                          "other calls", retry_after=SHARE_RETRY_AFTER)

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
        self.log.warning("%s worker %d did not finish the %s within %g s: killed, starting another",
                         self.kind.noun, worker.pid, pending.label, pending.timeout)
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
        kind = self.kind
        process = SPAWN.Process(target=worker_main, args=(child_end, kind.program, str(self.folder), self.collections,
                                                          kind.noun, kind.memory_limit, self.user),
                                name=f"hapta-{kind.name}", daemon=True)
        # The child inherits the blocked mask through fork and exec: a SIGTERM to the whole service cannot end it
        # before it has set it aside (child.main); ours stays pending until the unblock, not lost.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        try:
            with scrubbed_environ(kind.environ):
                process.start()
        except BaseException:
            ours.close()
            raise
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
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
            gathered = asyncio.gather(*(w.ready for w in started))
            # cancelled along with us (close() during a respawn), its CancelledError is ours to drop, not to log
            gathered.add_done_callback(lambda done: done.cancelled() or done.exception())
            answers = await asyncio.wait_for(gathered, START_TIMEOUT)
        except BaseException as exc:
            for worker in started:
                self._remove(worker, kill=True)
            if isinstance(exc, WorkerLost):
                raise LoadError(f"a worker exited while importing {self.folder.name}/") from None
            if isinstance(exc, asyncio.TimeoutError):
                raise LoadError(f"the workers did not import {self.folder.name}/ within {START_TIMEOUT:g} s") from None
            raise
        failed = next((a for a in answers if isinstance(a, LoadFailed)), None)
        if failed is not None:
            for worker in started:
                self._remove(worker, kill=True)
            raise LoadError(failed.message, failed.traceback)
        return started, answers[0]

    def _admit(self, worker: Worker) -> None:
        if self.closing or worker.generation != self.generation:
            return self._retire(worker)
        self.workers.add(worker)
        self._gauge.set(len(self.workers))
        self._release(worker)
        if len(self.workers) == self.size and self.counts["deaths"] + self.counts["timeouts"]:
            self.log.info("%s workers back to %d", self.kind.noun, self.size)

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
            self.log.warning("%s worker %d %s during the %s: starting another", self.kind.noun, worker.pid, why,
                             pending.label)
            pending.fail(HaptaError(UNAVAILABLE, f"the worker running the {pending.label} died; "
                                                 "try again", retry_after=1.0))
        elif worker in self.workers:
            self.counts["deaths"] += 1   # it cost no call: no upstream error
            self.log.warning("%s worker %d %s while idle: starting another", self.kind.noun, worker.pid, why)
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
            except Exception as exc:   # LoadError (rules/ broken meanwhile), OSError (out of processes), ...
                self.log.error("a %s worker could not start: %s", self.kind.noun, exc)
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
                    self.log.error("%s worker %d does not exit even when killed", self.kind.noun, process.pid)
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


def needed(folder: Path, reload: bool) -> bool:
    """Whether the app's folder asks for workers: it holds a module, or --reload waits for the first one."""
    return reload or any(folder.glob("*.py"))


async def start_pool(kind: Kind, folder: Path, collections: set[str], *, size: int, timeout: float, queue_limit: int,
                     user: WorkerUser | None = None, reload: bool = False) -> WorkerPool | None:
    """A started pool of `kind` for the app's `folder`, every worker ready; None when the folder holds no module and
    nothing is to be reloaded (no worker at all). ConfigError, saying why in one line, when the bounds are wrong or
    the folder does not load."""
    if not needed(folder, reload):
        return None
    try:
        pool = WorkerPool(kind, folder, collections, size=size, timeout=timeout, queue_limit=queue_limit, user=user)
        await pool.start()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    except LoadError as exc:
        raise ConfigError(f"{folder.name}/ does not load: {exc}") from None
    return pool
