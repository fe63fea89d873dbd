"""The gateway's side of functions/: its own pool of workers, who may call what, and calls.

The workers import functions/ and report what each function declares (hooks.messages.FunctionInfo); the gateway
compiles the `allow` rules and checks the declared secrets once, at start. A call is then: the function exists
(else NOT_FOUND), the caller passes its rule (FORBIDDEN), a worker runs it with the values of the secrets it
declared, read from the gateway's environment at that moment, and within its timeout (TIMEOUT: the worker is
killed and replaced). The function's own failures reach the client as RULE_DENIED (it raised Deny) or INTERNAL
(anything else; the traceback is logged for the operator, never sent).
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import urllib.parse
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable

import asyncpg
import msgspec

from ..access import NAME, compile_allow, may_call
from ..config import App, ConfigError
from ..hooks.loader import RulesError
from ..hooks.service import RELOAD_POLL, snapshot
from ..hooks.messages import SQL_FAILED, Answer, Denied, Raised, Transaction, Who
from ..hooks.messages import Publish as Publish_
from ..hooks.workers import Shares, WorkerPool, default_size
from ..isolation import WorkerUser, refused_names
from ..live.bus import BusDown
from ..principal import ADMIN, ANON, Peer, Principal, SocketPeer
from ..routes import reserved
from ..store.failures import UPSTREAM_ERRORS
from ..store.postgres import Database
from .changes import ChangeTriggers, Watch
from .schedule import Entry, Schedule
from .webhooks import (MAX_DELIVERY_ID, TEXT, Deliveries, HttpRoute, Reply, WebhookSettings, accepted, answer_of,
                       text)
from ..protocol.errors import (BAD_REQUEST, FORBIDDEN, INTERNAL, NOT_FOUND, RULE_DENIED, TIMEOUT, TOO_LARGE,
                               UNAVAILABLE, HaptaError)

log = logging.getLogger("hapta.functions")

FUNCTIONS = "functions"   # Invoke.collection of a function call (hooks.worker.FUNCTIONS)


# What a function's ctx.records may run: the records ops, which need no socket of their own.
# What a function's ctx may run through the gateway: the records ops, and a backup (admin.backup: a function
# that acts as admin, a scheduled one or @call(admin=True), may start one).
RECORD_OPS = frozenset({"records.get", "records.list", "records.create", "records.update", "records.delete",
                        "records.batch", "records.aggregate", "admin.backup"})

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
    triggers: tuple[tuple[str, str, str], ...]   # (kind, spec, option), as hapta.functions declares them

    @property
    def callable(self) -> bool:
        return any(kind == "call" for kind, _, _ in self.triggers)

    def trigger_names(self) -> list[str]:
        return [kind if kind == "call" else f"{kind} {spec} {option}" if kind == "on" else f"{kind} {spec}"
                for kind, spec, option in self.triggers]


KEEP_RUNS = 100   # rows of hapta.function_runs kept per function
# A webhook delivery claimed by a run that never answered (its process died) is taken over by a retry after the
# function's timeout and this many seconds more.
STALE_DELIVERY = 60.0


class Functions:
    def __init__(self, pool: WorkerPool | None, functions: dict[str, Function], db: Database,
                 retries: tuple[float, ...] = (1, 2, 4, 8), webhooks: WebhookSettings = WebhookSettings()):
        self.pool = pool            # None: the app has no functions/
        self.db = db
        self.retries = retries
        self.webhooks = webhooks
        self.deliveries = Deliveries(db, webhooks.dedupe_window)
        self._database = db.fetch_for_app   # runs ctx.sql
        self._run_op: RunOp | None = None
        self._publish: Publish | None = None
        self._chores: set[asyncio.Task] = set()
        self._watcher: asyncio.Task | None = None
        self._use(functions)

    def _use(self, functions: dict[str, Function]) -> None:
        """The functions as declared now, and the triggers that follow from them."""
        self.functions = functions
        self.schedule = Schedule(self.db, [Entry(f.name, spec, option) for f in functions.values()
                                           for kind, spec, option in f.triggers if kind == "every"], self._scheduled)
        self.routes: dict[str, dict[str, HttpRoute]] = {}   # path -> method -> the @http route there
        for f in functions.values():
            for kind, spec, option in f.triggers:
                if kind == "http":
                    route = HttpRoute.declared(f.name, spec, option, self.webhooks.max_body)   # _function checked it
                    self.routes.setdefault(route.path, {})[route.method] = route
        self.changes = ChangeTriggers(self.db, [Watch(f.name, spec, frozenset(option.split(","))) for f in
                                                functions.values() for kind, spec, option in f.triggers
                                                if kind == "on"], self._changed, self.retries)

    def wire(self, run_op: RunOp, publish: Publish) -> None:
        """What ctx.records and ctx.publish reach: the gateway's dispatch, the channels (the composition root
        hands them over once both exist)."""
        self._run_op, self._publish = run_op, publish

    @classmethod
    async def start(cls, app: App, folder: Path, db: Database, collections: set[str] = frozenset(), *,
                    reload: bool = False, user: WorkerUser | None = None) -> "Functions":
        """Start the function workers for functions/ (none when it holds no module and nothing is to be reloaded),
        as `user` under a root gateway; with `reload`, new workers and triggers whenever a file there changes."""
        if not reload and not any(folder.glob("*.py")):
            return cls(None, {}, db)
        memory = app.functions.memory * 2**20 if app.functions.memory else None
        try:
            size = app.functions.workers or default_size()
            shares = Shares.of(size, app.functions.per_principal, app.functions.per_address, app.functions.http_workers,
                               app.functions.http_per_address)
            pool = WorkerPool(folder, set(), size=size, timeout=app.functions.timeout, queue_limit=app.hooks.queue,
                              kind=FUNCTIONS, memory_limit=memory, shares=shares, user=user)
            await pool.start()
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        except RulesError as exc:
            raise ConfigError(f"functions/ does not load: {exc}") from None
        webhooks = WebhookSettings.of(app)
        try:
            longest = min(app.functions.timeout, app.connections.request_timeout)   # a call's reply has request_timeout
            functions = {name: _function(name, info, longest, collections, app, webhooks)
                         for name, info in pool.functions.items()}
        except ConfigError:
            await pool.close()
            raise
        log.info("%d function workers ready; functions: %s", pool.size, ", ".join(sorted(functions)) or "none")
        service = cls(pool, functions, db, tuple(app.functions.retries), webhooks)
        if reload:
            service._watcher = asyncio.ensure_future(service._reload_on_change(folder, longest, collections, app))
        return service

    async def _reload_on_change(self, folder: Path, longest: float, collections: set[str], app: App) -> None:
        """--reload: a changed functions/ file gets new workers and the triggers it declares now; a version that
        does not load (or declares what it may not) leaves the running one in place."""
        assert self.pool is not None
        seen = snapshot(folder)
        while True:
            await asyncio.sleep(RELOAD_POLL)
            now = snapshot(folder)
            if now == seen:
                continue
            seen = now
            try:
                await self.pool.restart()
                functions = {name: _function(name, info, longest, collections, app, self.webhooks)
                             for name, info in self.pool.functions.items()}
            except (RulesError, ConfigError) as exc:
                log.error("functions/ does not load, the running ones stay: %s", exc)
                continue
            await self.schedule.close()
            await self.changes.close()
            self._use(functions)
            self.start_schedule()
            log.info("functions reloaded: %s", ", ".join(sorted(functions)) or "none")

    def start_schedule(self) -> None:
        """After the gateway is wired: the @every loop and the @on consumers (each process runs them; claims and
        leases keep each tick and each change to one process)."""
        self.schedule.start()
        self.changes.start()

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        if self._chores:
            await asyncio.wait(list(self._chores), timeout=1.0)
        await self.schedule.close()
        await self.changes.close()
        if self.pool is not None:
            await self.pool.close()

    async def call(self, peer: Peer, name: str, args: Any) -> Any:
        function = self.functions.get(name)
        if function is None or self.pool is None or not function.callable:
            raise HaptaError(NOT_FOUND, f"no function {name[:64]!r}")
        principal = peer.principal
        if not may_call(function.allow, principal):
            raise HaptaError(FORBIDDEN, f"you may not call {name}")
        secrets = {key: os.environ[key] for key in function.secrets if key in os.environ}
        who = Who(principal.user_id, principal.role, "functions.call", FUNCTIONS, peer.address)
        acting = SocketPeer(Principal(ADMIN), peer.address) if function.admin else peer

        async def serve(message: Any) -> Answer:
            return await self._serve(acting, message)
        started = datetime.now(timezone.utc)
        try:
            outcome = await self.pool.call(FUNCTIONS, name, who, [args], self._database, timeout=function.timeout,
                                           secrets=secrets, serve=serve)
        except HaptaError as error:
            self._later(self._record_call(function, started, error.code.lower(), error.message, []))
            raise
        if isinstance(outcome, Denied):
            self._later(self._record_call(function, started, "denied", outcome.message[:500], outcome.logs))
            raise HaptaError(RULE_DENIED, outcome.message[:500] or "refused by the function")
        if isinstance(outcome, Raised):
            log.error("function %s failed:\n%s", name, outcome.traceback.rstrip())
            self._later(self._record_call(function, started, "failed",
                                          outcome.traceback.strip().splitlines()[-1][:500], outcome.logs))
            raise HaptaError(INTERNAL, "internal error")
        if outcome.logs:
            self._later(self._record_call(function, started, "ok", None, outcome.logs))
        return outcome.value

    def _later(self, work: Any) -> None:
        """Bookkeeping that the reply does not wait for."""
        task = asyncio.ensure_future(work)
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    async def _scheduled(self, name: str, tick: datetime) -> None:
        """Run one claimed tick of an @every function, recorded in hapta.function_runs."""
        function = self.functions[name]
        trigger = next(f"every {spec}" for kind, spec, _ in function.triggers if kind == "every")
        await self.background(function, trigger, {"at": tick.isoformat()})

    def http_route(self, path: str) -> bool:
        return path in self.routes

    def http_routes(self, path: str) -> dict[str, HttpRoute]:
        """The @http routes declared at `path`: method -> route (hapta.routes.Routes reads them)."""
        return self.routes.get(path, {})

    async def http(self, method: str, target: str, headers: dict[str, str], body: bytes,
                   address: str | None) -> Reply:
        """Answer an HTTP request for an @http function whose body is already read (a GET's, empty): 404 or 405
        when nothing is declared there, else `answer`."""
        methods = self.routes.get(target.partition("?")[0], {})
        route = methods.get(method)
        if route is None:
            if methods:
                return 405, {"Allow": ", ".join(sorted(methods)), **TEXT}, b"method not allowed\n"
            return text(404, "not found")
        return await self.answer(route, target, headers, body, address)

    async def answer(self, route: HttpRoute, target: str, headers: dict[str, str], body: bytes,
                     address: str | None) -> Reply:
        """One answer to a request for `route` whose body was read within the route's bounds: refused before
        anything runs or is written (400, 403 for a bad signature), a retried delivery's first answer, the
        function's answer, or, when it has not answered within App.functions.http_answer_within, 202 with its run
        id (the run goes on and is recorded in functions.runs). 403 when it raised Deny, 500 when it failed,
        503 or 504 when its workers were busy or it ran out of time."""
        function = self.functions.get(route.function)
        if function is None or self.pool is None:
            return text(404, "not found")
        path, _, query = target.partition("?")
        try:
            fields = dict(urllib.parse.parse_qsl(query, max_num_fields=100))
        except ValueError:
            return text(400, "bad query string")
        refusal = route.refuses(headers, body)
        if refusal is not None:
            return refusal
        delivery = route.delivery(headers)
        if delivery is not None and len(delivery) > MAX_DELIVERY_ID:
            return text(400, f"a delivery id is at most {MAX_DELIVERY_ID} characters")
        trigger = f"http {route.method} {route.path}"
        run: int | None = None
        try:
            if delivery is not None:
                claim = await self.deliveries.claim(route.key, delivery, function.timeout + STALE_DELIVERY)
                if not claim.ours:   # a retry: the first run's answer, or that it still runs
                    return claim.answer or accepted(claim.run)
                run = claim.run
            run = await self._begin(function, trigger, run)
        except UPSTREAM_ERRORS as exc:
            log.warning("webhook %s not run: the database failed (%s)", route.key, type(exc).__name__)
            if delivery is not None and run is not None:
                self._later(self._let_go(route, delivery, run))
            return text(503, "unavailable", **{"Retry-After": "1"})
        request = {"method": route.method, "path": path, "query": fields, "headers": headers, "body": body}
        acting = SocketPeer(Principal(ADMIN if function.admin else ANON), address)
        task = asyncio.ensure_future(self._webhook(function, route, acting, trigger, request, run, delivery))
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)
        done, _ = await asyncio.wait({task}, timeout=self.webhooks.answer_within)
        return task.result() if done else accepted(run)

    async def _webhook(self, function: Function, route: HttpRoute, acting: Peer, trigger: str, request: Any,
                       run: int, delivery: str | None) -> Reply:
        """A webhook's run, to its end whether or not its request still waits; its answer kept for retries."""
        try:
            outcome, error = await self._invoke(function, acting, trigger, request, run=run)
            reply = _reply(outcome, error)
        except UPSTREAM_ERRORS as exc:   # recording the run's end failed
            log.warning("webhook %s: the run's record failed (%s)", route.key, type(exc).__name__)
            reply = text(503, "unavailable", **{"Retry-After": "1"})
        except Exception:   # a bug of ours; the request still gets its one answer
            log.error("webhook %s failed", route.key, exc_info=True)
            reply = text(500, "internal error")
        if delivery is not None:
            try:
                await self.deliveries.answered(route.key, delivery, run, reply)
            except UPSTREAM_ERRORS as exc:
                log.warning("webhook %s: its delivery's answer was not kept (%s)", route.key, type(exc).__name__)
        return reply

    async def sweep(self) -> None:
        """Forget the webhook deliveries past App.functions.http_dedupe_window (on the gateway's sweep clock)."""
        if any(route.delivery_id_header for methods in self.routes.values() for route in methods.values()):
            await self.deliveries.prune()

    async def _let_go(self, route: HttpRoute, delivery: str, run: int) -> None:
        try:
            await self.deliveries.answered(route.key, delivery, run, text(503, "unavailable"))
        except UPSTREAM_ERRORS:
            pass   # the claim goes stale and is taken over

    async def _begin(self, function: Function, trigger: str, run: int | None = None) -> int:
        """A run's row in hapta.function_runs, written once the run really starts (never for a refused request);
        with `run`, under that id (a webhook delivery claimed it)."""
        if run is None:
            return await self.db.fetchval("INSERT INTO hapta.function_runs (name, trigger) VALUES ($1, $2) "
                                          "RETURNING id", function.name, trigger)
        await self.db.execute("INSERT INTO hapta.function_runs (id, name, trigger) VALUES ($1, $2, $3)", run,
                              function.name, trigger)
        return run

    async def _invoke(self, function: Function, acting: Peer, trigger: str, argument: Any,
                      run: int | None = None) -> tuple[Any, HaptaError | None]:
        """Run a function with no socket caller, recorded in hapta.function_runs (as `run`, when its row is
        written already): (its outcome, or the pool's error: TIMEOUT, UNAVAILABLE)."""
        assert self.pool is not None
        if run is None:
            run = await self._begin(function, trigger)
        principal = acting.principal
        who = Who(principal.user_id, principal.role, f"functions.{trigger.split()[0]}", FUNCTIONS, acting.address)

        async def serve(message: Any) -> Answer:
            return await self._serve(acting, message)
        secrets = {key: os.environ[key] for key in function.secrets if key in os.environ}
        outcome, error = None, None
        try:
            outcome = await self.pool.call(FUNCTIONS, function.name, who, [argument], self._database,
                                           timeout=function.timeout, secrets=secrets, serve=serve)
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
        await self.db.execute("UPDATE hapta.function_runs SET finished = now(), outcome = $2, message = $3, "
                              "logs = $4 WHERE id = $1", run, result, message, getattr(outcome, "logs", []))
        await self._prune_runs(function.name)
        return outcome, error

    async def _prune_runs(self, name: str) -> None:
        await self.db.execute("DELETE FROM hapta.function_runs WHERE name = $1 AND id < (SELECT min(id) FROM "
                              "(SELECT id FROM hapta.function_runs WHERE name = $1 ORDER BY id DESC LIMIT $2) AS kept)",
                              name, KEEP_RUNS)

    async def _record_call(self, function: Function, started: datetime, outcome: str, message: str | None,
                           logs: list[str]) -> None:
        """A functions.call worth seeing again (it failed, or logged): one row in functions.runs. Calls that
        succeed silently cost no write."""
        try:
            await self.db.execute("INSERT INTO hapta.function_runs (name, trigger, started, finished, outcome, "
                                  "message, logs) VALUES ($1, 'call', $2, now(), $3, $4, $5)",
                                  function.name, started, outcome, message, logs)
            await self._prune_runs(function.name)
        except UPSTREAM_ERRORS as exc:   # the call's answer does not wait on its record
            log.warning("could not record a run of %s: %s", function.name, type(exc).__name__)

    async def _changed(self, name: str, change: dict[str, Any]) -> str:
        """Run an @on function for one change from the log, with the record as it is now (None once gone)."""
        function = self.functions[name]
        collection, record_id = change.get("t"), change.get("id")
        record = None
        if change.get("a") != "delete" and self._run_op is not None:
            reply = await self._run_op(SocketPeer(Principal(ADMIN)), "records.get",
                                       {"collection": collection, "id": str(record_id)})
            record = reply["data"] if reply["ok"] else None
        argument = {"collection": collection, "action": change.get("a"), "id": record_id,
                    "position": change["position"], "record": record}
        return await self.background(function, f"on {collection} {change.get('a')}", argument)

    async def background(self, function: Function, trigger: str, argument: Any) -> str:
        """Run a function with no caller (a schedule's tick, a record change), as admin, recorded as a run.
        Returns the outcome: ok | denied | failed | timeout | unavailable."""
        outcome, error = await self._invoke(function, SocketPeer(Principal(ADMIN)), trigger, argument)
        if error is not None:
            return error.code.lower()
        return "denied" if isinstance(outcome, Denied) else "failed" if isinstance(outcome, Raised) else "ok"

    async def dead(self, name: str, limit: int = 50) -> list[dict[str, Any]]:
        """The changes an @on function gave up on, oldest first (functions.dead)."""
        rows = await self.db.fetch("SELECT id, pos, change, error, at FROM hapta.function_dead WHERE name = $1 "
                                   "ORDER BY id LIMIT $2", name, limit)
        return [{"id": r["id"], "position": r["pos"], "change": json.loads(r["change"]), "error": r["error"],
                 "at": r["at"]} for r in rows]

    async def retry(self, dead_id: int) -> str:
        """Run a dead change again now (functions.retry); on success it leaves the dead letters."""
        row = await self.db.fetchrow("SELECT name, pos, change FROM hapta.function_dead WHERE id = $1", dead_id)
        if row is None or row["name"] not in self.functions or self.pool is None:
            raise HaptaError(NOT_FOUND, f"no dead letter {dead_id}")
        change = json.loads(row["change"])
        if "t" not in change:   # a gap of pruned changes: nothing left to run
            raise HaptaError(BAD_REQUEST, "these changes were pruned from the log: they cannot be run again")
        outcome = await self._changed(row["name"], {"position": row["pos"], **change})
        if outcome == "ok":
            await self.db.execute("DELETE FROM hapta.function_dead WHERE id = $1", dead_id)
        return outcome

    async def runs(self, name: str, limit: int = 50) -> list[dict[str, Any]]:
        """The newest background runs of a function (functions.runs)."""
        rows = await self.db.fetch("SELECT id, trigger, started, finished, outcome, message, logs "
                                   "FROM hapta.function_runs WHERE name = $1 ORDER BY id DESC LIMIT $2", name, limit)
        return [{"id": r["id"], "trigger": r["trigger"], "started": r["started"], "finished": r["finished"],
                 "duration_ms": None if r["finished"] is None else
                 round((r["finished"] - r["started"]).total_seconds() * 1000, 1),
                 "outcome": r["outcome"], "message": r["message"], "logs": list(r["logs"])} for r in rows]

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
        if isinstance(message, Transaction):
            try:
                results = await self.db.transaction_for_app(message.statements)
            except asyncpg.PostgresError as exc:   # the function's own SQL failed: it decides what that means
                return Answer(message.call, exc.sqlstate, code=SQL_FAILED, message=str(exc) or type(exc).__name__)
            return Answer(message.call, [[dict(row) for row in rows] for rows in results])
        if message.op not in RECORD_OPS:
            return Answer(message.call, code=BAD_REQUEST, message=f"ctx.records runs records.* ops, not {message.op[:64]}")
        reply = await self._run_op(peer, message.op, message.args)
        if reply["ok"]:
            return Answer(message.call, reply["data"])
        return Answer(message.call, code=reply["error"]["code"], message=reply["error"]["message"])

    async def describe(self) -> list[dict[str, Any]]:
        """What functions.list shows an admin: each function, its triggers, who may call it, its timeout and secret
        names, its newest run ({at, outcome} or None) and how many dead letters wait for it."""
        last = {r["name"]: {"at": r["started"], "outcome": r["outcome"]} for r in await self.db.fetch(
            "SELECT DISTINCT ON (name) name, started, outcome FROM hapta.function_runs WHERE name = ANY($1) "
            "ORDER BY name, id DESC", list(self.functions))}
        dead = {r["name"]: r["n"] for r in await self.db.fetch(
            "SELECT name, count(*) AS n FROM hapta.function_dead WHERE name = ANY($1) GROUP BY name",
            list(self.functions))}
        return [{"name": f.name, "triggers": f.trigger_names(), "allow": f.allow_text, "timeout": f.timeout,
                 "secrets": list(f.secrets), "admin": f.admin, "file": f.file, "last_run": last.get(f.name),
                 "dead": dead.get(f.name, 0)} for f in sorted(self.functions.values(), key=lambda f: f.name)]


def _reply(outcome: Any, error: HaptaError | None) -> Reply:
    """A webhook run's outcome as its HTTP answer."""
    if error is not None:
        status = {TIMEOUT: 504, UNAVAILABLE: 503}.get(error.code, 500)
        extra = {"Retry-After": str(max(1, round(error.retry_after or 1)))} if status == 503 else {}
        return status, {**TEXT, **extra}, f"{error.message}\n".encode()
    if isinstance(outcome, Denied):
        return text(403, outcome.message[:500] or "refused")
    if isinstance(outcome, Raised):
        return text(500, "internal error")
    return answer_of(outcome.value)


def _function(name: str, info: Any, longest: float, collections: set[str], app: App,
              webhooks: WebhookSettings = WebhookSettings()) -> Function:
    for kind, spec, option in info.triggers:
        if kind != "http":
            continue
        try:
            route = HttpRoute.declared(name, spec, option, webhooks.max_body)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"functions/{info.file}: {name}: {exc}") from None
        if reserved(route.path):
            raise ConfigError(f"functions/{info.file}: {name} declares {spec}, a path of the gateway's own")
        if route.max_body > webhooks.largest_body:
            raise ConfigError(f"functions/{info.file}: {name} declares max_body={route.max_body}, more than "
                              f"App.functions.http_memory_per_address ({webhooks.largest_body}) lets one request hold")
        if route.secret is not None and refused_names((route.secret,), app):
            raise ConfigError(f"functions/{info.file}: {name} may not sign with {route.secret}: the gateway's own "
                              "settings and credentials are no webhook's key")
    unknown = [spec for kind, spec, _ in info.triggers if kind == "on" and spec not in collections]
    if unknown:
        raise ConfigError(f"functions/{info.file}: {name} watches {unknown[0]!r}, which is no collection of "
                          "config.py")
    own = refused_names(info.secrets, app)
    if own:
        raise ConfigError(f"functions/{info.file}: {name} may not read {own[0]}: the gateway's own settings and "
                          "credentials never reach a function")
    if info.timeout > longest:
        raise ConfigError(f"functions/{info.file}: {name} declares a timeout of {info.timeout:g} s, more than "
                          f"App.functions.timeout and App.connections.request_timeout allow ({longest:g} s)")
    triggers = tuple(tuple(t) for t in info.triggers)
    return Function(name, compile_allow(name, info.allow), info.allow, info.timeout, tuple(info.secrets), info.file,
                    info.admin, triggers)
