"""HTTP requests with a body on the gateway's port: the webhooks of @http functions (hapta.functions.http).

websockets answers the opening handshake and the plain GET routes (server.py), but reads no request bodies. So
the connection class below looks at the request line first: a GET goes to websockets as it came, anything else is
read here (the head, then Content-Length bytes of body, at most `max_body`), answered once by `answer`, and
closed. websockets' handshake for that connection then ends quietly: it sees the connection lost before any
request.

    answer(method, target, headers, body, address) -> (status, headers, body)
"""
from __future__ import annotations

import asyncio
import http
from typing import Any, Awaitable, Callable

from websockets.asyncio.server import ServerConnection

MAX_HEAD = 16 * 1024   # bytes of request line and headers

Answer = Callable[[str, str, dict[str, str], bytes, str | None], Awaitable[tuple[int, dict[str, str], bytes]]]


class Webhook:
    """One plain HTTP/1.1 request, parsed as its bytes arrive (sans-I/O: feed() returns True once complete)."""

    def __init__(self, max_body: int):
        self.max_body = max_body
        self.buffer = bytearray()
        self.head: tuple[str, str, dict[str, str]] | None = None
        self.length = 0
        self.error: tuple[int, str] | None = None   # a request we refuse without reading further

    def feed(self, data: bytes) -> bool:
        self.buffer += data
        if self.head is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    self.error = (431, "request header fields too large")
                    return True
                return False
            self.head = self._parse(bytes(self.buffer[:end]))
            del self.buffer[:end + 4]
            if self.error is not None:
                return True
        return len(self.buffer) >= self.length

    def _parse(self, raw: bytes) -> tuple[str, str, dict[str, str]]:
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            self.error = (400, "bad request line")
            return "", "", {}
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip():
                self.error = (400, "bad header line")
                return "", "", {}
            key = name.lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
        if "transfer-encoding" in headers:
            self.error = (411, "send a Content-Length, not a transfer encoding")
        else:
            try:
                self.length = int(headers.get("content-length", "0"))
            except ValueError:
                self.length = -1
            if self.length < 0:
                self.error = (400, "bad Content-Length")
            elif self.length > self.max_body:
                self.error = (413, f"a body is at most {self.max_body} bytes")
        return parts[0], parts[1], headers

    @property
    def body(self) -> bytes:
        return bytes(self.buffer[:self.length])


def response_bytes(status: int, headers: dict[str, str], body: bytes) -> bytes:
    reason = http.HTTPStatus(status).phrase if status in http.HTTPStatus._value2member_map_ else ""
    lines = [f"HTTP/1.1 {status} {reason}", "Server: hapta", f"Content-Length: {len(body)}", "Connection: close",
             *(f"{name}: {value}" for name, value in headers.items()
               if name.lower() not in ("content-length", "connection", "server")
               and "\r" not in f"{name}{value}" and "\n" not in f"{name}{value}")]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace") + body


class GatewayConnection(ServerConnection):
    """websockets' server connection, which hands a non-GET request to `answer` instead of the handshake."""

    def __init__(self, *args: Any, answer: Answer, max_body: int, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.answer = answer
        self.max_body = max_body
        self.sniffed = False
        self.early = bytearray()
        self.webhook: Webhook | None = None

    def data_received(self, data: bytes) -> None:
        if self.webhook is not None:
            self._feed(data)
            return
        if self.sniffed:
            super().data_received(data)
            return
        self.early += data
        if b"\r\n" not in self.early and len(self.early) < MAX_HEAD:
            return   # the request line is not complete yet
        self.sniffed = True
        data, self.early = bytes(self.early), bytearray()
        if data.startswith(b"GET "):
            super().data_received(data)
            return
        self.webhook = Webhook(self.max_body)
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        assert self.webhook is not None
        if self.webhook.feed(data) and not getattr(self, "_answering", False):
            self._answering = True
            asyncio.ensure_future(self._answer(self.webhook))

    async def _answer(self, webhook: Webhook) -> None:
        if webhook.error is not None:
            status, text = webhook.error
            reply = (status, {"Content-Type": "text/plain; charset=utf-8"}, f"{text}\n".encode())
        else:
            assert webhook.head is not None
            method, target, headers = webhook.head
            address = self.remote_address[0] if self.remote_address else None
            try:
                reply = await self.answer(method, target, headers, webhook.body, address)
            except Exception:   # answer maps every failure itself; this is the last guard of "one reply"
                self.logger.error("a webhook's answer failed", exc_info=True)
                reply = (500, {"Content-Type": "text/plain; charset=utf-8"}, b"internal error\n")
        if not self.transport.is_closing():
            self.transport.write(response_bytes(*reply))
            self.transport.close()
