"""One client's socket: read frames, run requests concurrently (bounded), write replies in batches.

Reading stops while `max_in_flight` requests are unanswered, so a client that pipelines too much is slowed by TCP
rather than growing our memory. Replies that become ready in the same loop turn leave in one frame (an array).
Replies and events wait in a byte-counted outbox; a client that lets more than `max_outgoing` bytes wait is dropped
(flow.py has the guards, docs/operations.md their defaults and close codes).
"""
from __future__ import annotations

import asyncio
import enum
import logging
import time
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State
from websockets.frames import CloseCode

from .. import metrics
from ..principal import GUEST, PeerGone, SocketPeer
from ..protocol.codec import Codec, Request, error_reply, frame_bytes
from ..protocol.errors import RATE_LIMITED, UNAVAILABLE, HaptaError
from .gateway import Gateway
from .flow import IdleTimer, MessageRate, Outbox
from .proxies import client_address

log = logging.getLogger("hapta.connection")

# Frames in a row that carried nothing usable before we stop listening to the client.
MAX_GARBAGE = 20


class Phase(enum.IntEnum):
    """Where a connection is in its life. It only ever moves forward (Connection.enter), so one comparison says
    what it may still do."""
    OPEN = 0       # requests are read and served
    DRAINING = 1   # the server shuts down: requests in flight finish, new ones are answered UNAVAILABLE
    CLOSING = 2    # a close is on its way: what the client still sends is not read
    DROPPED = 3    # cut (a client that does not read): nothing more is sent either


class Connection:
    def __init__(self, gateway: Gateway, ws: ServerConnection, codec: Codec):
        self.gateway = gateway
        self.ws = ws
        self.codec = codec
        remote = ws.remote_address
        address = client_address(remote[0] if remote else None, ws.request.headers.get("X-Forwarded-For"),
                                 gateway.settings.trusted_proxies)
        self.peer = SocketPeer(address=address, push=self.push, close=self.close_soon, deliver=self.deliver,
                               send_chunk=self.send_chunk)
        self.slots = asyncio.Semaphore(gateway.app.connections.in_flight)
        self.outbox = Outbox(gateway.app.connections.outgoing)
        self.flushing = False
        self.garbage = 0
        self.tasks: set[asyncio.Task] = set()
        self.rate = MessageRate(gateway.app.connections.message_rate)
        self.phase = Phase.OPEN
        self.idle: IdleTimer | None = None
        self.auth_timer: asyncio.TimerHandle | None = None

    async def run(self) -> None:
        self.gateway.opened(self.peer)
        self.start_timers()
        try:
            async for frame in self.ws:
                await self.receive(frame)
        except ConnectionClosed:
            pass
        finally:
            for timer in (self.idle, self.auth_timer):
                if timer is not None:
                    timer.cancel()
            self.gateway.closed(self.peer)   # its session binding, subscriptions, channels
            await self.gateway.streams.disconnect(self.peer)   # an unfinished upload leaves nothing behind
        if self.tasks:   # let writes in progress finish; their replies have nowhere to go
            await asyncio.gather(*self.tasks, return_exceptions=True)

    def close_soon(self, code: int, reason: str) -> None:
        """Close from a callback (a revoked session), after the requests in flight have their replies and what is
        queued has left (its last event); within a second or so, whatever the client does."""
        async def close() -> None:
            in_flight = {task for task in self.tasks if task is not asyncio.current_task()}
            if in_flight:   # every request gets its reply, even the one that revoked this very session
                await asyncio.wait(in_flight, timeout=1.0)
            for _ in range(100):   # at most a second: a client that does not read gets no more courtesy
                if not self.outbox and not self.flushing:
                    break
                await asyncio.sleep(0.01)
            await self.ws.close(code, reason)
        task = asyncio.ensure_future(close())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def start_timers(self) -> None:
        """The clocks App may set on a connection: idleness, and a guest's deadline to sign in."""
        app, loop = self.gateway.app, asyncio.get_running_loop()
        if app.connections.idle_timeout:
            self.idle = IdleTimer(loop, app.connections.idle_timeout,
                                  lambda: self.guard_close("idle", CloseCode.NORMAL_CLOSURE, "idle"))
        if app.connections.auth_deadline:
            self.auth_timer = loop.call_later(app.connections.auth_deadline, self.auth_deadline_passed)

    def auth_deadline_passed(self) -> None:
        if self.peer.principal.role == GUEST and self.phase < Phase.CLOSING:
            self.guard_close("auth_deadline", CloseCode.POLICY_VIOLATION, "authentication deadline passed")

    def guard_close(self, guard: str, code: int, reason: str) -> None:
        """A guard ends this connection: counted (metrics.GUARD_CLOSES), then closed once what is queued has left;
        what the client sends meanwhile is not read."""
        self.enter(Phase.CLOSING)
        metrics.GUARD_CLOSES.labels(guard).inc()
        self.close_soon(code, reason)

    def enter(self, phase: Phase) -> None:
        self.phase = max(self.phase, phase)

    async def receive(self, frame: str | bytes) -> None:
        if self.phase >= Phase.CLOSING:
            return
        if self.idle is not None:
            self.idle.touch()
        if isinstance(frame, str) and self.too_big(frame):
            return
        requests, chunks, errors = self.codec.decode(frame)
        if isinstance(frame, bytes) and (requests or errors) and self.too_big(frame):
            return
        now = time.monotonic()
        for _ in errors:   # garbage counts against the message rate too; its replies still go out
            self.rate.admit(now)
        for chunk in chunks:   # into its upload stream; an unknown stream is the client's mistake
            refused = await self.gateway.streams.received(self.peer, chunk.stream, chunk.data)
            if refused is not None:
                errors.append(error_reply(None, refused))
        if requests:
            self.garbage = 0
        elif errors:
            self.garbage += 1
        for reply in errors:
            self.enqueue(reply)
        if self.garbage >= MAX_GARBAGE:
            # after its BAD_REQUESTs
            self.guard_close("garbage", CloseCode.POLICY_VIOLATION, "too many malformed messages")
            return
        for request in requests:
            refusal = self.refusal(now)
            if refusal is not None:
                self.enqueue(error_reply(request.id, refusal))
                continue
            await self.slots.acquire()
            task = asyncio.ensure_future(self.serve(request))
            self.gateway.deadlines.watch(task)   # answered TIMEOUT past App.connections.request_timeout
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        if self.rate.flooding:
            # after its RATE_LIMITED replies
            self.guard_close("flood", CloseCode.POLICY_VIOLATION, "too many messages")

    def too_big(self, frame: str | bytes) -> bool:
        """Frames may be as large as a file chunk (server.py sets websockets' max_size so); anything but a chunk
        is held to max_message, as websockets would: close 1009."""
        limit = self.gateway.app.connections.max_message
        if len(frame) <= limit // 4 or len(frame.encode() if isinstance(frame, str) else frame) <= limit:
            return False
        self.enter(Phase.CLOSING)
        self.close_soon(CloseCode.MESSAGE_TOO_BIG, f"a message is at most {limit} bytes")
        return True

    def refusal(self, now: float) -> HaptaError | None:
        """What a request meets before it is served: the shutdown drain, then the connection's message rate."""
        if self.phase is Phase.DRAINING:
            return HaptaError(UNAVAILABLE, "the server is shutting down; reconnect", retry_after=1.0)
        wait = self.rate.admit(now)
        if wait is not None:
            metrics.RATE_LIMITED.labels("connection.message_rate").inc()
            return HaptaError(RATE_LIMITED, "too many messages on this connection", retry_after=wait)
        return None

    async def serve(self, request: Request) -> None:
        try:
            reply = await self.gateway.dispatch(self.peer, request, self.codec.binary)
        finally:
            self.slots.release()
        self.enqueue(reply)

    def push(self, event: str, data: Any = None, **extra: Any) -> None:
        """Send an unrequested event (auth.expiring, records.change, ...); it leaves with the next batch."""
        message: dict[str, Any] = {"event": event, **extra}
        if data is not None:
            message["data"] = data
        self.enqueue(message)

    async def send(self, message: dict[str, Any]) -> None:
        self.enqueue(message)

    def enqueue(self, message: dict[str, Any]) -> None:
        """Queue a reply or an event; it leaves with the next batch. Never waits for the client: one that lets
        more than App.connections.outgoing bytes wait (queued here or in the transport) is dropped instead."""
        self.enqueue_encoded(self.codec.encode(message))

    def enqueue_encoded(self, data: bytes) -> None:
        """`enqueue` for one message already encoded with this connection's codec (an event encoded once for
        many connections): every byte that leaves passes here, under the same cap."""
        if self.phase is Phase.DROPPED or self.ws.state is State.CLOSED:
            return   # nowhere to go
        if self.outbox.full(self.ws.transport.get_write_buffer_size()):
            self.drop()
            return
        self.outbox.put(data)
        self.flush_soon()

    def deliver(self, event: Any) -> None:
        """Send a realtime event encoded once for many connections (hapta.live.events.Event), or several that
        leave in one frame (Events). With nothing queued
        its frame's bytes, the same for every connection, are written at once, without a task (a change to 10,000
        subscribers is a loop of buffer writes, as in websockets.broadcast); else the message queues behind what
        waits. The max_outgoing cap applies as to every message."""
        ws = self.ws
        if self.phase is Phase.DROPPED or ws.protocol.state is not State.OPEN:   # (ws.state, without the property)
            return
        transport, outbox = ws.transport, self.outbox
        if outbox.full(transport.get_write_buffer_size()):
            self.drop()
            return
        if outbox.parts:   # (nothing is ever half-sent between frames: we never send a fragmented message)
            for part in event.parts(self.codec):   # the flush to come takes it along, in order
                outbox.put(part)
            self.flush_soon()
        else:
            transport.write(event.wire(self.codec))

    async def send_chunk(self, stream: int, data: bytes) -> None:
        """A download chunk, in its own frame, after every reply and event queued before it (the download's
        reply among them). ws.send waits while the transport is over its high-water mark, so a download goes only
        as fast as the client reads and never fills the outbox. Raises PeerGone when the socket is gone."""
        if self.phase is Phase.DROPPED:
            raise PeerGone()
        try:
            if self.outbox:
                await self.ws.send(self.outbox.take_frame(self.codec.encode), text=not self.codec.binary)
            await self.ws.send(self.codec.encode_chunk(stream, data), text=False)
        except ConnectionClosed:
            raise PeerGone() from None

    def flush_soon(self) -> None:
        """Write what is queued at the end of this loop turn: replies that become ready in the same turn leave in
        one frame."""
        if not self.flushing:
            self.flushing = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """What is queued, as one frame, written straight to the transport, as `deliver` writes an event: no task
        and no send lock per reply. What the client has not read yet waits in the transport's buffer, which the
        outbox cap counts (a client that does not read is dropped, never waited for)."""
        self.flushing = False
        if not self.outbox or self.phase is Phase.DROPPED:
            return
        if self.ws.state is not State.OPEN:   # our close frame may be out: no message may follow it
            self.outbox.clear()
            return
        self.ws.transport.write(frame_bytes(self.outbox.take_frame(self.codec.encode), text=not self.codec.binary))

    def going_away(self) -> None:
        """The shutdown's last word: what waits in the outbox leaves first (the UNAVAILABLE of every request read
        during the drain among it), then close 1001. The TCP connection then ends the way RFC 6455 wants: the
        client answers with its close frame and we half-close; closing it ourselves while the client's last
        requests are still arriving would reset it (the client sees 1006, not 1001). What the client sends after
        this is not read: no request it sent after our close frame reached it was served."""
        self.enter(Phase.CLOSING)
        protocol = self.ws.protocol
        if protocol.state is not State.OPEN:
            return
        if self.outbox and self.phase is not Phase.DROPPED:
            frame = self.outbox.take_frame(self.codec.encode)
            (protocol.send_binary if self.codec.binary else protocol.send_text)(frame)
        protocol.send_close(CloseCode.GOING_AWAY, "the server is shutting down")
        for data in protocol.data_to_send():
            if data:
                self.ws.transport.write(data)

    async def drained(self) -> None:
        """Until no request is in flight and nothing waits to be sent (the shutdown's drain)."""
        while self.tasks:
            await asyncio.wait(set(self.tasks))

    def drop(self) -> None:
        """Cut a client that does not read: free what waits for it now and reset the TCP connection (it sees
        1006); a close frame would only queue behind the bytes it is not reading."""
        self.enter(Phase.DROPPED)
        metrics.GUARD_CLOSES.labels("slow_reader").inc()
        log.warning("dropped a client that does not read (%s): over %d bytes waiting", self.peer.address,
                    self.outbox.cap)
        self.outbox.clear()
        self.ws.transport.abort()
