"""The functions' side of webhooks (@http): each route's declared bounds and signature, the HTTP answer a function's
value becomes, and the deliveries a provider retries (hapta.webhook_deliveries).

What is checked where, in this order; nothing later runs for a request an earlier step refused:

    route        hapta.routes.Routes, from the request's head: 404, 405 (gateway/http1.py reads no body for them)
    body         gateway/http1.py: at most the route's `max_body` (413), within the process's and the address's
                 body budget (503), whole within the read deadline (408)
    signature    `HttpRoute.refuses`, over the whole body: 403 before any run, database row or worker is touched
    delivery     `Deliveries.claim`: the first request with a delivery id runs; a retry gets the first answer, or
                 202 with the same run id while that run goes on
    answer       Webhooks.answer: the function's, or 202 with the run's id once App.functions.http_answer_within
                 has passed (the run goes on, and is recorded in functions.runs)

Webhooks is the @http trigger of the functions service (triggers.Trigger): it checks each declared route at start,
keeps the table of routes hapta.routes reads, and answers their requests.
"""
from __future__ import annotations

import asyncio
import http
import json
import logging
import os
import urllib.parse
from dataclasses import dataclass
from typing import Any, Mapping

import msgspec

from ..config import ConfigError
from ..isolation import refused_names
from ..principal import ADMIN, ANON, Peer, Principal, SocketPeer
from ..protocol.errors import TIMEOUT, UNAVAILABLE, HaptaError
from ..routes import reserved
from ..store.failures import UPSTREAM_ERRORS
from ..store.postgres import Database
from ..workers.messages import Denied, Raised
from .api import SIGNATURE_ALGORITHMS, SIGNATURE_ENCODINGS, hmac_valid
from .journal import Journal
from .triggers import Function, Runs

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
    """One `@http(method, path, ...)` as the gateway enforces it (hapta.functions.api.http declares it)."""
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
        """The route a trigger ("http", "POST /hooks/x", option) declares; its options are JSON (functions.api.http
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


# A webhook delivery claimed by a run that never answered (its process died) is taken over by a retry after the
# function's timeout and this many seconds more.
STALE_DELIVERY = 60.0


class Webhooks:
    kind = "http"

    def __init__(self, db: Database, runs: Runs, journal: Journal, settings: WebhookSettings, app: Any):
        self.runs = runs
        self.journal = journal
        self.settings = settings
        self.app = app   # whose own secrets no route may sign with (isolation.refused_names)
        self.deliveries = Deliveries(db, settings.dedupe_window)
        self.functions: Mapping[str, Function] = {}
        self.routes: dict[str, dict[str, HttpRoute]] = {}   # path -> method -> the @http route there

    def check(self, function: Function, spec: str, option: str) -> None:
        try:
            route = HttpRoute.declared(function.name, spec, option, self.settings.max_body)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"functions/{function.file}: {function.name}: {exc}") from None
        if reserved(route.path):
            raise ConfigError(f"functions/{function.file}: {function.name} declares {spec}, a path of the gateway's "
                              "own")
        if route.max_body > self.settings.largest_body:
            raise ConfigError(f"functions/{function.file}: {function.name} declares max_body={route.max_body}, more "
                              f"than App.functions.http_memory_per_address ({self.settings.largest_body}) lets one "
                              "request hold")
        if route.secret is not None and refused_names((route.secret,), self.app):
            raise ConfigError(f"functions/{function.file}: {function.name} may not sign with {route.secret}: the "
                              "gateway's own settings and credentials are no webhook's key")

    def describe(self, spec: str, option: str) -> str:
        return f"http {spec}"

    def use(self, functions: Mapping[str, Function]) -> None:
        self.functions = functions
        routes: dict[str, dict[str, HttpRoute]] = {}
        for f in functions.values():
            for spec, option in f.declares("http"):
                route = HttpRoute.declared(f.name, spec, option, self.settings.max_body)   # check() passed it
                routes.setdefault(route.path, {})[route.method] = route
        self.routes = routes

    def start(self) -> None:
        pass   # requests come to it (gateway/server.py, gateway/http1.py)

    async def close(self) -> None:
        pass   # runs under way end on their own (their tasks are the service's: Runs.later)

    def at(self, path: str) -> dict[str, HttpRoute]:
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
        if function is None:
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
            run = await self.journal.begin(function.name, trigger, run)
        except UPSTREAM_ERRORS as exc:
            log.warning("webhook %s not run: the database failed (%s)", route.key, type(exc).__name__)
            if delivery is not None and run is not None:
                self.runs.later(self._let_go(route, delivery, run))
            return text(503, "unavailable", **{"Retry-After": "1"})
        request = {"method": route.method, "path": path, "query": fields, "headers": headers, "body": body}
        acting = SocketPeer(Principal(ADMIN if function.admin else ANON), address)
        task = self.runs.later(self._webhook(function, route, acting, trigger, request, run, delivery))
        done, _ = await asyncio.wait({task}, timeout=self.settings.answer_within)
        return task.result() if done else accepted(run)

    async def _webhook(self, function: Function, route: HttpRoute, acting: Peer, trigger: str, request: Any,
                       run: int, delivery: str | None) -> Reply:
        """A webhook's run, to its end whether or not its request still waits; its answer kept for retries."""
        try:
            outcome, error = await self.runs.recorded(function, acting, trigger, request, run=run)
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
