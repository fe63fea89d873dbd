"""The types an app's config.py fills in: its collections, their rules, and the gateway's bounds.

A rule is a filter expression over the record and `@user` (see docs/protocol.md):
    None -> admin only,  "" -> everyone past the guest stage (anon key or signed-in),  "expr" -> where expr holds.
"""
from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import logging
import re
import traceback
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ADMIN_ONLY = None
EVERYONE = ""


class ConfigError(Exception):
    """config.py (or what it names: rules/, the tables) cannot work; the message says what and where."""


# Columns every collection has, managed by the gateway: clients read them, never write them.
SYSTEM_FIELDS = ("id", "created", "updated", "version")


@dataclass(frozen=True)
class Collection:
    name: str
    list: str | None = ADMIN_ONLY
    view: str | None = ADMIN_ONLY
    create: str | None = ADMIN_ONLY
    update: str | None = ADMIN_ONLY
    delete: str | None = ADMIN_ONLY
    hidden: tuple[str, ...] = ()                       # never leave the gateway, cannot be filtered on
    guarded: dict[str, str] = field(default_factory=dict)  # field -> rule under which a reader sees it
    readonly: tuple[str, ...] = ()                     # clients may not write these (beyond SYSTEM_FIELDS)
    files: dict[str, "FileField"] = field(default_factory=dict)  # jsonb field -> its files (only files.* write it)
    # text field -> the PostgreSQL text-search configuration (e.g. "english", "simple") that `field @@ "words"` in
    # clients' filters searches it with; declare the matching index in migrations/ (docs/performance.md):
    #   CREATE INDEX ... ON <table> USING gin (to_tsvector('english', <field>))
    search: dict[str, str] = field(default_factory=dict)
    # An update that changes a field the create rule reads must leave the record where the create rule allows it
    # too, so that nobody moves a record where they could not have put it (a comment onto a post they may not
    # comment on). False: updates may go where creates may not. Collections only admins create have nothing to check.
    update_checks_create: bool = True

    def rule(self, op: str) -> str | None:
        return getattr(self, op)


@dataclass(frozen=True)
class FileField:
    """A jsonb column holding a list of files, written by files.* ops only (docs/files.md). `types` are checked
    against the content (its first bytes, hapta/store/files/types.py), never the client's word; None takes any
    content. Uploads and deletes need the collection's update rule, downloads and URLs its view rule."""
    max_size: int = 10 * 1024 * 1024            # bytes in one file; a bigger upload is refused before any byte
    types: tuple[str, ...] | None = ("image/png", "image/jpeg", "image/gif", "image/webp")
    max_count: int = 1                          # files in the field; uploading under an existing name replaces it
    # Thumbnail sizes served (files.url / files.download `thumb`), PocketBase's grammar: "100x100" crops to the
    # centre, "480x0" / "0x300" keep the ratio, a suffix t / b crops from the top / bottom, f fits inside without
    # cropping. Only these are made: nobody can have the gateway resize to any other size (hapta/files/thumbs.py).
    thumbs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Limit:
    """`rate` events per `per` seconds, with up to `burst` at once (default `rate`). See docs/limits.md."""
    rate: int
    per: float = 1.0
    burst: int | None = None


# Limits every app has unless its App.limits says otherwise (its keys win, None turns one off; docs/limits.md): each
# op that checks a secret, and each write, has one, so that no op is unbounded by default. Per client address for the
# ops a guest may call, per user for the rest; "<op>:identity" counts guesses against one account from anywhere.
# `App(limits=dict.fromkeys(DEFAULT_LIMITS))` runs without any (benchmarks).
# "op:identity" counts per account from any address, "op:recipient" per address a mail goes to (auth/accounts.py)
ACCOUNT_SCOPES = ("identity", "recipient")
DEFAULT_LIMITS: dict[str, Limit] = {
    "auth.login": Limit(10, per=60),
    "auth.login:identity": Limit(10, per=600),
    "auth.register": Limit(10, per=3600),
    "auth.register:identity": Limit(10, per=3600),
    "auth.guest": Limit(30, per=3600),   # each is a row in users: as many as a household or a classroom needs
    "auth.password": Limit(5, per=60),
    "auth.admin": Limit(5, per=60),
    "auth.admin.signin": Limit(5, per=60),              # an admin account's sign-in, as guessable as the key
    "auth.admin.signin:identity": Limit(10, per=600),   # per account, from anywhere
    "auth.admin.resume": Limit(600, per=60),            # a 256-bit session token: no guessing, reloads welcome
    "auth.anon": Limit(300, per=60),
    # a deploy sends every client of a NAT back at once: refreshing and resuming check 256-bit secrets, no guessing
    "auth.refresh": Limit(600, per=60),
    "auth.resume": Limit(600, per=60),
    "auth.oauth2": Limit(30, per=60),
    "records.create": Limit(20, per=1, burst=40),
    "records.update": Limit(20, per=1, burst=40),
    "records.delete": Limit(20, per=1, burst=40),
    # each op of a batch also counts against its own records.create/update/delete limit
    "records.batch": Limit(10, per=1, burst=20),
    "files.upload": Limit(5, per=1, burst=10),
    "files.delete": Limit(20, per=1, burst=40),
    "realtime.subscribe": Limit(20, per=1, burst=200),    # a reconnect resubscribes everything at once
    "realtime.query": Limit(20, per=1, burst=200),        # ... and asks its live queries again
    "channels.join": Limit(10, per=1, burst=32),
    "channels.publish": Limit(20, per=1, burst=40),
    # each call holds a function worker for as long as it runs (and a caller at most its share of them)
    "functions.call": Limit(10, per=1, burst=20),
    # mail costs the sender's reputation and the recipient's patience: a few an hour per address and per account
    "auth.verify.request": Limit(5, per=3600),
    "auth.reset.request": Limit(5, per=3600),
    "auth.reset.request:identity": Limit(3, per=3600),
    "auth.verify": Limit(30, per=60),
    "auth.reset": Limit(30, per=60),
    "auth.otp.request": Limit(5, per=3600),
    "auth.otp.request:identity": Limit(5, per=3600),
    "auth.otp": Limit(10, per=60),
    "auth.otp:identity": Limit(10, per=600),   # with OTP_ATTEMPTS per code: six digits are not guessed
    "auth.mfa.verify": Limit(10, per=60),
    "auth.mfa.verify:identity": Limit(20, per=600),   # per account, from anywhere: four challenges of five
    "auth.email.change": Limit(5, per=3600),
    "auth.email.change:identity": Limit(5, per=600),   # guesses at the current password, per account
    "auth.email.change:recipient": Limit(3, per=3600),   # mails to one address, from every account together
    "auth.password:identity": Limit(5, per=600),
    "auth.verify:identity": Limit(5, per=600),   # a link followed with the account's password: guesses at it
    "auth.mfa.confirm": Limit(10, per=60),
    "auth.mfa.disable": Limit(10, per=60),
    "auth.mfa.disable:identity": Limit(5, per=600),
}


@dataclass(frozen=True)
class OAuth2Provider:
    """An OAuth2 authorization-code provider (PKCE S256). `subject_field` names the stable user id in the
    userinfo answer. An account with the same email is linked only when `trust_email` is set and the provider
    says the email is verified (a `verified_field` of true); otherwise sign-in refuses rather than take it over."""
    authorize_url: str
    token_url: str
    userinfo_url: str
    client_id: str
    client_secret: str
    scope: str = ""
    subject_field: str = "sub"
    email_field: str = "email"
    verified_field: str | None = "email_verified"
    trust_email: bool = False


@dataclass(frozen=True)
class Channel:
    """A pattern of App.channels that says more than who may join: `Channel("@user.id != null",
    presence=("username",))`. `rule` is who may join, as the plain string form says it (None: admins only, "":
    everyone past the guest stage). `presence` names fields of the `users` record that each member carries to the
    others (`profile` in members and presence events), each shown to a reader only as the users collection's view
    rule and that field's guard let that reader see it (docs/realtime.md, "Who is there, by name")."""
    rule: str | None
    presence: tuple[str, ...] = ()


def github(client_id: str, client_secret: str) -> OAuth2Provider:
    """GitHub's OAuth app endpoints. Its /user email is not marked verified, so emails are never linked."""
    return OAuth2Provider("https://github.com/login/oauth/authorize", "https://github.com/login/oauth/access_token",
                          "https://api.github.com/user", client_id, client_secret, scope="read:user user:email",
                          subject_field="id", verified_field=None)


def google(client_id: str, client_secret: str) -> OAuth2Provider:
    """Google's OpenID Connect endpoints; its userinfo says whether the email is verified."""
    return OAuth2Provider("https://accounts.google.com/o/oauth2/v2/auth", "https://oauth2.googleapis.com/token",
                          "https://openidconnect.googleapis.com/v1/userinfo", client_id, client_secret,
                          scope="openid email profile", trust_email=True)


# ---- the gateway's bounds, one section per part that keeps them (each service is built from its own) ----------


@dataclass(frozen=True)
class DatabaseBounds:
    """The database and what one request may ask of it (docs/security.md): no statement or lock wait outlives its
    bound, and one client holds at most a few of the pool's connections at once, so it cannot starve the others."""
    pool_size: int = 10                         # PostgreSQL connections per gateway process
    acquire_timeout: float = 2.0                # seconds a request waits for a pool connection; then UNAVAILABLE
    statement_timeout: float = 5.0              # seconds one statement may run (server-side); then TIMEOUT
    lock_timeout: float = 2.0                   # seconds a statement may wait for a row lock; then TIMEOUT
    per_principal: int = 4                      # pool connections one user (or one address's anon/guests) holds at once
    per_address: int = 8                        # pool connections all the clients of one address hold at once
    max_filter_cost: int = 40                   # what one filter may ask per row (hapta.query.cost); over: TOO_LARGE
    batch_max: int = 50                         # ops in one records.batch (at most 1000); more: BAD_REQUEST


@dataclass(frozen=True)
class ConnectionBounds:
    """What one connection, and one client address, may hold and cost; per worker process (docs/operations.md has
    each with its close code)."""
    total: int = 10_000                         # open WebSockets; over: close 1013
    per_address: int = 256                      # from one client address; over: close 1013
    message_rate: Limit | None = Limit(500, per=1, burst=1000)   # per connection; over: RATE_LIMITED, a flood: 1008
    max_message: int = 64 * 1024                # bytes in one frame
    in_flight: int = 64                         # requests a connection may have unanswered at once
    outgoing: int = 1024 * 1024                 # bytes waiting for a client that does not read; over: dropped
    request_timeout: float = 10.0               # seconds from a request's arrival to its reply, whatever upstreams do
    ping_interval: float | None = 20            # keepalive ping every N seconds (None: off) ...
    ping_timeout: float | None = 20             # ... and no pong within N seconds: the peer is gone (1011)
    idle_timeout: float | None = None           # no message for N seconds: close 1000 (None: never)
    auth_deadline: float | None = None          # a guest that has not signed in after N seconds: close 1008
    http_read_timeout: float = 10.0             # seconds for a plain HTTP request's head, then for its body; then 408
    http_keepalive_timeout: float = 5.0         # seconds a kept-alive HTTP connection may wait for its next request


@dataclass(frozen=True)
class RealtimeBounds:
    """Subscriptions and channels (docs/realtime.md), and the change log a resumed subscription replays from."""
    per_connection: int = 100                   # realtime subscriptions a connection may hold
    per_principal: int = 500                    # ... one user across their connections (anon: per address)
    per_address: int = 2000                     # ... all the connections of one client address
    filter_bytes_per_address: int = 512 * 1024  # filter text the subscriptions of one address hold
    channels_per_connection: int = 32           # channels a connection may have joined at once
    log_retention: float = 15 * 60              # seconds a change is kept (realtime.subscribe `since`)
    log_max: int = 1_000_000                    # changes kept at most (the oldest go first)


@dataclass(frozen=True)
class FileBounds:
    """Files (docs/files.md): chunks either way, the uploader's window, patience, the orphan sweeper's period."""
    chunk: int = 256 * 1024                     # bytes in one file chunk (frames may be this much over max_message)
    window: int = 4 * 1024 * 1024               # bytes an uploader may have sent but not had acknowledged
    idle_timeout: float = 60.0                  # seconds an upload may wait for its next chunk or files.finish
    sweep_interval: float = 30.0                # seconds between sweeps of orphaned objects (also woken by NOTIFY)
    resume_timeout: float = 600.0               # seconds an upload cut off with its socket waits for {resume}
    resume_bytes: int = 1024 * 1024 * 1024      # bytes of such uploads kept per principal (past it: dropped at once)


@dataclass(frozen=True)
class HookBounds:
    """Rule hooks (rules/, docs/rules.md): worker processes per gateway process, a call's deadline, calls that
    may wait, and the environment variables hooks may read, besides PATH, HOME, the locale and HAPTA_ENV (never one
    of the gateway's own settings: HAPTA_*, DATABASE_URL, DATABASE_REPLICA_URLS, REDIS_URL, SMTP_URL, S3_*, PG*,
    AWS_*)."""
    workers: int | None = None                  # processes running rules/ hooks; None: one per core
    timeout: float = 1.0                        # seconds a hook call may run; past it the worker is killed: TIMEOUT
    queue: int = 1024                           # hook calls waiting for a free worker; when full: UNAVAILABLE
    environ: tuple[str, ...] = ()


@dataclass(frozen=True)
class FunctionBounds:
    """Server functions (functions/, docs/functions.md) and their webhooks."""
    workers: int | None = None                  # processes running functions/; None: one per core
    timeout: float = 10.0                       # the longest a function may declare (at most request_timeout)
    memory: int | None = 512                    # MiB of address space per function worker (None: no limit)
    retries: tuple[float, ...] = (1, 2, 4, 8)   # seconds before each retry of a failed @on change
    # The function workers one caller may hold at once; None: a share of the workers.
    per_principal: int | None = None            # one user (anon, guests: one address); None: half the workers
    per_address: int | None = None              # every client of one address; None: three quarters of them
    http_workers: int | None = None             # all @http webhooks together; None: half the workers
    http_per_address: int | None = None         # the webhooks one address sends; None: a quarter of them
    # Webhooks (@http; docs/functions.md "Webhooks", docs/security.md):
    http_max_body: int = 1024 * 1024            # bytes of an @http request's body (a route's max_body may differ); 413
    http_memory: int = 64 * 1024 * 1024         # bytes of request bodies one process holds at once; over: 503
    http_memory_per_address: int = 16 * 1024 * 1024   # ... of them from one client address; over: 503
    http_answer_within: float = 3.0             # seconds a webhook waits for its function; then 202 {run} (it goes on)
    http_dedupe_window: float = 3 * 24 * 3600   # seconds a delivery id is remembered (delivery_id_header)


@dataclass(frozen=True)
class SessionPolicy:
    """Sessions and passwords (docs/sessions.md)."""
    access_token_ttl: int = 15 * 60             # seconds
    ttl: int = 30 * 24 * 3600                   # absolute lifetime of a session, seconds
    idle_timeout: int = 14 * 24 * 3600          # a session neither refreshed nor resumed this long ends, seconds
    refresh_reuse_interval: float = 10.0        # a spent refresh token shown again this soon: a racing tab, seconds
    min_password_length: int = 8
    # an admin account's dashboard session (hapta/auth/admins.py): this long from its last use, renewed while the
    # dashboard is open, and never past admin_ttl from its sign-in, seconds
    admin_idle_timeout: int = 15 * 60
    admin_ttl: int = 12 * 3600


@dataclass(frozen=True)
class RequestLogBounds:
    """The request log (docs/dashboard.md, "Logs"): a row per request in PostgreSQL (hapta.request_log) for the
    dashboard's Logs page. Rows wait in a bounded buffer and are written in batches in the background, so a request
    never waits for it; when PostgreSQL is slow or down the oldest waiting rows go (hapta_request_log_rows
    {outcome="dropped"})."""
    enabled: bool = True                        # False: no rows are kept (the Logs page shows none)
    retention: float = 7 * 24 * 3600            # seconds a row is kept; older ones are pruned in the background
    buffer: int = 10_000                        # rows waiting to be written, at most, per process
    batch: int = 1000                           # rows one COPY writes; a full batch is written at once
    interval: float = 1.0                       # seconds between writes of what waits


SECTIONS = {"database": DatabaseBounds, "connections": ConnectionBounds, "realtime": RealtimeBounds,
            "files": FileBounds, "hooks": HookBounds, "functions": FunctionBounds, "sessions": SessionPolicy,
            "request_log": RequestLogBounds}

# App's flat fields of earlier releases -> (section, field): still taken, with a warning naming the new place.
FLAT_NAMES: dict[str, tuple[str, str]] = {
    "db_pool_size": ("database", "pool_size"), "db_acquire_timeout": ("database", "acquire_timeout"),
    "statement_timeout": ("database", "statement_timeout"), "lock_timeout": ("database", "lock_timeout"),
    "db_per_principal": ("database", "per_principal"), "db_per_address": ("database", "per_address"),
    "max_filter_cost": ("database", "max_filter_cost"), "batch_max": ("database", "batch_max"),
    "max_connections": ("connections", "total"), "max_connections_per_address": ("connections", "per_address"),
    "message_rate": ("connections", "message_rate"), "max_message": ("connections", "max_message"),
    "max_in_flight": ("connections", "in_flight"), "max_outgoing": ("connections", "outgoing"),
    "request_timeout": ("connections", "request_timeout"), "ping_interval": ("connections", "ping_interval"),
    "ping_timeout": ("connections", "ping_timeout"), "connection_idle_timeout": ("connections", "idle_timeout"),
    "auth_deadline": ("connections", "auth_deadline"), "http_read_timeout": ("connections", "http_read_timeout"),
    "http_keepalive_timeout": ("connections", "http_keepalive_timeout"),
    "max_subscriptions": ("realtime", "per_connection"),
    "max_subscriptions_per_principal": ("realtime", "per_principal"),
    "max_subscriptions_per_address": ("realtime", "per_address"),
    "max_filter_bytes_per_address": ("realtime", "filter_bytes_per_address"),
    "max_channels": ("realtime", "channels_per_connection"), "change_log_retention": ("realtime", "log_retention"),
    "change_log_max": ("realtime", "log_max"),
    "file_chunk": ("files", "chunk"), "file_window": ("files", "window"),
    "file_idle_timeout": ("files", "idle_timeout"),
    "file_sweep_interval": ("files", "sweep_interval"),
    "rule_workers": ("hooks", "workers"), "hook_timeout": ("hooks", "timeout"), "rule_queue": ("hooks", "queue"),
    "rule_environ": ("hooks", "environ"),
    "function_workers": ("functions", "workers"), "function_timeout": ("functions", "timeout"),
    "function_memory": ("functions", "memory"), "function_retries": ("functions", "retries"),
    "function_per_principal": ("functions", "per_principal"), "function_per_address": ("functions", "per_address"),
    "function_http_workers": ("functions", "http_workers"),
    "function_http_per_address": ("functions", "http_per_address"),
    "function_http_max_body": ("functions", "http_max_body"), "function_http_memory": ("functions", "http_memory"),
    "function_http_memory_per_address": ("functions", "http_memory_per_address"),
    "function_http_answer_within": ("functions", "http_answer_within"),
    "function_http_dedupe_window": ("functions", "http_dedupe_window"),
    "access_token_ttl": ("sessions", "access_token_ttl"), "session_ttl": ("sessions", "ttl"),
    "session_idle_timeout": ("sessions", "idle_timeout"),
    "refresh_reuse_interval": ("sessions", "refresh_reuse_interval"),
    "min_password_length": ("sessions", "min_password_length"),
}
_config_log = logging.getLogger("hapta.config")


@dataclass(frozen=True)
class _AppFields:
    """The app's shape (collections, limits, channels, providers, mail), then the gateway's bounds, by section."""
    collections: tuple[Collection, ...] | list[Collection]
    # "default", "op", "op:collection", laid over DEFAULT_LIMITS; None for a key: not limited (docs/limits.md)
    limits: dict[str, Limit | None] = field(default_factory=dict)
    # laid over `limits` while HAPTA_ENV is development: room for a developer's retries (never in production)
    development_limits: dict[str, Limit | None] = field(default_factory=dict)
    limits_fallback: str = "local"              # while Redis is down: "local" limits per process, or "refuse"
    origins: tuple[str, ...] | None = None     # allowed Origin headers; None allows any (native apps send none)
    # channel name pattern -> who may join (a rule over `name`, `part1`..`part3`; see hapta/live/channels.py), or a
    # Channel with that rule and the fields of `users` its members carry (presence)
    channels: dict[str, str | None | Channel] = field(default_factory=dict)
    oauth2: dict[str, "OAuth2Provider"] = field(default_factory=dict)   # provider name -> how to reach it
    app_name: str = "Hapta"                     # what mails call the app
    require_verified: bool = False              # users whose email is not verified may call only auth.* and ping
    # the link a mail carries (string.Template): $public_url (HAPTA_PUBLIC_URL, else the gateway's own address),
    # $action ("verify", "reset") and $token; a page of the app reads the token and sends auth.verify / auth.reset
    mail_link: str = "$public_url/#$action=$token"
    database: DatabaseBounds = DatabaseBounds()
    connections: ConnectionBounds = ConnectionBounds()
    realtime: RealtimeBounds = RealtimeBounds()
    files: FileBounds = FileBounds()
    hooks: HookBounds = HookBounds()
    functions: FunctionBounds = FunctionBounds()
    sessions: SessionPolicy = SessionPolicy()
    request_log: RequestLogBounds = RequestLogBounds()


class App(_AppFields):
    """What config.py defines as `app`. The bounds come in sections (`App(hooks=HookBounds(workers=2))`); the flat
    names of earlier releases (`App(rule_workers=2)`, FLAT_NAMES) are still taken into their section, each with a
    line in the log naming the new place."""

    def __init__(self, *args: Any, **fields: Any):
        moved: dict[str, dict[str, Any]] = {}
        for name in [name for name in fields if name in FLAT_NAMES]:
            section, into = FLAT_NAMES[name]
            moved.setdefault(section, {})[into] = fields.pop(name)
            _config_log.warning("App(%s=...) is now App(%s=%s(%s=...)); the flat name will go in a later release",
                                name, section, SECTIONS[section].__name__, into)
        for section, values in moved.items():
            fields[section] = dataclasses.replace(fields.get(section, SECTIONS[section]()), **values)
        super().__init__(*args, **fields)

    def __getattr__(self, name: str) -> Any:
        """A flat name of earlier releases reads its section's field (`app.rule_workers` is app.hooks.workers)."""
        moved = FLAT_NAMES.get(name)
        if moved is None:
            raise AttributeError(f"App has no field {name!r}")
        return getattr(getattr(self, moved[0]), moved[1])

    def collection(self, name: str) -> Collection | None:
        return self.by_name.get(name)

    @property
    def by_name(self) -> dict[str, Collection]:
        cached = self.__dict__.get("_by_name")
        if cached is None:
            cached = {c.name: c for c in self.collections}
            object.__setattr__(self, "_by_name", cached)
        return cached


def load_app(path: Path) -> App:
    """Import the app's config.py and return its `app`, checked (check_app). A config.py that fails to run is a
    ConfigError of one line: the file and line, and what went wrong (the traceback is its cause, for --debug)."""
    spec = importlib.util.spec_from_file_location("hapta_app_config", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ConfigError(_failure(path, exc)) from exc
    app = getattr(module, "app", None)
    if not isinstance(app, App):
        raise ConfigError(f"{path.name} must define `app = hapta.config.App(...)`")
    check_app(app)
    return app


_UNEXPECTED = re.compile(r"(\w+)\.__init__\(\) got an unexpected keyword argument '(\w+)'")


def _failure(path: Path, exc: Exception) -> str:
    """What running config.py raised, in one line: where in config.py, and the mistake (an unknown field of App or
    Collection says which fields there are)."""
    lines = [frame.lineno for frame in traceback.extract_tb(exc.__traceback__) if frame.filename == str(path)]
    where = f"{path.name}, line {lines[-1]}" if lines else path.name
    unknown = _UNEXPECTED.search(str(exc))
    if isinstance(exc, TypeError) and unknown:
        classes = (Channel, Collection, FileField, Limit, OAuth2Provider, *SECTIONS.values())
        known = {"_AppFields": App, **{cls.__name__: cls for cls in classes}}.get(unknown[1])
        if known is not None:
            fields = [f.name for f in dataclasses.fields(known)]
            near = difflib.get_close_matches(unknown[2], [*fields, *(FLAT_NAMES if known is App else ())], n=1)
            if near and near[0] in FLAT_NAMES:
                section, into = FLAT_NAMES[near[0]]
                hint = f"did you mean {section}={SECTIONS[section].__name__}({into}=...)?"
            else:
                hint = f"did you mean {near[0]!r}?" if near else f"its fields are {', '.join(fields)}"
            return f"{where}: {known.__name__} has no field {unknown[2]!r} ({hint})"
    return f"{where}: {type(exc).__name__}: {exc}"


# ---- checking config.py before anything runs ----------------------------------------------------------------

from .query import FilterError, parse   # noqa: E402  (the filter language imports nothing of this module)

def check_app(app: App, ops: frozenset[str] = frozenset()) -> None:
    """ConfigError naming the first value of `app` that cannot work, and what was expected: a mistake is said at
    start in one line, never discovered later in silence (origins="http://x" as a string would have refused every
    browser). `ops`: the op names the gateway serves, which App.limits keys must name."""
    _check_fields(app, "App")
    for collection in app.collections:
        _check_fields(collection, f"Collection {collection.name!r}")
        # the rules' grammar now (their fields once the tables are read: models.build_models)
        texts = [(f"{collection.name}.{op} rule", collection.rule(op)) for op in ("list", "view", "create", "update",
                                                                              "delete")]
        texts += [(f"{collection.name}.guarded[{name}]", text) for name, text in collection.guarded.items()]
        for what, text in texts:
            if text:
                try:
                    parse(text)
                except FilterError as exc:
                    raise ConfigError(f"{what}: {exc}") from None
        for name, file in collection.files.items():
            _check_fields(file, f"Collection {collection.name!r} files[{name!r}]")
    for name, provider in app.oauth2.items():
        _check_fields(provider, f"App.oauth2[{name!r}]")
    for pattern, channel in app.channels.items():
        if isinstance(channel, Channel):
            _check_fields(channel, f"App.channels[{pattern!r}]")
            twice = sorted({name for name in channel.presence if channel.presence.count(name) > 1})
            if twice:
                raise ConfigError(f"App.channels[{pattern!r}].presence names {twice[0]!r} twice")
    for section in SECTIONS:
        _check_fields(getattr(app, section), f"App.{section}")
    functions, connections = app.functions, app.connections
    for where, value in (("functions.http_memory", functions.http_memory),
                         ("functions.http_memory_per_address", functions.http_memory_per_address),
                         ("functions.http_answer_within", functions.http_answer_within),
                         ("functions.http_dedupe_window", functions.http_dedupe_window),
                         ("connections.http_read_timeout", connections.http_read_timeout),
                         ("connections.http_keepalive_timeout", connections.http_keepalive_timeout),
                         ("request_log.retention", app.request_log.retention),
                         ("request_log.buffer", app.request_log.buffer), ("request_log.batch", app.request_log.batch),
                         ("request_log.interval", app.request_log.interval)):
        if value <= 0:
            raise ConfigError(f"App.{where}: expected a positive number, got {value!r}")
    if not 0 <= functions.http_max_body <= functions.http_memory_per_address <= functions.http_memory:
        raise ConfigError("App.functions: http_max_body <= http_memory_per_address <= http_memory must hold (a body "
                          "over either memory bound could never be read)")
    names = [c.name for c in app.collections]
    if len(set(names)) != len(names):
        raise ConfigError(f"App.collections: {sorted(n for n in names if names.count(n) > 1)[0]!r} is declared twice")
    for key, limit in [*app.limits.items(), *app.development_limits.items()]:
        if limit is not None:
            _check_fields(limit, f"App.limits[{key!r}]")
        op, _, scope = key.partition(":")
        if ops and op != "default" and op not in ops:
            near = difflib.get_close_matches(op, sorted(ops), n=1)
            raise ConfigError(f"App.limits: {key!r} names no op" + (f" (did you mean {near[0]!r}?)" if near else ""))
        if scope and scope not in ACCOUNT_SCOPES and scope not in names:
            raise ConfigError(f"App.limits: {key!r} names no collection {scope!r}")


def _check_fields(value: Any, where: str) -> None:
    hints = typing.get_type_hints(type(value))
    for item in dataclasses.fields(value):
        if not item.init:
            continue
        given = getattr(value, item.name)
        if not _fits(given, hints[item.name]):
            raise ConfigError(f"{where}.{item.name}: expected {_described(hints[item.name])}, got {_shown(given)}")


def _fits(value: Any, expected: Any) -> bool:
    origin, args = typing.get_origin(expected), typing.get_args(expected)
    if expected is Any:
        return True
    if expected is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, option) for option in args)
    if origin in (tuple, list):   # a list or a tuple alike (never a string: "http://x" is no list of origins)
        if not isinstance(value, (tuple, list)):
            return False
        item = args[0] if args else Any
        return all(_fits(v, item) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(_fits(k, args[0]) and _fits(v, args[1]) for k, v in value.items())
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def _described(expected: Any, many: bool = False) -> str:
    """`tuple[str, ...] | None` as "a list of strings or None"."""
    origin, args = typing.get_origin(expected), typing.get_args(expected)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(dict.fromkeys(_described(option, many) for option in args))
    if origin in (tuple, list):
        return ("lists of " if many else "a list of ") + _described(args[0], True) if args else "a list"
    if origin is dict:
        return f"{'dicts' if many else 'a dict'} of {_described(args[0], True)} to {_described(args[1], True)}"
    names = {type(None): ("None", "None"), str: ("a string", "strings"), int: ("an integer", "integers"),
             float: ("a number", "numbers"), bool: ("True or False", "booleans")}
    name = getattr(expected, "__name__", str(expected))
    return names.get(expected, (f"a {name}", f"{name}s"))[many]


def _shown(value: Any) -> str:
    kind = {str: "the string", int: "the integer", float: "the number", bool: ""}.get(type(value))
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{kind} {text}".strip() if kind is not None else f"{type(value).__name__} {text}"
