"""The functions' side of webhooks (@http): each route's declared bounds and signature, the HTTP answer a function's
value becomes, and the deliveries a provider retries (hapta.webhook_deliveries).

What is checked where, in this order; nothing later runs for a request an earlier step refused:

    route        hapta.routes.Routes, from the request's head: 404, 405 (gateway/http1.py reads no body for them)
    body         gateway/http1.py: at most the route's `max_body` (413), within the process's and the address's
                 body budget (503), whole within the read deadline (408)
    signature    `HttpRoute.refuses`, over the whole body: 403 before any run, database row or worker is touched
    delivery     `Deliveries.claim`: the first request with a delivery id runs; a retry gets the first answer, or
                 202 with the same run id while that run goes on
    answer       Functions.answer: the function's, or 202 with the run's id once App.functions.http_answer_within
                 has passed (the run goes on, and is recorded in functions.runs)
"""
from __future__ import annotations

import http
import json
import logging
import os
from dataclasses import dataclass
from typing import Any

import msgspec

from ..hooks.api import SIGNATURE_ALGORITHMS, SIGNATURE_ENCODINGS, hmac_valid
from ..store.postgres import Database

log = logging.getLogger("hapta.functions")

Reply = tuple[int, dict[str, str], bytes]   # status, headers, body

TEXT = {"Content-Type": "text/plain; charset=utf-8"}
JSON = {"Content-Type": "application/json"}
MAX_DELIVERY_ID = 200        # characters of a delivery id that are kept; a longer one is refused (400)
MAX_KEPT_ANSWER = 64 * 1024  # bytes of an answer kept for retries; a longer one is repeated without its body
# Headers the gateway writes itself (the body's framing, the connection's fate): an answer's own are dropped.
FRAMING = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "server", "te",
                     "trailer"})
_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


@dataclass(frozen=True)
class WebhookSettings:
    """The App's bounds for @http functions that functions/ enforces (gateway/http1.py enforces the rest)."""
    max_body: int = 1024 * 1024               # a route's max_body unless it declares one
    largest_body: int = 16 * 1024 * 1024      # the most a route may declare (what one address may hold at once)
    answer_within: float = 3.0                # seconds before 202 {run}
    dedupe_window: float = 3 * 24 * 3600.0    # seconds a delivery id is remembered

    @classmethod
    def of(cls, app: Any) -> "WebhookSettings":
        return cls(app.functions.http_max_body, app.functions.http_memory_per_address,
                   float(app.functions.http_answer_within), float(app.functions.http_dedupe_window))


def text(status: int, message: str, **headers: str) -> Reply:
    return status, {**TEXT, **headers}, f"{message}\n".encode()


def phrase(status: int) -> str:
    """The reason phrase of a status, or none for one without a name (a function may answer 299)."""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def header_fault(name: str, value: str) -> str | None:
    """Why (name, value) cannot be sent as a header, or None: names are tokens; values hold no control character
    (CR or LF would end the header and start another one: response splitting) and only Latin-1 characters."""
    raw_name = name.encode("utf-8", "surrogateescape")
    if not raw_name or not set(raw_name) <= _TOKEN:
        return "a header name that is not a token"
    if any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in value):
        return f"a control character in the value of {name}"
    if any(ord(c) > 0xFF for c in value):   # a header's octets are Latin-1 (RFC 9110 5.5): "€" has none
        return f"a character outside Latin-1 in the value of {name}"
    return None


def answer_of(value: Any) -> Reply:
    """What an @http function returned, as the HTTP answer: {status, headers?, body?}, else the value as JSON
    (None: 204). An answer that cannot be sent as it is (a status out of 200-599, a header with CR/LF) is 500,
    logged in one line for the operator: a function must not be able to split the response it writes."""
    if isinstance(value, dict) and isinstance(value.get("status"), int) and set(value) <= {"status", "headers", "body"}:
        status, headers, body = value["status"], value.get("headers") or {}, value.get("body")
        if not 200 <= status <= 599 or not isinstance(headers, dict):
            log.error("an @http function answered status %r, headers %r", status, type(headers).__name__)
            return text(500, "internal error")
        headers = {str(k): str(v) for k, v in headers.items()}
        for name, header in headers.items():
            fault = header_fault(name, header)
            if fault is not None:
                log.error("an @http function answered %s; answered 500 instead", fault[:120])
                return text(500, "internal error")
        headers = {k: v for k, v in headers.items() if k.lower() not in FRAMING}
        if isinstance(body, (bytes, bytearray)):
            return status, headers, bytes(body)
        if isinstance(body, str):
            return status, {**TEXT, **headers}, body.encode()
        if body is None:
            return status, headers, b""
        try:
            return status, {**JSON, **headers}, msgspec.json.encode(body)
        except (TypeError, ValueError, msgspec.EncodeError):
            log.error("an @http function answered a body that is not JSON: %s", type(body).__name__)
            return text(500, "internal error")
    if value is None:
        return 204, {}, b""
    try:
        return 200, dict(JSON), msgspec.json.encode(value)
    except (TypeError, ValueError, msgspec.EncodeError):
        log.error("an @http function answered a value that is not JSON: %s", type(value).__name__)
        return text(500, "internal error")


def accepted(run: int) -> Reply:
    """The answer past the bound: the run goes on; its id finds it in functions.runs."""
    return 202, dict(JSON), msgspec.json.encode({"run": run, "status": "running"})


@dataclass(frozen=True)
class HttpRoute:
    """One `@http(method, path, ...)` as the gateway enforces it (hapta.hooks.api.http declares it)."""
    function: str
    method: str
    path: str
    max_body: int
    secret: str | None = None               # the environment variable that holds the signing key
    signature_header: str | None = None     # lower-case
    signature_prefix: str = ""
    signature_encoding: str = "hex"
    algorithm: str = "sha256"
    delivery_id_header: str | None = None   # lower-case

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    @classmethod
    def declared(cls, function: str, spec: str, option: str, default_max_body: int) -> "HttpRoute":
        """The route a trigger ("http", "POST /hooks/x", option) declares; its options are JSON (hooks.api.http
        wrote them). ValueError for options this gateway does not know."""
        method, path = spec.split(" ", 1)
        options = json.loads(option) if option else {}
        if not isinstance(options, dict):
            raise ValueError("@http options are not a dict")
        unknown = set(options) - {"max_body", "secret", "signature_header", "signature_prefix",
                                  "signature_encoding", "algorithm", "delivery_id_header"}
        if unknown:
            raise ValueError(f"@http does not know {sorted(unknown)[0]!r}")
        route = cls(function, method, path, **{"max_body": default_max_body, **options})
        if route.signature_encoding not in SIGNATURE_ENCODINGS or route.algorithm not in SIGNATURE_ALGORITHMS:
            raise ValueError("@http: an unknown signature encoding or algorithm")
        return route

    def refuses(self, headers: dict[str, str], body: bytes) -> Reply | None:
        """403 when the route is signed and the body's signature is not there or not right; 500 when the key's
        variable is not set (the operator's mistake: logged, and nothing runs). None: on with the request."""
        if self.secret is None or self.signature_header is None:
            return None
        key = os.environ.get(self.secret)
        if not key:
            log.error("@http %s: the environment variable %s is not set: every request is refused", self.key,
                      self.secret)
            return text(500, "internal error")
        if not hmac_valid(key, body, headers.get(self.signature_header, ""), algorithm=self.algorithm,
                          prefix=self.signature_prefix, encoding=self.signature_encoding):
            return text(403, "bad signature")
        return None

    def delivery(self, headers: dict[str, str]) -> str | None:
        """The provider's delivery id, when the route names its header and the request carries it."""
        if self.delivery_id_header is None:
            return None
        value = headers.get(self.delivery_id_header, "").strip()
        return value or None


@dataclass(frozen=True)
class Claim:
    run: int                   # the run that answers this delivery (this request's, or the first one's)
    ours: bool                 # this request runs it
    answer: Reply | None       # a retry's: the first run's answer, once it was given


class Deliveries:
    """Provider deliveries already seen, in PostgreSQL (every process and node sees them): `claim` before a run,
    `answered` after it. An answer below 500 is kept for the window and repeated to retries; a failure (500, 503,
    504) lets the claim go, so that the provider's retry runs again. A claim whose run never answered (its
    process died) is taken over once it is older than `stale` seconds."""

    def __init__(self, db: Database, window: float):
        self.db = db
        self.window = window

    async def claim(self, route: str, delivery: str, stale: float) -> Claim:
        for _ in range(3):   # the row may go (a failed run lets it go) between the two statements
            run = await self.db.fetchval(
                "INSERT INTO hapta.webhook_deliveries AS d (route, delivery, run) "
                "VALUES ($1, $2, nextval(pg_get_serial_sequence('hapta.function_runs', 'id'))) "
                "ON CONFLICT (route, delivery) DO UPDATE SET run = EXCLUDED.run, at = now(), status = NULL, "
                "headers = NULL, body = NULL "
                "WHERE d.at < now() - make_interval(secs => $3) "
                "OR (d.status IS NULL AND d.at < now() - make_interval(secs => $4)) RETURNING run",
                route, delivery, self.window, stale)
            if run is not None:
                return Claim(run, True, None)
            row = await self.db.fetchrow("SELECT run, status, headers, body FROM hapta.webhook_deliveries "
                                         "WHERE route = $1 AND delivery = $2", route, delivery)
            if row is not None:
                answer = None if row["status"] is None else (
                    row["status"], json.loads(row["headers"]), bytes(row["body"] or b""))
                return Claim(row["run"], False, answer)
        raise RuntimeError("a delivery's claim kept changing hands")

    async def answered(self, route: str, delivery: str, run: int, reply: Reply) -> None:
        status, headers, body = reply
        if status >= 500:
            await self.db.execute("DELETE FROM hapta.webhook_deliveries WHERE route = $1 AND delivery = $2 AND "
                                  "run = $3", route, delivery, run)
            return
        await self.db.execute("UPDATE hapta.webhook_deliveries SET status = $4, headers = $5, body = $6 "
                              "WHERE route = $1 AND delivery = $2 AND run = $3", route, delivery, run, status,
                              json.dumps(headers), body if len(body) <= MAX_KEPT_ANSWER else b"")

    async def prune(self) -> None:
        await self.db.execute("DELETE FROM hapta.webhook_deliveries WHERE at < now() - make_interval(secs => $1)",
                              self.window)
