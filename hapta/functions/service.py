"""The gateway's side of functions/: its own pool of workers, what each function declares, and its runs.

The workers (a hapta.workers pool of the kind FUNCTION_WORKERS) import functions/ and report what each function
declares (child.FunctionInfo); the gateway compiles the `allow` rules and checks the declared secrets, the timeout
and every trigger (its Trigger's `check`) once, at start (and at each --reload, before the new workers serve). A
run is then: a worker runs the function with the values of the secrets it declared, read from the gateway's
environment at that moment, within its timeout (TIMEOUT: the worker is killed and replaced), and its ctx.records,
ctx.publish and ctx.transaction come back here (`_serve`). What sets a function running is its triggers' affair:
calls.py (@call), schedule.py (@every), changes.py (@on), webhooks.py (@http), each a Trigger (triggers.py).
"""
from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Awaitable, Callable

import asyncpg
import msgspec

from ..access import NAME, compile_allow
from ..config import App, ConfigError
from ..isolation import WorkerUser, refused_names
from ..live.bus import BusDown
from ..live.channels import Held
from ..principal import ADMIN, Peer, Principal, SocketPeer
from ..protocol.errors import BAD_REQUEST, TOO_LARGE, UNAVAILABLE, HaptaError
from ..store.postgres import Database
from ..workers.kind import Kind
from ..workers.loading import LoadError
from ..workers.messages import SQL_FAILED, Answer, Denied, Outcome, Publish, Raised, Transaction, Who
from ..workers.pool import WorkerPool, default_size, needed, start_pool
from ..workers.reload import Reloader
from .calls import Calls
from .changes import Changes
from .child import FunctionInfo
from .journal import Journal
from .schedule import Schedule
from .shares import Shares
from .triggers import Function, Trigger
from .webhooks import HttpRoute, Reply, WebhookSettings, Webhooks

log = logging.getLogger("hapta.functions")

# What a function's ctx may run through the gateway: the records ops, and a backup (admin.backup: a function
# that acts as admin, a scheduled one or @call(admin=True), may start one). The gateway builds the table ctx.records
# runs on from these (RunOp) before it builds Functions.
RECORD_OPS = frozenset({"records.get", "records.list", "records.create", "records.update", "records.delete",
                        "records.batch", "records.aggregate", "admin.backup"})

# run_op(peer, op, args) -> the reply ({ok, data} or {ok: false, error}), through the gateway's own request path
RunOp = Callable[[Peer, str, dict[str, Any]], Awaitable[dict[str, Any]]]
# publish(channel, data) -> False when too large (live.channels.Channels.announce)
PublishTo = Callable[[str, Any], Awaitable[bool]]
# hold([(channel, data), ...]) -> messages from the server, checked, that a transaction writes to go out when it
# commits (live.channels.Channels.hold_from_server; HaptaError names the entry it refuses)
HoldFor = Callable[[list[tuple[str, Any]]], Held]

# Calls that may wait for a free function worker, in all; past that UNAVAILABLE at once. Each caller but admins and
# the gateway's own runs is held to far less by its share (WAITING_PER_SHARE calls per worker of it): this bounds
# the rest (App.hooks.queue bounds the hook workers' queue only).
FUNCTION_QUEUE = 1024


def _read(report: Any) -> dict[str, FunctionInfo]:
    return msgspec.convert(report, dict[str, FunctionInfo])


# The function workers: they import functions/ (hapta.functions.child) with only the allowlisted environment (a
# function gets its declared secrets per call), each within App.functions.memory, and callers share them
# (functions.shares: start_workers). Their series in /metrics carry pool="functions",
# upstream="functions".
FUNCTION_WORKERS = Kind(name="functions", noun="function", program="hapta.functions.child",
                        logger="hapta.functions", upstream="functions",
                        label=lambda collection, name: f"function {name}", read=_read)


async def start_workers(app: App, folder: Path, *, reload: bool = False,
                        user: WorkerUser | None = None) -> WorkerPool | None:
    """Start the function workers for functions/ (none when it holds no module and nothing is to be reloaded), as
    `user` under a root gateway, and wait until each has imported it. ConfigError when it does not load or the
    shares are out of bounds; what the functions declare is checked when Functions is built from the pool."""
    if not needed(folder, reload):
        return None
    bounds = app.functions
    size = bounds.workers or default_size()
    try:
        shares = Shares.of(size, bounds.per_principal, bounds.per_address, bounds.http_workers,
                           bounds.http_per_address)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    kind = replace(FUNCTION_WORKERS, memory_limit=bounds.memory * 2**20 if bounds.memory else None,
                   callers=shares.caller)
    return await start_pool(kind, folder, set(), size=size, timeout=bounds.timeout,
                            queue_limit=FUNCTION_QUEUE, user=user, reload=reload)


class Functions:
    def __init__(self, pool: WorkerPool | None, app: App, db: Database, collections: set[str], *, run_op: RunOp,
                 publish: PublishTo, hold: HoldFor, reload: bool = False):
        """The functions the pool's workers reported (`pool` None: the app has no functions/), checked now
        (ConfigError), with what their ctx reaches: `run_op` runs ctx.records' ops (RECORD_OPS) through the
        gateway's request path, `publish` sends ctx.publish's messages to a channel, `hold` checks the messages
        of ctx.transaction's `publish`. Their triggers start with `start`, once the gateway serves."""
        self.pool = pool
        self.db = db
        self.app = app
        self._database = db.fetch_for_app   # runs ctx.sql
        self._run_op = run_op
        self._publish = publish
        self._hold = hold
        # the longest a function may declare: a call's reply has App.connections.request_timeout
        self._longest = min(app.functions.timeout, app.connections.request_timeout)
        self._chores: set[asyncio.Task] = set()
        self.journal = Journal(db)
        self.calls = Calls(self, self.journal)
        self.schedule = Schedule(db, self)
        self.changes = Changes(db, self, collections, run_op, tuple(app.functions.retries))
        self.webhooks = Webhooks(db, self, self.journal, WebhookSettings.of(app), app)
        self.triggers: dict[str, Trigger] = {t.kind: t for t in (self.calls, self.schedule, self.changes,
                                                                 self.webhooks)}
        self.functions: dict[str, Function] = {}
        self._use(self._declared(pool.table) if pool is not None else {})
        self._reloader = Reloader(pool.folder, self._reload) if reload and pool is not None else None
        if pool is not None:
            log.info("%d function workers ready; functions: %s", pool.size, ", ".join(sorted(self.functions))
                     or "none")

    def _declared(self, table: dict[str, FunctionInfo]) -> dict[str, Function]:
        """The functions as the workers reported them, each checked (ConfigError names the first refused)."""
        return {name: self._function(name, info) for name, info in table.items()}

    def _function(self, name: str, info: FunctionInfo) -> Function:
        function = Function(name, None, info.allow, info.timeout, tuple(info.secrets), info.file, info.admin,
                            tuple((kind, spec, option) for kind, spec, option in info.triggers))
        for kind, spec, option in function.triggers:
            trigger = self.triggers.get(kind)
            if trigger is None:
                raise ConfigError(f"functions/{info.file}: {name} declares a trigger this gateway does not know: "
                                  f"{kind!r}")
            trigger.check(function, spec, option)
        own = refused_names(info.secrets, self.app)
        if own:
            raise ConfigError(f"functions/{info.file}: {name} may not read {own[0]}: the gateway's own settings and "
                              "credentials never reach a function")
        if info.timeout > self._longest:
            raise ConfigError(f"functions/{info.file}: {name} declares a timeout of {info.timeout:g} s, more than "
                              f"App.functions.timeout and App.connections.request_timeout allow "
                              f"({self._longest:g} s)")
        return replace(function, allow=compile_allow(name, info.allow))

    def _use(self, functions: dict[str, Function]) -> None:
        """The functions as declared now, and the triggers that follow from them."""
        self.functions = functions
        for trigger in self.triggers.values():
            trigger.use(functions)

    def start(self) -> None:
        """Once the gateway serves: the triggers that run by themselves (@every's loop, @on's consumers: each
        process runs them; claims and leases keep each tick and each change to one process), and --reload."""
        for trigger in self.triggers.values():
            trigger.start()
        if self._reloader is not None:
            self._reloader.start()

    async def _reload(self) -> None:
        """--reload: a changed functions/ file gets new workers and the triggers it declares now; a version that
        does not load (or declares what it may not) leaves the running one in place, workers and triggers."""
        assert self.pool is not None
        try:
            functions = await self.pool.restart(self._declared)
        except (LoadError, ConfigError) as exc:
            log.error("functions/ does not load, the running ones stay: %s", exc)
            return
        for trigger in self.triggers.values():
            await trigger.close()
        self._use(functions)
        for trigger in self.triggers.values():
            trigger.start()
        log.info("functions reloaded: %s", ", ".join(sorted(functions)) or "none")

    async def close(self) -> None:
        if self._reloader is not None:
            await self._reloader.close()
        if self._chores:
            await asyncio.wait(list(self._chores), timeout=1.0)
        for trigger in self.triggers.values():
            await trigger.close()
        if self.pool is not None:
            await self.pool.close()

    # ---- what the ops and the port reach (ops/functions.py, gateway/server.py) ---------------------------------

    async def call(self, peer: Peer, name: str, args: Any) -> Any:
        """functions.call (calls.Calls)."""
        return await self.calls.call(peer, name, args)

    def http_routes(self, path: str) -> dict[str, HttpRoute]:
        """The @http routes declared at `path`: method -> route (hapta.routes.Routes reads them)."""
        return self.webhooks.at(path)

    async def http(self, method: str, target: str, headers: dict[str, str], body: bytes,
                   address: str | None) -> Reply:
        """An HTTP request for an @http function, its body read (webhooks.Webhooks.http)."""
        return await self.webhooks.http(method, target, headers, body, address)

    async def answer(self, route: HttpRoute, target: str, headers: dict[str, str], body: bytes,
                     address: str | None) -> Reply:
        """A request for `route`, its body read within the route's bounds (webhooks.Webhooks.answer)."""
        return await self.webhooks.answer(route, target, headers, body, address)

    async def sweep(self) -> None:
        """Forget the webhook deliveries past App.functions.http_dedupe_window (on the gateway's sweep clock)."""
        await self.webhooks.sweep()

    async def dead(self, name: str, limit: int = 50) -> list[dict[str, Any]]:
        """The changes an @on function gave up on, oldest first (functions.dead)."""
        return await self.changes.dead(name, limit)

    async def retry(self, dead_id: int) -> str:
        """Run a dead change again now (functions.retry); on success it leaves the dead letters."""
        return await self.changes.retry(dead_id)

    async def runs(self, name: str, limit: int = 50) -> list[dict[str, Any]]:
        """The newest runs of a function (functions.runs)."""
        return await self.journal.runs(name, limit)

    async def describe(self) -> list[dict[str, Any]]:
        """What functions.list shows an admin: each function, its triggers, who may call it, its timeout and secret
        names, its newest run ({at, outcome} or None) and how many dead letters wait for it."""
        names = list(self.functions)
        last = await self.journal.last(names)
        dead = await self.changes.waiting(names)
        return [{"name": f.name, "triggers": self._triggers(f), "allow": f.allow_text, "timeout": f.timeout,
                 "secrets": list(f.secrets), "admin": f.admin, "file": f.file, "last_run": last.get(f.name),
                 "dead": dead.get(f.name, 0)} for f in sorted(self.functions.values(), key=lambda f: f.name)]

    def status(self) -> dict[str, Any]:
        """What the admin op functions.status shows: the function workers as hooks.status shows the hook workers
        (size, live, busy, queued, generation and the counters, `limited` among them), and each function's
        triggers."""
        functions = {f.name: self._triggers(f) for f in sorted(self.functions.values(), key=lambda f: f.name)}
        if self.pool is None:
            return {"size": 0, "live": 0, "busy": 0, "queued": 0, "functions": functions}
        return {**self.pool.status(), "functions": functions}

    def _triggers(self, function: Function) -> list[str]:
        return [self.triggers[kind].describe(spec, option) for kind, spec, option in function.triggers]

    # ---- runs (triggers.Runs: what the triggers use) -----------------------------------------------------------

    async def invoke(self, function: Function, who: Who, acting: Peer, argument: Any) -> Outcome:
        assert self.pool is not None
        secrets = {key: os.environ[key] for key in function.secrets if key in os.environ}

        async def serve(message: Any) -> Answer:
            return await self._serve(acting, message)
        return await self.pool.call("", function.name, who, [argument], self._database, timeout=function.timeout,
                                    secrets=secrets, serve=serve)

    async def recorded(self, function: Function, acting: Peer, trigger: str, argument: Any,
                       run: int | None = None) -> tuple[Outcome | None, HaptaError | None]:
        if run is None:
            run = await self.journal.begin(function.name, trigger)
        principal = acting.principal
        who = Who(principal.user_id, principal.role, f"functions.{trigger.split()[0]}", "", acting.address)
        outcome, error = None, None
        try:
            outcome = await self.invoke(function, who, acting, argument)
        except HaptaError as failed:
            error = failed
        if error is not None:
            result, message = error.code.lower(), error.message
        elif isinstance(outcome, Denied):
            result, message = "denied", outcome.message[:500]
        elif isinstance(outcome, Raised):
            log.error("function %s (%s) failed:\n%s", function.name, trigger, outcome.traceback.rstrip())
            result, message = "failed", outcome.traceback.strip().splitlines()[-1][:500]
        else:
            result, message = "ok", None
        await self.journal.finish(function.name, run, result, message, getattr(outcome, "logs", []))
        return outcome, error

    async def background(self, function: Function, trigger: str, argument: Any) -> str:
        outcome, error = await self.recorded(function, SocketPeer(Principal(ADMIN)), trigger, argument)
        if error is not None:
            return error.code.lower()
        return "denied" if isinstance(outcome, Denied) else "failed" if isinstance(outcome, Raised) else "ok"

    def later(self, work: Awaitable[Any]) -> asyncio.Task:
        task = asyncio.ensure_future(work)
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)
        return task

    async def _serve(self, peer: Peer, message: Any) -> Answer:
        """ctx.records (an op through the gateway's request path, as `peer`), ctx.publish and ctx.transaction."""
        if isinstance(message, Publish):
            if not NAME.fullmatch(message.channel):
                return Answer(message.call, code=BAD_REQUEST, message=f"{message.channel[:64]!r} is not a channel name")
            try:
                sent = await self._publish(message.channel, message.data)
            except BusDown:
                return Answer(message.call, code=UNAVAILABLE, message="channels are unavailable right now")
            return Answer(message.call) if sent else Answer(message.call, code=TOO_LARGE, message="too large")
        if isinstance(message, Transaction):
            held = self._hold(message.publish)   # refused (HaptaError): the function's OpError, nothing runs
            try:
                results = await self.db.transaction_for_app(message.statements,
                                                            then=held.write if held.notices else None)
            except asyncpg.PostgresError as exc:   # the function's own SQL failed: it decides what that means
                return Answer(message.call, exc.sqlstate, code=SQL_FAILED, message=str(exc) or type(exc).__name__)
            return Answer(message.call, [[dict(row) for row in rows] for rows in results])
        if message.op not in RECORD_OPS:
            return Answer(message.call, code=BAD_REQUEST,
                          message=f"ctx.records runs records.* ops, not {message.op[:64]}")
        reply = await self._run_op(peer, message.op, message.args)
        if reply["ok"]:
            return Answer(message.call, reply["data"])
        return Answer(message.call, code=reply["error"]["code"], message=reply["error"]["message"])
