"""The listening socket: the WebSocket handshake on /ws and the plain HTTP routes on the same port."""
from __future__ import annotations

import asyncio
import http
import logging
from typing import Sequence

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import NegotiationError
from websockets.http11 import Request, Response

from ..protocol.codec import JSON, SUBPROTOCOLS, Codec
from .connection import Connection
from .gateway import Gateway

log = logging.getLogger("hapta.server")


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


class Server:
    def __init__(self, gateway: Gateway):
        self.gateway = gateway
        self.codecs = {name: Codec(name) for name in SUBPROTOCOLS}

    async def _route(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/ws":
            return None   # on with the WebSocket handshake
        if path == "/health":
            return _plain(http.HTTPStatus.OK, '{"status":"ok"}', "application/json")
        return _plain(http.HTTPStatus.NOT_FOUND, "not found\n")

    async def _handle(self, ws: ServerConnection) -> None:
        await Connection(self.gateway, ws, self.codecs[ws.subprotocol or JSON]).run()

    def serve(self, host: str, port: int, *, reuse_port: bool = False):
        app = self.gateway.app
        origins = None if app.origins is None else [*app.origins, None]   # None: native clients send no Origin
        return serve(
            self._handle, host, port,
            process_request=self._route,
            select_subprotocol=_select_subprotocol,
            subprotocols=list(SUBPROTOCOLS),
            origins=origins,
            max_size=app.max_message,
            compression=None,
            ping_interval=20, ping_timeout=20,
            close_timeout=5,
            server_header="hapta",
            reuse_port=reuse_port,
        )
