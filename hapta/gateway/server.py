"""The listening socket: the WebSocket handshake on /ws and the plain HTTP routes on the same port.

Every path is looked up in one table (hapta.routes.Routes: the gateway's own routes, the @http functions', the
--static pages). A connection whose first request is a GET is read by websockets (`_route` answers it, or lets
the handshake on /ws go on); any other is read by h11 (http1.py), and `_judge` decides each of its requests from
the head alone, before a byte of body is read.

It admits connections under the caps of flow.Admission (over: close 1013, or HTTP 503) and, on shutdown, drains
them: no new connections, requests in flight finish and their replies leave, then every socket closes with 1001.
"""
from __future__ import annotations

import asyncio
import functools
import http
import json
import logging
import os
import resource
import threading
from pathlib import Path
from typing import Any, Sequence

from websockets.asyncio.server import Server as WebSocketServer
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import NegotiationError
from websockets.http11 import Request, Response
from websockets.frames import CloseCode

from .. import metrics
from ..protocol.codec import JSON, SUBPROTOCOLS, Codec
from ..files.http import serve_file
from ..functions.webhooks import Reply, phrase, text
from ..routes import Routes
from .connection import Connection, Phase
from .gateway import Gateway
from .flow import Admission, Budget, connection_cap
from .http1 import Accept, GatewayConnection, Head, Plain
from .proxies import client_address
from .dashboard import serve_dashboard
from .static import POLICY as STATIC_POLICY, serve_static

log = logging.getLogger("hapta.server")

# Shutdown, within the 10 s an orchestrator usually waits between SIGTERM and SIGKILL: requests in flight get
# DRAIN_SECONDS to finish and send their replies; then each socket gets CLOSE_TIMEOUT for the closing handshake.
DRAIN_SECONDS = 5.0
CLOSE_TIMEOUT = 2.0
# Past this, the process exits at once, whatever is left (the kernel closes its sockets): tearing down tens of
# thousands of connections is CPU work that a busy machine may not finish in time. A thread keeps this deadline,
# so a busy event loop cannot delay it. The supervisor waits a little longer.
EXIT_DEADLINE = 9.0
# Connections waiting to be accepted: after a deploy or a network blip, thousands of clients reconnect at once, and
# a full queue drops their SYNs (each retried only after 1, 3, 7... s). The kernel caps it at net.core.somaxconn.
BACKLOG = 4096

# websockets logs each connection's open and close at INFO: at tens of thousands of sockets that is noise (and a
# third of the CPU a handshake costs). Its warnings and errors still come through.
_websockets_log = logging.getLogger("hapta.websockets")
_websockets_log.setLevel(logging.WARNING)


def _select_subprotocol(connection: ServerConnection, offered: Sequence[str]) -> str | None:
    """No subprotocol asked for means JSON; an offer we cannot meet is refused (HTTP 400)."""
    if not offered:
        return None
    for name in offered:
        if name in SUBPROTOCOLS:
            return name
    raise NegotiationError("unsupported subprotocol; use hapta.v1.json or hapta.v1.msgpack")


def _plain(status: http.HTTPStatus, body: str, content_type: str = "text/plain; charset=utf-8") -> Response:
    data = body.encode()
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(data))),
                       ("Cache-Control", "no-store")])
    return Response(status.value, status.phrase, headers, data)


TEXT = {"Content-Type": "text/plain; charset=utf-8"}


def _response(reply: Reply) -> Response:
    """An answer (status, headers, body) as websockets sends it."""
    status, headers, body = reply
    return Response(status, phrase(status), Headers([*headers.items(), ("Content-Length", str(len(body)))]), body)


def _out_of_time() -> None:
    log.warning("shutdown not finished after %g s; exiting now", EXIT_DEADLINE)
    logging.shutdown()
    os._exit(0)


class Server:
    def __init__(self, gateway: Gateway, static: Path | None = None):
        self.gateway = gateway
        self.static = static   # --static: web pages served at / (development)
        self.static_policy = gateway.settings.static_csp or STATIC_POLICY   # their Content-Security-Policy
        self.codecs = {name: Codec(name) for name in SUBPROTOCOLS}
        app = gateway.app
        total = connection_cap(app.connections.total, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        if total < app.connections.total:
            log.warning("max_connections %d is more than the open files limit allows; %d it is (raise ulimit -n)",
                        app.connections.total, total)
        self.admission = Admission(total, app.connections.per_address)
        self.connections: set[Connection] = set()
        self.draining = False
        self.refused_origins: set[str] = set()
        self.routes = Routes(gateway.functions.http_routes, static=static is not None)
        # plain HTTP read by h11 (http1.py): the same admission as WebSockets, and a budget for request bodies
        self.plain = Plain(self._judge, self.admission,
                           Budget(app.functions.http_memory, app.functions.http_memory_per_address),
                           app.connections.http_read_timeout, app.connections.http_keepalive_timeout,
                           gateway.settings.trusted_proxies)
        # what answers each of the gateway's own routes (hapta.routes.OWN names them): a GET's request -> response
        self.handlers = {"health": self._health, "metrics": self._metrics, "oauth2": self._oauth2,
                         "files": self._files, "dashboard": self._dashboard, "static": self._static}

    async def _route(self, connection: ServerConnection, request: Request) -> Response | None:
        """A GET that websockets read: the handshake on /ws goes on (None), anything else is answered here."""
        path = request.path.split("?", 1)[0]
        if path == "/ws":
            origin = request.headers.get("Origin")
            if not self.origin_allowed(origin):
                return self._refuse_origin(origin)
            return None   # on with the WebSocket handshake
        return await self._get(request, connection.remote_address)

    async def _get(self, request: Request, remote: Any) -> Response:
        """A GET by the route table: a gateway route's handler, an @http function's answer, 405 or 404."""
        found = self.routes.find("GET", request.path.split("?", 1)[0])
        if found.route is not None and found.route.serves in self.handlers:
            return await self.handlers[found.route.serves](request, remote)
        if found.function is not None:   # an @http function answering GET (a GET carries no body)
            address = self._address(remote, request.headers.get("X-Forwarded-For"))
            headers = {k.lower(): v for k, v in request.headers.raw_items()}
            return _response(await self.gateway.functions.answer(found.function, request.path, headers, b"",
                                                                 address))
        if found.allowed:
            return _response((405, {"Allow": ", ".join(found.allowed), **TEXT}, b"method not allowed\n"))
        return _plain(http.HTTPStatus.NOT_FOUND, "not found\n")

    async def _judge(self, head: Head) -> Reply | Accept:
        """A request h11 read the head of (http1.py), judged before any of its body is read: an @http function's
        route takes a body of at most its max_body; anything else is answered at once."""
        found = self.routes.find(head.method, head.target.split("?", 1)[0])
        if found.function is not None:
            route, fields, functions = found.function, head.fields(), self.gateway.functions
            return Accept(route.max_body, lambda body: functions.answer(route, head.target, fields, body,
                                                                        head.address))
        if found.allowed:
            return 405, {"Allow": ", ".join(found.allowed), **TEXT}, b"method not allowed\n"
        if found.route is None:
            return text(404, "not found")
        if found.route.serves == "websocket":   # a WebSocket opens on a connection of its own, with a GET first
            return text(400, "open the WebSocket on a new connection")
        # a GET route (or its HEAD: respond() sends the headers only), on a connection kept alive after another
        request = Request(head.target, Headers(head.headers))
        if head.method == "HEAD" and found.route.serves == "files":
            response = await self._files(request, head.peer, head=True)   # the headers without reading the file
        else:
            response = await self.handlers[found.route.serves](request, head.peer)
        return response.status_code, dict(response.headers.raw_items()), response.body or b""

    def _address(self, remote: Any, forwarded: str | None) -> str | None:
        return client_address(remote[0] if remote else None, forwarded, self.gateway.settings.trusted_proxies)

    async def _health(self, request: Request, remote: Any) -> Response:
        health = {"status": "ok", "pid": os.getpid(), "connections": self.admission.count}
        return _plain(http.HTTPStatus.OK, json.dumps(health), "application/json")

    async def _oauth2(self, request: Request, remote: Any) -> Response:
        status, page = await self.gateway.oauth2_callback(request.path.partition("?")[2])
        return _plain(http.HTTPStatus(status), page, "text/html; charset=utf-8")

    async def _dashboard(self, request: Request, remote: Any) -> Response:
        return serve_dashboard(request.path.split("?", 1)[0])

    async def _static(self, request: Request, remote: Any) -> Response:
        assert self.static is not None
        return serve_static(self.static, request.path, self.static_policy)

    async def _files(self, request: Request, remote: Any, head: bool = False) -> Response:
        """Signed URLs of files.url (local backend)."""
        response = await serve_file(self.gateway.files, request, head)
        origin = request.headers.get("Origin")
        if origin is not None and self.origin_allowed(origin):   # a page of an allowed origin may fetch() it
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = "Content-Length, Content-Range, Accept-Ranges, ETag"
            response.headers["Vary"] = "Origin"
        return response

    def origin_allowed(self, origin: str | None) -> bool:
        """App.origins, when set, lists the web pages that may connect; native clients send no Origin."""
        allowed = self.gateway.app.origins
        return allowed is None or origin is None or origin in allowed

    def _refuse_origin(self, origin: str) -> Response:
        """HTTP 403 (the contract). A browser cannot read it, so the client asks /health whether the gateway is up
        at all: up but refusing is this. Logged once per origin (a misconfiguration, not an attack, is the usual
        cause), at most for a bounded number of origins."""
        metrics.GUARD_CLOSES.labels("origin").inc()
        if origin not in self.refused_origins and len(self.refused_origins) < 100:
            self.refused_origins.add(origin)
            log.warning("refused a WebSocket from origin %r: not in App.origins %s", origin[:200],
                        list(self.gateway.app.origins or ()))
        return _plain(http.HTTPStatus.FORBIDDEN, "this origin may not connect (App.origins)\n")

    async def _metrics(self, request: Request, remote: Any) -> Response:
        """Prometheus text, for the admin key or a local scraper (see metrics.scrape_allowed)."""
        settings = self.gateway.settings
        address = remote[0] if remote else None
        if not metrics.scrape_allowed(address, request.headers, settings.admin_key, settings.metrics_networks):
            response = _plain(http.HTTPStatus.UNAUTHORIZED, "send Authorization: Bearer <admin key>\n")
            response.headers["WWW-Authenticate"] = 'Bearer realm="hapta metrics"'
            return response
        body, content_type = metrics.exposition(request.headers.get("Accept"))
        return _plain(http.HTTPStatus.OK, body.decode(), content_type)

    async def _handle(self, ws: ServerConnection) -> None:
        connection = Connection(self.gateway, ws, self.codecs[ws.subprotocol or JSON])
        address = connection.peer.address
        if self.draining:   # its handshake finished just as the shutdown began
            await ws.close(CloseCode.GOING_AWAY, "the server is shutting down")
            return
        refused = self.admission.enter(address)
        if refused is not None:
            # After the handshake rather than in it: a browser sees only the close code, never an HTTP status.
            metrics.GUARD_CLOSES.labels(refused).inc()
            await ws.close(CloseCode.TRY_AGAIN_LATER, Admission.REFUSALS[refused])
            return
        self.connections.add(connection)
        try:
            with metrics.CONNECTIONS.track_inprogress():
                await connection.run()
        finally:
            self.connections.discard(connection)
            self.admission.leave(address)

    async def shutdown(self, server: WebSocketServer) -> None:
        """Stop accepting, let requests in flight finish and their replies leave (at most DRAIN_SECONDS), then
        close every socket with 1001; one whose client does not take the close is cut after CLOSE_TIMEOUT."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        watchdog = threading.Timer(EXIT_DEADLINE, _out_of_time)
        watchdog.daemon = True   # a process that exits in time does not wait for it
        watchdog.start()
        self.draining = True
        server.server.close()   # the listening socket: new connections are refused (other workers take them)
        plain = asyncio.ensure_future(self.plain.shutdown(DRAIN_SECONDS))   # plain HTTP: answered, then closed
        for connection in self.connections:
            connection.enter(Phase.DRAINING)   # from now on new requests are answered UNAVAILABLE
        busy = [asyncio.ensure_future(c.drained()) for c in self.connections if c.tasks]
        if busy:
            await asyncio.wait(busy, timeout=DRAIN_SECONDS)
            for waiter in busy:
                waiter.cancel()
        for n, connection in enumerate(list(self.connections)):
            connection.going_away()   # close 1001 after its last replies; the client's close frame ends TCP
            if n % 1000 == 999:
                await asyncio.sleep(0)   # let the handlers of closed ones run meanwhile
        deadline = loop.time() + CLOSE_TIMEOUT
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for connection in list(self.connections):   # still open: its client is not reading
            connection.ws.transport.abort()
            for task in connection.tasks:   # a request still running past the drain: its reply has nowhere to go
                task.cancel()
        await plain
        log.info("sockets closed in %.1f s", loop.time() - started)

    def serve(self, host: str, port: int, *, reuse_port: bool = False):
        app = self.gateway.app
        return serve(
            self._handle, host, port,
            process_request=self._route,
            select_subprotocol=_select_subprotocol,
            subprotocols=list(SUBPROTOCOLS),   # Origin: checked in _route
            # connection.py holds what is not a file chunk to max_message
            max_size=max(app.connections.max_message, app.files.chunk + 64),
            compression=None,
            ping_interval=app.connections.ping_interval, ping_timeout=app.connections.ping_timeout,
            close_timeout=CLOSE_TIMEOUT,
            server_header="hapta",
            # a GET answered by an @http function waits at most function_http_answer_within inside the handshake
            open_timeout=max(10.0, app.functions.http_answer_within + 5),
            # a connection whose first request is not a GET is read by h11 (http1.py), not by websockets
            create_connection=functools.partial(GatewayConnection, plain=self.plain),
            logger=_websockets_log,
            reuse_port=reuse_port,
            backlog=BACKLOG,
        )
