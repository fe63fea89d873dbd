"""Plain HTTP/1.1 on the gateway's port, parsed by h11: the connections whose first request is not a GET (webhooks of
@http functions, with their bodies), each request judged by its head before any of its body is read.

websockets reads the WebSocket handshake and the GET routes (server.py). `GatewayConnection` looks at a
connection's first request line before websockets sees anything: a GET goes to websockets as it came (its
handshake, and its open_timeout, start then), anything else to an `HttpSession` here, which websockets never hears
of. A session serves one request after another (keep-alive), one answer each:

    head     whole within read_timeout (the first from the connection's start; a later one from its first byte,
             which may keep the connection waiting keepalive_timeout), at most MAX_HEAD bytes (431); the first
             one's client address is admitted under the same caps as WebSockets (flow.Admission; over: 503)
    judged   by `Plain.judge` (server.py, through the one route table) before any body is read: an answer at once
             (404, 405, a GET route's), or `Accept`: a body of at most max_body bytes (more: 413, from
             Content-Length at once, from a chunked body as its chunks come)
    body     counted in the process's and the address's budget (flow.Budget; over: 503) from its head until its
             answer is sent; whole within read_timeout (408); nothing past its end is read
    answer   `Accept.answer(body)`; meanwhile nothing is read (the socket is paused: a pipelined request waits in
             the kernel, not here); then the next request, when both sides keep the connection and this one was
             read whole. A refusal that leaves a body unread closes the connection.

Reading is paused after every socket read and resumed only when h11 needs more, so a session holds at most one
read (asyncio reads at most 256 KiB at a time) beyond what it has counted.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import h11
from websockets.asyncio.server import ServerConnection

from .. import metrics
from ..functions.webhooks import FRAMING, header_fault, phrase, text
from .flow import Admission, Budget
from .memory import Trim
from .proxies import client_address

log = logging.getLogger("hapta.http")

MAX_HEAD = 16 * 1024    # bytes of request line and headers
# A refused request's unread body is read and dropped for at most LINGER seconds and LINGER_BYTES before the close,
# so that the client reads the refusal rather than a reset (a client that sends more than that after a refusal,
# without waiting for 100-continue, may see the reset; one that refuses cannot make us read its megabytes).
LINGER = 2.0
LINGER_BYTES = 1024 * 1024
Reply = tuple[int, dict[str, str], bytes]


@dataclass(frozen=True)
class Head:
    """A request's line and headers, as h11 read them."""
    method: str
    target: str
    headers: list[tuple[str, str]]   # lower-case names, in order
    address: str | None              # the client's (X-Forwarded-For believed from trusted proxies only)
    peer: Any                        # the socket's remote address

    def fields(self) -> dict[str, str]:
        """One value per name; a repeated header's values joined with ", "."""
        joined: dict[str, str] = {}
        for name, value in self.headers:
            joined[name] = f"{joined[name]}, {value}" if name in joined else value
        return joined


@dataclass(frozen=True)
class Accept:
    """The judgement of a request that has a route: read its body (at most max_body bytes), then answer(body)."""
    max_body: int
    answer: Callable[[bytes], Awaitable[Reply]]


Judge = Callable[[Head], Awaitable["Reply | Accept"]]


@dataclass(eq=False)
class Plain:
    """What the plain-HTTP connections of one process share: the judge, the caps and bounds, and the ones open
    now (a shutdown closes them)."""
    judge: Judge
    admission: Admission
    budget: Budget
    read_timeout: float
    keepalive_timeout: float
    trusted_proxies: tuple[str, ...] = ()
    sessions: set["HttpSession"] = field(default_factory=set)
    waiting: set["GatewayConnection"] = field(default_factory=set)   # no request line yet
    draining: bool = False
    trim: Trim = field(default_factory=Trim)   # the memory a burst of bodies used, given back after it

    async def shutdown(self, within: float) -> None:
        """No more requests: idle connections close now, a request being answered gets `within` seconds to be
        answered (with Connection: close), then whatever is left is cut."""
        self.draining = True
        for connection in list(self.waiting):
            connection.transport.abort()
        for session in list(self.sessions):
            if not session.busy:
                session.transport.close()
        busy = [session.task for session in self.sessions]
        if busy:
            await asyncio.wait(busy, timeout=within)
        for session in list(self.sessions):
            session.transport.abort()


class Timeout(Exception):
    """A request's head or body did not come within its deadline."""


class HttpSession:
    """One connection that speaks plain HTTP/1.1: its requests in turn, each answered once (see the module)."""

    def __init__(self, transport: asyncio.Transport, plain: Plain, peer: Any, started: float):
        self.transport = transport
        self.plain = plain
        self.peer = peer
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self.loop = asyncio.get_running_loop()
        self.arrived = asyncio.Event()    # bytes, an end of stream, or the connection's loss
        self.writable = asyncio.Event()
        self.writable.set()
        self.fed = 0                      # bytes handed to h11 so far
        self.read = 0                     # bytes read, dropped ones too
        self.dropped = 0                  # bytes read and dropped after a refusal
        self.eof = self.lost = self.discarding = False
        self.admitted: tuple[str | None] | None = None   # the address counted in the admission, once it is
        self.busy = False                 # a request is being read or answered
        plain.sessions.add(self)
        self.task = asyncio.ensure_future(self.run(started))

    # ---- what GatewayConnection hands on from the transport ----

    def data_received(self, data: bytes) -> None:
        self.read += len(data)
        if self.discarding:
            self.dropped += len(data)
            if self.dropped > LINGER_BYTES:
                self.transport.abort()
            return
        self.transport.pause_reading()   # one read at a time: `event` resumes reading when h11 needs more
        self.fed += len(data)
        self.h11.receive_data(data)
        self.arrived.set()

    def eof_received(self) -> bool:
        self.eof = True
        if not self.discarding:
            self.h11.receive_data(b"")
        self.arrived.set()
        return True   # keep our side open: an answer may still be on its way

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.arrived.set()
        self.writable.set()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    # ---- the requests ----

    async def run(self, started: float) -> None:
        try:
            deadline: float | None = started + self.plain.read_timeout
            while True:
                try:
                    request = await self.event(deadline)
                except Timeout:   # part of a head came, not all of it in time
                    if self.h11.our_state is h11.IDLE:
                        await self.respond("GET", text(408, "request timeout: send the head sooner"), close=True)
                    break
                except h11.RemoteProtocolError as exc:
                    await self.refuse_malformed(exc)
                    break
                if not isinstance(request, h11.Request):
                    break   # the client is done (closed, gone, or idle past keep-alive)
                self.busy = True
                keep = await self.exchange(request)
                self.busy = False
                if not keep or self.plain.draining:
                    break
                self.h11.start_next_cycle()
                deadline = None   # the next head: first keep-alive idleness, then read_timeout from its first byte
        except asyncio.CancelledError:
            self.transport.abort()
            raise
        except Exception:   # a bug of ours: the operator sees it; the client sees the connection close
            log.error("a plain HTTP connection failed", exc_info=True)
            self.transport.abort()
        finally:
            self.busy = False
            await self.close()
            if self.admitted is not None:
                self.plain.admission.leave(self.admitted[0])
            self.plain.sessions.discard(self)
            self.plain.trim.ended(self.read)

    async def event(self, deadline: float | None) -> Any:
        """h11's next event, reading as it needs to, before `deadline` (Timeout). `deadline` None: the wait for a
        kept-alive connection's next request, keepalive_timeout while nothing comes, then read_timeout."""
        idle_from = self.fed
        idle_until = self.loop.time() + self.plain.keepalive_timeout
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            if self.lost:
                return h11.ConnectionClosed()
            if deadline is None and self.fed > idle_from:
                deadline = self.loop.time() + self.plain.read_timeout
            self.arrived.clear()
            self.transport.resume_reading()
            if not await self._wait(self.arrived, idle_until if deadline is None else deadline):
                if deadline is None:
                    return h11.ConnectionClosed()   # idle past keep-alive: close without a word
                raise Timeout

    async def _wait(self, event: asyncio.Event, until: float) -> bool:
        remaining = until - self.loop.time()
        if remaining <= 0:
            return False
        try:
            await asyncio.wait_for(event.wait(), remaining)
        except asyncio.TimeoutError:
            return False
        return True

    async def exchange(self, request: h11.Request) -> bool:
        """Judge, read and answer one request; whether the connection may serve another."""
        method = request.method.decode("ascii", "replace")
        headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers]
        peer_host = self.peer[0] if isinstance(self.peer, tuple) and self.peer else None
        forwarded = ", ".join(value for name, value in headers if name == "x-forwarded-for") or None
        address = client_address(peer_host, forwarded, self.plain.trusted_proxies)
        if self.admitted is None:
            refused = self.plain.admission.enter(address)
            if refused is not None:
                metrics.GUARD_CLOSES.labels(refused).inc()
                return await self.respond(method, text(503, Admission.REFUSALS[refused], **{"Retry-After": "1"}),
                                          close=True)
            self.admitted = (address,)
        head = Head(method, request.target.decode("latin-1"), headers, address, self.peer)
        try:
            verdict = await self.plain.judge(head)
        except Exception:   # the judge maps every refusal itself; this is the last guard of "one answer"
            log.error("judging an HTTP request failed", exc_info=True)
            verdict = text(500, "internal error")
        if not isinstance(verdict, Accept):
            self._skip_empty_body()
            return await self.respond(method, verdict)
        length = next((int(value) for name, value in headers if name == "content-length"), None)
        if length is not None and any(name == "transfer-encoding" for name, _ in headers):
            # both: which one frames the body is where proxies and servers disagree (request smuggling)
            return await self.respond(method, text(400, "send Content-Length or Transfer-Encoding, not both"),
                                      close=True)
        if length is not None and length > verdict.max_body:
            return await self.respond(method, text(413, f"a body here is at most {verdict.max_body} bytes"),
                                      close=True)
        held = 0   # bytes of this request counted in the budget
        try:
            if length:
                refused = self.plain.budget.take(address, length)
                if refused is not None:
                    return await self.respond(method, self._busy(refused), close=True)
                held = length
            if self.h11.client_is_waiting_for_100_continue:
                self.transport.write(self.h11.send(h11.InformationalResponse(status_code=100, headers=[])))
            chunks: list[bytes] = []
            size = 0
            deadline = self.loop.time() + self.plain.read_timeout
            while True:
                try:
                    event = await self.event(deadline)
                except Timeout:
                    return await self.respond(method, text(408, "request timeout: send the body sooner"),
                                              close=True)
                except h11.RemoteProtocolError as exc:
                    await self.refuse_malformed(exc)
                    return False
                if isinstance(event, h11.Data):
                    size += len(event.data)
                    if size > verdict.max_body:
                        return await self.respond(method, text(413, f"a body here is at most {verdict.max_body} "
                                                                    "bytes"), close=True)
                    if size > held:   # a chunked body: counted as it comes
                        refused = self.plain.budget.take(address, size - held)
                        if refused is not None:
                            return await self.respond(method, self._busy(refused), close=True)
                        held = size
                    chunks.append(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    break
                else:
                    return False   # the client went away: nobody to answer
            body = b"".join(chunks)
            chunks.clear()
            reply = await self._answer(verdict, body)
            del body
            return await self.respond(method, reply)
        finally:
            self.plain.budget.give(address, held)

    def _skip_empty_body(self) -> None:
        """Past the end of a request answered without its body, when it has none (a GET's): the connection may
        then serve the next one. A body, even a small one, is never read for a request that has no route for it:
        the connection closes after the answer instead."""
        if self.h11.their_state is h11.SEND_BODY:
            try:
                self.h11.next_event()   # EndOfMessage at once for an empty body; else Data or NEED_DATA, unread
            except h11.RemoteProtocolError:
                pass

    @staticmethod
    def _busy(refused: str) -> Reply:
        where = "this server" if refused == "capacity" else "your address"
        return text(503, f"too many request bodies in flight for {where}; try again later", **{"Retry-After": "1"})

    async def _answer(self, verdict: Accept, body: bytes) -> Reply:
        try:
            return await verdict.answer(body)
        except Exception:   # the answer maps every failure itself; this is the last guard of "one answer"
            log.error("an HTTP answer failed", exc_info=True)
            return text(500, "internal error")

    async def refuse_malformed(self, exc: h11.RemoteProtocolError) -> None:
        """400 (or 431: a head too large) for a request h11 could not read, where an answer can still go."""
        if self.h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            status = exc.error_status_hint if exc.error_status_hint in (400, 413, 414, 431) else 400
            message = "request header fields too large" if status == 431 else "bad request"
            await self.respond("GET", text(status, message), close=True)

    async def respond(self, method: str, reply: Reply, close: bool = False) -> bool:
        """Send one answer; whether the connection may serve another request."""
        status, headers, body = reply
        fields: list[tuple[str, str]] = [("Server", "hapta")]
        length = str(len(body))
        for name, value in headers.items():
            if name.lower() == "content-length" and method == "HEAD" and not body and value.isdigit():
                length = value   # a HEAD answer says how long the GET's body would be
            if name.lower() in FRAMING:
                continue
            if header_fault(name, value) is not None:
                log.error("an HTTP answer held %s; answered 500 instead", header_fault(name, value))
                return await self.respond(method, text(500, "internal error"), close)
            fields.append((name, value))
        if status in (204, 304):
            body = b""
        else:
            fields.append(("Content-Length", length))
        keep = not close and not self.plain.draining and self.h11.their_state is h11.DONE
        if not keep:
            fields.append(("Connection", "close"))
        try:
            data = self.h11.send(h11.Response(status_code=status, reason=phrase(status).encode(),
                                              headers=[(n.encode("latin-1"), v.encode("latin-1"))
                                                       for n, v in fields]))
            if body and method != "HEAD":
                data += self.h11.send(h11.Data(data=body))
            data += self.h11.send(h11.EndOfMessage())
        except h11.LocalProtocolError as exc:   # an answer h11 cannot frame: nothing of it was written
            log.error("an HTTP answer could not be sent: %s", exc)
            self.transport.abort()
            return False
        if not self.lost:
            self.transport.write(data)
            if not await self._wait(self.writable, self.loop.time() + self.plain.read_timeout):
                self.transport.abort()   # a client that does not read its answer
                return False
        return keep and self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE

    async def close(self) -> None:
        """Close; when the client may still be sending a body we did not read, read and drop it for a moment
        first (LINGER), so that it reads our answer rather than a reset."""
        if self.lost or self.transport.is_closing():
            return
        if self.eof or self.h11.their_state in (h11.DONE, h11.IDLE, h11.MUST_CLOSE, h11.CLOSED):
            self.transport.close()
            return
        self.discarding = True
        self.h11 = h11.Connection(h11.SERVER)   # what the old one still buffered (up to a read) is given back now
        self.transport.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        until = self.loop.time() + LINGER
        while not (self.eof or self.lost):
            self.arrived.clear()
            if not await self._wait(self.arrived, until):
                break
        self.transport.close()


class GatewayConnection(ServerConnection):
    """websockets' server connection, which hands a connection whose first request is not a GET to an HttpSession
    before websockets sees any of it (its handshake task is not even started)."""

    def __init__(self, *args: Any, plain: Plain, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.plain = plain
        self.early = bytearray()
        self.session: HttpSession | None = None
        self.websocket = False   # handed to websockets
        self.started = 0.0
        self.sniffing: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # websockets' side starts once the request line says GET (ServerConnection.connection_made: its handshake
        # task under open_timeout); until then the line must come within read_timeout
        self.transport = transport   # type: ignore[assignment]
        self.started = self.loop.time()
        self.sniffing = self.loop.call_later(self.plain.read_timeout, transport.abort)
        self.plain.waiting.add(self)

    def _sniffed(self) -> None:
        if self.sniffing is not None:
            self.sniffing.cancel()
            self.sniffing = None
        self.plain.waiting.discard(self)

    def data_received(self, data: bytes) -> None:
        if self.websocket:
            super().data_received(data)
            return
        if self.session is not None:
            self.session.data_received(data)
            return
        self.early += data
        if b"\n" not in self.early and len(self.early) < MAX_HEAD:
            return   # the request line is not complete yet
        self._sniffed()
        data, self.early = bytes(self.early), bytearray()
        if data.startswith(b"GET "):
            self.websocket = True
            ServerConnection.connection_made(self, self.transport)
            super().data_received(data)
            return
        self.session = HttpSession(self.transport, self.plain, self.transport.get_extra_info("peername"),
                                   self.started)
        self.session.data_received(data)

    def eof_received(self) -> bool | None:
        if self.websocket:
            return super().eof_received()
        if self.session is not None:
            return self.session.eof_received()
        return False   # nothing said yet: close

    def connection_lost(self, exc: Exception | None) -> None:
        if self.websocket:
            super().connection_lost(exc)
            return
        self._sniffed()
        if self.session is not None:
            self.session.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.session is not None:
            self.session.pause_writing()
        elif self.websocket:
            super().pause_writing()

    def resume_writing(self) -> None:
        if self.session is not None:
            self.session.resume_writing()
        elif self.websocket:
            super().resume_writing()
