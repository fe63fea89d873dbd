"""The API an app's functions/ modules use (docs/functions.md); apps import it as `hapta.functions`.

The decorators (call, every, on, http) declare a function and its triggers; the gateway's side of each trigger is a
module of its own (functions/calls.py, schedule.py, changes.py, webhooks.py). A function runs in a worker process
(hapta.workers, the kind hapta.functions.service.FUNCTION_WORKERS), never in the gateway, with a FunctionContext:
its ctx.sql, ctx.records, ctx.publish and ctx.transaction are carried back to the gateway, which runs them.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any, Awaitable, Callable, Iterable

from ..workers.api import Deny, SqlError

DEFAULT_TIMEOUT = 10.0
MARK = "__hapta_function__"


@dataclass(frozen=True)
class Declared:
    """What the decorators attached to a function: its settings and its triggers, as (kind, spec, option):
    ("call", "", ""), ("every", "*/5 * * * *", "skip" | "once"), ("on", "posts", "create,update"),
    ("http", "POST /hooks/x", "" or its options as JSON: max_body, the signature, delivery_id_header)."""
    name: str
    allow: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    secrets: tuple[str, ...] = ()
    admin: bool = False
    triggers: tuple[tuple[str, str, str], ...] = ()


def _declare(trigger: tuple[str, str, str], name: str | None, settings: dict[str, Any]
             ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add a trigger to a function's declaration (decorators stack: @call and @every on one function)."""
    timeout, secrets = settings.get("timeout"), settings.get("secrets")
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ValueError("timeout must be a positive number of seconds")
    if secrets is not None and (isinstance(secrets, str) or not all(isinstance(s, str) and s for s in secrets)):
        raise ValueError("secrets must be a tuple of environment variable names")

    def mark(function: Callable[..., Any]) -> Callable[..., Any]:
        found = getattr(function, MARK, None) or Declared(name or function.__name__)
        changes = {key: value for key, value in settings.items() if value is not None}
        if "timeout" in changes:
            changes["timeout"] = float(changes["timeout"])
        if "secrets" in changes:
            changes["secrets"] = tuple(changes["secrets"])
        setattr(function, MARK, replace(found, **changes, triggers=(*found.triggers, trigger)))
        return function
    return mark


def call(allow: str | None = None, *, timeout: float | None = None, secrets: tuple[str, ...] | None = None,
         name: str | None = None, admin: bool | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Make a function callable over the socket (`functions.call`), by whoever passes `allow` (None: admins
    only). Its name is the Python name unless given; `admin=True` makes its ctx.records act as admin (past every
    rule) instead of as the caller."""
    return _declare(("call", "", ""), name, {"allow": allow, "timeout": timeout, "secrets": secrets,
                                             "admin": admin})


MISSED = ("skip", "once")


def every(cron: str, *, missed: str = "skip", timeout: float | None = None, secrets: tuple[str, ...] | None = None,
          name: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Run a function on a schedule: standard 5-field cron ("*/5 * * * *", UTC), or 6 fields with seconds last.
    Once per tick across every worker and node. After downtime, `missed="skip"` runs nothing for the ticks that
    passed meanwhile, `missed="once"` runs once for all of them. It is called as fn(ctx, {"at": tick}), with no
    caller: ctx.user_id is None, ctx.role "admin" and ctx.records act as admin."""
    if missed not in MISSED:
        raise ValueError(f"missed must be one of {MISSED}")
    from croniter import croniter
    if not isinstance(cron, str) or len(cron.split()) not in (5, 6) or not croniter.is_valid(cron):
        raise ValueError(f"not a cron expression: {cron!r} (5 fields, or 6 with seconds last)")
    return _declare(("every", cron, missed), name, {"timeout": timeout, "secrets": secrets})


METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
SIGNATURE_ENCODINGS = ("hex", "base64")
SIGNATURE_ALGORITHMS = ("sha1", "sha256", "sha512")
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _header_name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or not set(value) <= _TOKEN:
        raise ValueError(f"{what} must be an HTTP header name")
    return value.lower()


def http(method: str, path: str, *, timeout: float | None = None, secrets: tuple[str, ...] | None = None,
         name: str | None = None, admin: bool | None = None, max_body: int | None = None,
         secret: str | None = None, signature_header: str | None = None, signature_prefix: str = "",
         signature_encoding: str = "hex", algorithm: str = "sha256",
         delivery_id_header: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Answer `method path` on the gateway's port (a webhook from another service). It is called as
    fn(ctx, request) with request {method, path, query, headers (lower-case names), body (bytes)} and returns
    {status, headers?, body?} (body: bytes, text, or anything JSON-encodable) or any value (200, as JSON; None:
    204). There is no caller: ctx.records act as an anon key's principal, or as admin with admin=True.

    What the gateway checks before the function runs (docs/functions.md, "Webhooks"):
    - `max_body`: bytes the request's body may have (default App.functions.http_max_body); more: 413, unread;
    - `secret` (an environment variable's name) with `signature_header`: the header must hold the HMAC
      (`algorithm`, `signature_encoding` hex or base64, after `signature_prefix`, e.g. "sha256=") of the body under
      that secret; else 403, and nothing runs or is written. Without them, check it yourself (hmac_valid);
    - `delivery_id_header`: the provider's delivery id; a retry with an id seen before (within
      App.functions.http_dedupe_window) gets the first run's answer, or 202 with its run id while it runs, and
      does not run again."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}")
    if not isinstance(path, str) or not path.startswith("/") or "?" in path or " " in path:
        raise ValueError("path must start with / and hold no query or spaces")
    options: dict[str, Any] = {}
    if max_body is not None:
        if not isinstance(max_body, int) or isinstance(max_body, bool) or max_body < 0:
            raise ValueError("max_body must be a number of bytes (0 or more)")
        options["max_body"] = max_body
    if (secret is None) != (signature_header is None):
        raise ValueError("secret and signature_header go together: the variable that holds the key, the header "
                         "that carries the signature")
    if secret is not None:
        if not isinstance(secret, str) or not secret:
            raise ValueError("secret must be the name of an environment variable")
        if signature_encoding not in SIGNATURE_ENCODINGS:
            raise ValueError(f"signature_encoding must be one of {SIGNATURE_ENCODINGS}")
        if algorithm not in SIGNATURE_ALGORITHMS:
            raise ValueError(f"algorithm must be one of {SIGNATURE_ALGORITHMS}")
        if not isinstance(signature_prefix, str):
            raise ValueError("signature_prefix must be a string")
        options.update(secret=secret, signature_header=_header_name(signature_header, "signature_header"),
                       signature_prefix=signature_prefix, signature_encoding=signature_encoding, algorithm=algorithm)
    if delivery_id_header is not None:
        options["delivery_id_header"] = _header_name(delivery_id_header, "delivery_id_header")
    # the options travel with the trigger, as its third part (the gateway reads them: functions/webhooks.py)
    import json
    option = json.dumps(options, sort_keys=True) if options else ""
    return _declare(("http", f"{method} {path}", option), name, {"timeout": timeout, "secrets": secrets,
                                                                 "admin": admin})


def hmac_valid(secret: str | bytes, body: bytes, signature: str, *, algorithm: str = "sha256",
               prefix: str = "", encoding: str = "hex") -> bool:
    """Whether `signature` (after `prefix`, e.g. "sha256=" as GitHub sends it; hex, or base64) is the HMAC of
    `body` under `secret`; compared in constant time. Anything else, of any type or alphabet, is simply not
    valid (False), never an error."""
    import base64
    import hashlib
    import hmac
    if not isinstance(signature, str) or not signature.startswith(prefix) or encoding not in SIGNATURE_ENCODINGS:
        return False
    try:
        given = signature[len(prefix):].strip().encode("ascii")   # hex and base64 are ASCII; anything else is not
    except UnicodeEncodeError:
        return False
    key = secret.encode() if isinstance(secret, str) else secret
    data = body.encode() if isinstance(body, str) else body
    digest = hmac.new(key, data, getattr(hashlib, algorithm)).digest()
    if encoding == "hex":
        return hmac.compare_digest(digest.hex().encode(), given.lower())
    return hmac.compare_digest(base64.b64encode(digest), given)


ACTIONS = ("create", "update", "delete")


def on(collection: str, *actions: str, timeout: float | None = None, secrets: tuple[str, ...] | None = None,
       name: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Run a function after each committed change of `collection` (all three actions unless named), through the
    gateway or straight in SQL: at least once, in commit order. It is called as fn(ctx, change) with change
    {collection, action, id, position, record} (`record`: the record as it is when the function runs, None once
    deleted), with no caller: ctx.role "admin", ctx.records act as admin."""
    chosen = actions or ACTIONS
    if not isinstance(collection, str) or not collection or any(a not in ACTIONS for a in chosen):
        raise ValueError(f"@on(collection, *actions): actions are {ACTIONS}")
    return _declare(("on", collection, ",".join(chosen)), name, {"timeout": timeout, "secrets": secrets})


class OpError(Exception):
    """A ctx.records call the gateway refused: `code` is the protocol's (NOT_FOUND, FORBIDDEN, ...)."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class Records:
    """ctx.records("posts"): the records.* ops on one collection, run by the gateway with the caller's rules
    (or as admin, for a function declared with admin=True). Each returns the op's data or raises OpError."""

    def __init__(self, run: Callable[[str, dict[str, Any]], Awaitable[Any]], collection: str):
        self._run = run
        self.collection = collection

    async def get(self, record_id: str, **args: Any) -> dict[str, Any]:
        return await self._run("records.get", {"collection": self.collection, "id": record_id, **args})

    async def list(self, **args: Any) -> dict[str, Any]:
        return await self._run("records.list", {"collection": self.collection, **args})

    async def aggregate(self, **args: Any) -> dict[str, Any]:
        return await self._run("records.aggregate", {"collection": self.collection, **args})

    async def create(self, data: dict[str, Any]) -> dict[str, Any]:
        return await self._run("records.create", {"collection": self.collection, "data": data})

    async def update(self, record_id: str, data: dict[str, Any], **args: Any) -> dict[str, Any]:
        return await self._run("records.update", {"collection": self.collection, "id": record_id, "data": data,
                                                  **args})

    async def delete(self, record_id: str) -> dict[str, Any]:
        return await self._run("records.delete", {"collection": self.collection, "id": record_id})


class RunLog(logging.Logger):
    """ctx.log: a logger whose lines are kept with the run (functions.runs shows them): at most MAX_LINES lines of
    at most MAX_LINE characters each."""
    MAX_LINES, MAX_LINE = 100, 1000

    def __init__(self, name: str):
        super().__init__(f"functions.{name}", logging.DEBUG)
        self.lines: list[str] = []
        self.propagate = False

    def handle(self, record: logging.LogRecord) -> None:
        if len(self.lines) < self.MAX_LINES:
            self.lines.append(f"{record.levelname} {record.getMessage()}"[:self.MAX_LINE])


@dataclass
class FunctionContext:
    """What a function may know and use: who called it, the secrets it declared, and the database through the
    gateway. Never tokens or the gateway's own secrets."""
    user_id: str | None
    role: str                  # "anon", "user" or "admin"
    address: str | None        # the caller's IP address
    secrets: dict[str, str] = field(default_factory=dict)
    log: logging.Logger = field(default_factory=lambda: RunLog("function"))
    _sql: Callable[..., Awaitable[Any]] | None = None
    _op: Callable[[str, dict[str, Any]], Awaitable[Any]] | None = None
    _publish: Callable[[str, Any], Awaitable[None]] | None = None
    _transaction: Callable[[list[tuple[str, list[Any]]], list[tuple[str, Any]]], Awaitable[Any]] | None = None

    async def sql(self, query: str, *params: Any) -> list[dict[str, Any]]:
        """Run one parameterised statement ($1, $2, ...) as the gateway; return its rows as dicts."""
        if self._sql is None:
            raise RuntimeError("no database in this context")
        return await self._sql(query, *params)

    async def transaction(self, *statements: tuple[str, list[Any] | tuple[Any, ...]],
                          publish: Iterable[dict[str, Any] | tuple[str, Any]] = ()) -> list[list[dict[str, Any]]]:
        """Several statements in one transaction, all or nothing: `await ctx.transaction(("UPDATE ... $1", [a]),
        ("UPDATE ... $1", [b]))` -> each one's rows. A failure raises SqlError and keeps none of them.

        `publish=[{"channel": "room:1", "data": {...}}, ...]` (or (channel, data) pairs, at most 16): channel
        messages from the server, as ctx.publish sends them, that go out only if the transaction commits, to every
        member, after the record changes its statements made. A statement that fails publishes nothing; a message
        the gateway refuses (not a channel name, too large) raises OpError before any statement runs."""
        if self._transaction is None:
            raise RuntimeError("no database in this context")
        messages = [(entry["channel"], entry.get("data")) if isinstance(entry, dict) else (entry[0], entry[1])
                    for entry in publish]
        if not all(isinstance(channel, str) for channel, _ in messages):
            raise TypeError("publish: each message is {'channel': str, 'data': ...} or a (channel, data) pair")
        return await self._transaction([(query, list(params)) for query, params in statements], messages)

    def records(self, collection: str) -> Records:
        """A collection's records.* ops, under the caller's rules (or as admin: @call(admin=True))."""
        if self._op is None:
            raise RuntimeError("no gateway in this context")
        return Records(self._op, collection)

    async def batch(self, ops: list[dict[str, Any]], **args: Any) -> dict[str, Any]:
        """records.batch: several writes, over any collections, in one transaction, under the same rules as
        ctx.records (docs/protocol.md: `{"$ref": n}` is the id op n wrote)."""
        if self._op is None:
            raise RuntimeError("no gateway in this context")
        return await self._op("records.batch", {"ops": ops, **args})

    async def backup(self, target: str | None = None) -> dict[str, Any]:
        """Start a backup of the database and the local files (admin.backup; `hapta backup`'s archive), to
        `s3://bucket/key` or to a file of that name in HAPTA_DATA_DIR/backups: {started, target}. For functions
        that act as admin (@every, @on, or @call(admin=True))."""
        if self._op is None:
            raise RuntimeError("no gateway in this context")
        return await self._op("admin.backup", {} if target is None else {"target": target})

    async def publish(self, channel: str, data: Any) -> None:
        """Send `data` to every member of `channel` (a channels.message from {id: "server", role: "server"})."""
        if self._publish is None:
            raise RuntimeError("no gateway in this context")
        await self._publish(channel, data)


__all__ = ["DEFAULT_TIMEOUT", "Declared", "Deny", "FunctionContext", "OpError", "Records", "SqlError", "call", "every",
           "hmac_valid", "http", "on"]
