"""The composition root: the app, its upstreams and services wired together, and the one place where a request
becomes a reply (dispatch). Everything below it is built here, from what it uses; nothing below imports it."""
from __future__ import annotations

import asyncio
import itertools
import logging
import string
import time
import urllib.parse
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

from .. import __version__, metrics
from ..access import Schemas, check_caller
from ..admin.requests import RequestLog
from ..admin.operations import Operations
from ..admin.service import Admin
from ..admin.warnings import Warnings
from ..auth import oauth2
from ..auth.accounts import Accounts
from ..auth.admins import AdminAccounts
from ..auth.hub import SessionHub
from ..auth.mail import Mailer, Templates
from ..auth.sessions import Policy, Sessions
from ..auth.tokens import TokenSigner, hash_secret
from ..auth.users import Users
from ..clock import Clock, wall
from ..config import DEFAULT_LIMITS, App, ConfigError, check_app
from ..files.service import FileService
from ..files.streams import Streams
from ..files.transfers import unavailable
from ..live.bus import BusDown
from ..store.files import StorageUnavailable
from ..functions.service import RECORD_OPS, Functions, start_workers
from ..hooks.service import Hooks
from ..isolation import WorkerUser, private_to_gateway, readable_by
from ..limits import Limiter, principal_key
from ..live import Live, install_triggers, read_cache
from ..live.cache import request_began, request_ended
from ..live.subscriptions import Subscriptions
from ..models import Model, build_models
from ..ops.accounts import AccountOps
from ..ops.admins import AdminAccountOps
from ..ops.auth import AuthOps
from ..ops.base import Call, OpSpec, guest_ops, table
from ..ops.files import FileOps
from ..ops.functions import FunctionOps
from ..ops.limits import LimitOps
from ..ops.live import LiveOps
from ..ops.misc import MiscOps
from ..ops.records import RecordOps
from ..ops.admin import AdminOps
from ..ops.operations import OperationsOps
from ..ops.hooks import HookOps
from ..principal import USER, Peer
from ..protocol.codec import Request, error_reply, ok_reply
from ..protocol.errors import BAD_REQUEST, FORBIDDEN, INTERNAL, TIMEOUT, UNAVAILABLE, UNKNOWN_OP, HaptaError
from ..query.check import without_guards
from ..query.schema import Schema
from ..records.service import Records
from ..records.writes import Writes
from ..records.view import RecordView
from ..settings import Settings, SettingsError, StartupError, database_parts, reason
from ..store import migrations
from ..store.migrations import create_triggers
from ..store.files import Storage
from ..store.listener import Listener
from ..store.postgres import Database, create_pool
from ..store import replicas as read_replicas
from ..store.shares import Gate, Work, done_working, working
from ..store.failures import OutageLog, failure, outcome_unknown
from ..store.introspection import introspect, known_search_configs
from ..workers.pool import WorkerPool
from .deadlines import Deadlines

log = logging.getLogger("hapta.gateway")


class Gateway:
    def __init__(self, app: App, settings: Settings, db: Database, schema: Schema, models: dict[str, Model],
                 hooks: Hooks, listener: Listener, storage: Storage | None = None,
                 function_workers: WorkerPool | None = None, app_dir: Path | None = None, clock: Clock = wall,
                 reload: bool = False, replicas: read_replicas.Replicas | None = None):
        """Every service, built from what it uses. `function_workers`: the started pool of functions/ (None: no
        functions), from which the Functions service is built here, with the ops its ctx.records may run.
        `replicas`: the read replicas records' cache misses may read from (None: all reads on `db`)."""
        self.app = app
        self.settings = settings
        self.db = db
        self.models = models
        self.hooks = hooks
        self.listener = listener
        self.clock = clock   # what tokens, principals and second factors expire by (hapta/clock.py)
        self.signer = TokenSigner(settings.jwt_secret, app.sessions.access_token_ttl, settings.jwt_retired_secrets,
                                  clock=clock)
        layers = {**DEFAULT_LIMITS, **app.limits, **({} if settings.production else app.development_limits)}
        limits = {name: limit for name, limit in layers.items() if limit is not None}
        self.limiter = Limiter(limits, settings.redis_url, prefix=settings.redis_prefix,
                               fallback=app.limits_fallback)
        policy = Policy(app.sessions.ttl, app.sessions.idle_timeout, app.sessions.refresh_reuse_interval)
        self.hub = SessionHub(Sessions(db, policy), self.signer, listener)
        cache = read_cache(settings, listener)
        schemas = Schemas(schema, without_guards(schema))
        # how records leave for one reader (before_send, expand): the same for records.* and realtime events
        view = RecordView(db, models, schemas, hooks, cache.read)
        # the change feed, realtime, channels and the read cache
        self.live = Live(app.realtime, app.channels, settings, db, models, listener, cache, view, clock)
        self.hub.watch(self.live.channels.recheck)   # memberships end with the principal they were joined as
        # Where browsers reach us (OAuth2 redirects, mail links, signed file URLs): HAPTA_PUBLIC_URL, else the
        # address the server listens on, which it sets once it knows it (cli.py).
        self.public_url: str | None = settings.public_url
        self.files = FileService(app.files, app.collections, settings, db, models, listener, storage,
                                 public_url=lambda: self.public_url)
        self.replicas = replicas
        self.records = Records(db, models, schemas, hooks, view, read=cache.read,
                               max_filter_cost=app.database.max_filter_cost,
                               reads=replicas.read if replicas is not None else None)
        # records.create naming uploads finished without a record takes them through the file streams, which write
        # through Writes in turn: asked for when a write names one, as public_url is
        self.writes = Writes(self.records, db, hooks, announce=self.hub.announce,
                             uploads=lambda *args: self.streams.claim_uploads(*args))
        self.streams = Streams(self.files, self.records, self.writes)   # files.* over the socket, per connection
        self.hub.also_sweep(lambda: self.writes.idempotency.prune(db))   # answers past their 24 hours
        self.deadlines = Deadlines(app.connections.request_timeout)
        # this process's sockets, for the dashboard (admin.connections): peer -> (its number, since when)
        self.peers: dict[Peer, tuple[int, float]] = {}
        self._numbers = itertools.count(1)
        self.mailer = Mailer(db, Templates(None if app_dir is None else app_dir / "mail"), app.app_name,
                             smtp_url=settings.smtp_url, sender=settings.mail_from, folder=settings.data_dir / "mail",
                             log_links=not settings.production)
        self.accounts = Accounts(db, Users(db), self.hub, self.mailer, self._throttle, link=self._mail_link,
                                 min_password_length=app.sessions.min_password_length,
                                 register_by_mail=app.require_verified, clock=clock)
        # the people who run the app from the dashboard (the admin key stays, for machines)
        self.admins = AdminAccounts(db, require_totp=settings.production, issuer=f"{app.app_name} admin",
                                    throttle=self._throttle, clock=clock, idle=app.sessions.admin_idle_timeout,
                                    lifetime=app.sessions.admin_ttl)
        self.hub.also_sweep(self.admins.sweep)
        record_ops = RecordOps(self.records, self.writes, self._charge, app.database.batch_max, self.live.channels)
        # a row per request (the dashboard's Logs page), and this process's recent warnings and errors
        self.requests = RequestLog(db, app.request_log)
        self.warnings = Warnings()
        self.outages = OutageLog(log)   # a failing upstream: a line now and then, not one per request
        admin = Admin(models, limits, self.limiter, self.live, self._connected, settings, __version__,
                      self.requests, self.warnings)
        admin_ops = AdminOps(admin)
        # the Backups, Settings and SQL pages; the functions (for scheduled backups) are built below
        operations_ops = OperationsOps(Operations(db, settings, admin, self.mailer, self.streams,
                                                  lambda: self.functions, app_dir))
        # What a function's ctx.records reaches: these ops only, through the same request path as a client's
        # (who may call them, their args, their limits: _run), as the caller or as admin.
        function_ops = {name: spec for name, spec in table(record_ops, operations_ops).items()
                        if name in RECORD_OPS}

        async def run_op(peer: Peer, op: str, args: dict[str, Any]) -> dict[str, Any]:
            return await self._reply(peer, Request(0, op, msgspec.Raw(msgspec.msgpack.encode(args))), True,
                                     function_ops)
        self.functions = Functions(function_workers, app, db, set(models), run_op=run_op,
                                   publish=self.live.channels.announce, hold=self.live.channels.hold_from_server,
                                   reload=reload)
        self.hub.also_sweep(self.functions.sweep)   # webhook deliveries past their window
        self.ops: dict[str, OpSpec] = table(
            AuthOps(self.accounts, self.hub, self.signer, anon_key=settings.anon_key, admin_key=settings.admin_key,
                    providers=app.oauth2, redirect_uri=lambda: self.oauth2_redirect_uri, admins=self.admins),
            AdminAccountOps(self.admins, self.hub),
            record_ops,
            FileOps(self.streams),
            LiveOps(Subscriptions(self.live, self.records, max_per_connection=app.realtime.per_connection),
                    self.live.channels, max_channels=app.realtime.channels_per_connection),
            LimitOps(self.limiter, GUEST_OPS),
            MiscOps(),
            AccountOps(self.accounts),
            HookOps(hooks),
            FunctionOps(self.functions),
            admin_ops,
            operations_ops)

    def opened(self, peer: Peer) -> None:
        """A socket is open (gateway/connection.py): it is listed by admin.connections until closed()."""
        self.peers[peer] = (next(self._numbers), time.time())

    def closed(self, peer: Peer) -> None:
        """The socket ended: forget it everywhere (sessions, subscriptions, channels, the list)."""
        self.peers.pop(peer, None)
        self.hub.closed(peer)
        self.live.disconnect(peer)

    def _connected(self) -> list[tuple[int, Peer, float]]:
        return [(number, peer, since) for peer, (number, since) in list(self.peers.items())]

    @classmethod
    async def start(cls, app: App, settings: Settings, dsn: str, app_dir: Path, *,
                    reload: bool = False) -> "Gateway":
        """Check config.py and load rules/ (a mistake in either stops the start in one line, before migrations
        change anything), then migrate, read the tables and start the services."""
        check_app(app, OP_NAMES)
        user = _worker_user(settings, app_dir)
        try:
            bounds = app.database
            pool = await create_pool(dsn, max_size=bounds.pool_size, statement_timeout=bounds.statement_timeout,
                                     lock_timeout=bounds.lock_timeout)
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StartupError(f"cannot reach the database ({database_parts(dsn)}): {reason(exc)} "
                               f"(check DATABASE_URL, or leave it unset for the embedded one)") from exc
        db = Database(pool, acquire_timeout=app.database.acquire_timeout,
                      gate=Gate(app.database.per_principal, app.database.per_address))
        hooks = function_workers = replicas = None
        try:
            if settings.database_replica_urls:
                replicas = await read_replicas.build(
                    db, dsn, settings.database_replica_urls, pool_size=bounds.pool_size,
                    statement_timeout=bounds.statement_timeout, lock_timeout=bounds.lock_timeout,
                    acquire_timeout=bounds.acquire_timeout,
                    gate=lambda: Gate(app.database.per_principal, app.database.per_address))
            # rules/ hooks run in worker processes; reload: new workers whenever a rules/ file changes
            hooks = await Hooks.start(app, app_dir / "rules", {c.name for c in app.collections}, db.fetch_for_app,
                                      reload=reload, user=user)
            async with pool.acquire() as conn:
                conn.mark_touched()   # the session changes here: reset before the pool hands it out
                await conn.execute("SET statement_timeout = 0; SET lock_timeout = 0")   # migrations take their time
                await migrations.migrate(conn, app_dir / "migrations")
                # updated and version kept current on every exposed table, whoever writes
                await create_triggers(conn, "touch", {c.name: "" for c in app.collections},
                                      {"hapta_touch": ("BEFORE UPDATE", "FOR EACH ROW")})
                infos = await introspect(conn, [c.name for c in app.collections])
                configs = sorted({config for c in app.collections for config in c.search.values()})
                unknown = set(configs) - await known_search_configs(conn, configs)
            if unknown:
                raise ConfigError(f"Collection.search names text-search configuration(s) the database lacks: "
                                  f"{', '.join(sorted(unknown))} (see pg_ts_config)")
            schema, models = build_models(app, infos)
            async with pool.acquire() as conn:
                await install_triggers(conn, models)   # the change feed's, with the columns the rules read
            # functions/ runs in worker processes of its own, started before the gateway that builds Functions on them
            function_workers = await start_workers(app, app_dir / "functions", reload=reload, user=user)
            gateway = cls(app, settings, db, schema, models, hooks, Listener(dsn), function_workers=function_workers,
                          app_dir=app_dir, reload=reload, replicas=replicas)
        except BaseException:
            if replicas is not None:
                await replicas.close()
            if function_workers is not None:
                await function_workers.close()
            if hooks is not None:
                await hooks.close()
            await pool.close()
            raise
        try:
            await gateway._start_services()
        except BaseException:
            await gateway.close()
            raise
        return gateway

    async def _start_services(self) -> None:
        """Everything that listens registered itself when built; now the listener starts, then the rest."""
        await self.listener.start()
        await self.files.start()
        self.hub.start()
        self.deadlines.start()
        self.mailer.start()
        await self.live.start()
        self.functions.start()
        self.requests.start()
        logging.getLogger("hapta").addHandler(self.warnings)

    async def close(self) -> None:
        logging.getLogger("hapta").removeHandler(self.warnings)
        await self.requests.close()   # what waits, written first, while the database is sure to be there
        await self.writes.close()   # combined creates under way land
        await self.hooks.close()   # first: after_* hooks under way may still need the database
        await self.functions.close()
        await self.deadlines.close()
        await self.mailer.close()
        await self.hub.close()
        await self.live.close()
        await self.files.close()
        await self.listener.close()
        if self.replicas is not None:
            await self.replicas.close()
        await self.db.close()
        await self.limiter.close()

    def _mail_link(self, action: str, token: str) -> str:
        return string.Template(self.app.mail_link).safe_substitute(
            public_url=self.public_url or "", action=action, token=urllib.parse.quote(token))

    async def _throttle(self, op: str, kind: str, value: str) -> None:
        """Count one attempt of `op` against an account or a recipient, from anywhere (the dispatcher already
        counts each client address): the bucket `<op>:<kind>` of App.limits, else the op's own limit. The value is
        hashed, so that no email address lands in Redis."""
        await self.limiter.enforce(op, f"{kind}:{hash_secret(value)[:32]}", collection=kind)

    async def _charge(self, peer: Peer, op: str, collection: str | None) -> None:
        """Count one op (or message) of a batch against its single op's limit, as _run counts a request."""
        if not peer.principal.is_admin:
            await self.limiter.enforce(op, principal_key(peer), collection=collection)

    @property
    def oauth2_redirect_uri(self) -> str:
        return f"{self.public_url}/oauth2/callback"

    async def oauth2_callback(self, query: str) -> tuple[int, str]:
        """The browser's return from an OAuth2 provider: (HTTP status, page). The waiting socket, wherever it is
        held, learns the outcome through the bus."""
        try:
            params = dict(urllib.parse.parse_qsl(query, max_num_fields=20))
        except ValueError:   # too many fields, or not a query string at all
            return 400, oauth2.page("This sign-in link is not valid.")
        try:
            outcome, line = await oauth2.complete(self.db, self.app.oauth2, self.oauth2_redirect_uri, params,
                                                  self.accounts.link_provider)
            if outcome is not None:
                await self.listener.notify(self.db, oauth2.CHANNEL, msgspec.json.encode(outcome).decode())
        except Exception as exc:
            if failure(exc) is None:
                raise
            return 503, oauth2.page("Sign-in is unavailable right now; try again.")
        return (200 if outcome is not None and outcome.user_id else 400), oauth2.page(line)

    async def dispatch(self, peer: Peer, request: Request, binary: bool = False) -> dict[str, Any]:
        """Serve one request (its args in MessagePack when `binary`, else JSON); always return exactly one reply
        and never let an exception escape."""
        started = time.perf_counter()
        principal, named = peer.principal, Named()   # who asked (before a sign-in changes it), and what it named
        reply = await self._reply(peer, request, binary, self.ops, named)
        op, code, seconds = (request.op if request.op in self.ops else "unknown",
                             "OK" if reply["ok"] else reply["error"]["code"], time.perf_counter() - started)
        metrics.observe_request(op, code, seconds)
        self.requests.record(op, named.collection, principal, peer.address, code, seconds, reply)
        return reply

    async def _reply(self, peer: Peer, request: Request, binary: bool, ops: dict[str, OpSpec],
                     named: "Named | None" = None) -> dict[str, Any]:
        """The one place where what went wrong becomes the client's error: ours (HaptaError), an upstream's
        (UNAVAILABLE or TIMEOUT, with retry_after), the request's deadline (TIMEOUT), or a bug (INTERNAL). `ops`:
        the table the op is looked up in (a client's: every op; a function's ctx.records: RECORD_OPS)."""
        work = Work(lambda: _work_keys(peer))
        token = working(work)
        one_barrier = request_began()
        try:
            return ok_reply(request.id, await self._run(peer, request, binary, ops, named))
        except HaptaError as error:
            if self.deadlines.expired():   # refused on the way out of a wait the deadline cut short
                return error_reply(request.id, self._out_of_time(request, work))
            return error_reply(request.id, error)
        except asyncio.CancelledError:
            if not self.deadlines.expired():
                raise   # not ours to answer: the connection or the server is going away
            return error_reply(request.id, self._out_of_time(request, work))
        except Exception as exc:
            if self.deadlines.expired():
                return error_reply(request.id, self._out_of_time(request, work))
            mapped = upstream_failure(exc)
            if mapped is not None:
                upstream, error = mapped
                self.outages.failed(upstream, request.op, type(exc).__name__)
                metrics.UPSTREAM_ERRORS.labels(upstream).inc()
                return error_reply(request.id, error)
            # The traceback is for the operator; the client learns only that it was our fault. Never log args.
            log.exception("op %s failed", request.op)
            return error_reply(request.id, HaptaError(INTERNAL, "internal error"))
        finally:
            request_ended(one_barrier)
            done_working(token)

    def _out_of_time(self, request: Request, work: Work) -> HaptaError:
        log.warning("%s ran past its %g s deadline", request.op, self.app.connections.request_timeout)
        if work.commit == "sent":   # the deadline struck while COMMIT was under way
            return HaptaError(TIMEOUT, "the request ran out of time while committing: the write may or may not "
                              "have happened; read it back before retrying", details=outcome_unknown().details,
                              retry_after=1.0)
        return HaptaError(TIMEOUT, f"no answer within {self.app.connections.request_timeout:g} s", retry_after=1.0)

    async def _run(self, peer: Peer, request: Request, binary: bool, ops: dict[str, OpSpec],
                   named: "Named | None" = None) -> Any:
        """The request path: the op, who may call it, its args, its limit, its handler (docs/architecture.md)."""
        spec = ops.get(request.op)
        if spec is None:
            raise HaptaError(UNKNOWN_OP, f"unknown op {request.op[:64]!r}")
        principal = peer.principal
        check_caller(principal, request.op, spec.guest, spec.admin, self.clock())
        if self.app.require_verified and principal.role == USER and not principal.verified \
                and not request.op.startswith("auth.") and request.op != "ping":
            raise HaptaError(FORBIDDEN, "verify your email first (auth.verify.request)",
                             details={"reason": "unverified"})
        try:
            args = spec.decode(request.args, binary)
        except msgspec.ValidationError as exc:
            raise HaptaError(BAD_REQUEST, f"invalid args: {exc}") from None
        except RecursionError:
            raise HaptaError(BAD_REQUEST, "args are nested too deeply") from None
        except ValueError as exc:   # a MessagePack extension type (codec.refuse_extension)
            raise HaptaError(BAD_REQUEST, str(exc)) from None
        collection = getattr(args, "collection", None)
        if named is not None and isinstance(collection, str):
            named.collection = collection
        if principal.is_admin and request.op in ADMIN_CHANGES:   # the dashboard's actions, and any admin's: who did what
            about = (getattr(args, name, None) for name in ("collection", "id", "user"))   # never the data
            log.info("admin %s %s from %s", request.op, " ".join(a for a in about if isinstance(a, str) and a),
                     peer.address)
        if not principal.is_admin:   # trusted servers, like rules; ops a guest may call count per address
            await self.limiter.enforce(request.op, principal_key(peer, by_address=spec.guest), collection=collection)
        return await spec.handler(Call(peer, request.op), args)


class Named:
    """What a request's args named, for the request log: the collection (set once its args are decoded)."""
    __slots__ = ("collection",)

    def __init__(self) -> None:
        self.collection: str | None = None


def upstream_failure(exc: BaseException) -> tuple[str, HaptaError] | None:
    """The one table of what an upstream's fault becomes for the client (UNAVAILABLE or TIMEOUT, with retry_after),
    and which upstream the metric counts it against; None for anything else (a bug: INTERNAL)."""
    if isinstance(exc, StorageUnavailable):
        return "s3", unavailable()
    if isinstance(exc, BusDown):
        return "redis", HaptaError(UNAVAILABLE, "channels are unavailable right now", retry_after=1.0)
    mapped = failure(exc)
    return None if mapped is None else ("postgres", mapped)


# Every op, and whether a guest may call it: known from the handler classes before anything is built
GUEST_OPS = guest_ops(AuthOps, RecordOps, FileOps, LiveOps, LimitOps, MiscOps, AccountOps, HookOps, FunctionOps,
                      AdminOps, OperationsOps, AdminAccountOps)
OP_NAMES = frozenset(GUEST_OPS)

# Ops that change something: an admin's are logged (the op, the collection and id, the address; never the data).
ADMIN_CHANGES = frozenset({"records.create", "records.update", "records.delete", "records.batch", "files.upload",
                           "files.delete", "auth.revoke", "functions.retry", "functions.call", "channels.publish",
                           "admin.backup", "admin.backup.delete", "admin.backup.restore", "admin.sql",
                           "admin.mail.test", "admins.create", "admins.delete", "admins.totp.reset",
                           "auth.user.create", "auth.user.password", "auth.user.reset", "auth.user.verify",
                           "auth.user.verify.request", "auth.mfa.reset"})


def _worker_user(settings: Settings, app_dir: Path) -> WorkerUser | None:
    """HAPTA_WORKER_USER, looked up; with it, what the gateway keeps on disk becomes its own (isolation), and a
    .env that user could read stops the start: its secrets would be the workers' to read."""
    if not settings.worker_user:
        return None
    try:
        user = WorkerUser.find(settings.worker_user)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    for name in (".env", "config.py"):
        if readable_by(app_dir / name, user):
            if name == ".env":
                raise SettingsError(f"{app_dir / name} is readable by HAPTA_WORKER_USER {user.name}, whose workers "
                                    f"must not read the gateway's secrets: chmod 600 it")
            log.warning("%s is readable by HAPTA_WORKER_USER %s: keep secrets out of it, or chmod 600 it",
                        app_dir / name, user.name)
    private_to_gateway(settings.data_dir, user)
    log.info("hook and function workers run as %s (uid %d)", user.name, user.uid)
    return user


def _work_keys(peer: Peer) -> tuple[str, ...]:
    """Whose share of the database pool a request uses: (its principal's, its address's). Admins (trusted
    servers) are not capped."""
    if peer.principal.is_admin:
        return ()
    return principal_key(peer), principal_key(peer, by_address=True)
