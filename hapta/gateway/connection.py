"""One client's socket: read frames, run requests concurrently (bounded), write replies in batches.

Reading stops while `max_in_flight` requests are unanswered, so a client that pipelines too much is slowed by TCP
rather than growing our memory. Replies that become ready in the same loop turn leave in one frame (an array).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from ..ops.base import Peer
from ..protocol.codec import Codec, Request, error_reply
from ..protocol.errors import BAD_REQUEST, CLOSE_POLICY, HaptaError
from .gateway import Gateway

log = logging.getLogger("hapta.connection")

# Frames in a row that carried nothing usable before we stop listening to the client.
MAX_GARBAGE = 20


class Connection:
    def __init__(self, gateway: Gateway, ws: ServerConnection, codec: Codec):
        self.gateway = gateway
        self.ws = ws
        self.codec = codec
        address = ws.remote_address
        self.peer = Peer(address=address[0] if address else None)
        self.slots = asyncio.Semaphore(gateway.app.max_in_flight)
        self.outbox: list[dict[str, Any]] = []
        self.flushing = False
        self.garbage = 0
        self.tasks: set[asyncio.Task] = set()

    async def run(self) -> None:
        try:
            async for frame in self.ws:
                await self.receive(frame)
        except ConnectionClosed:
            pass
        if self.tasks:   # let writes in progress finish; their replies have nowhere to go
            await asyncio.gather(*self.tasks, return_exceptions=True)

    async def receive(self, frame: str | bytes) -> None:
        requests, chunks, errors = self.codec.decode(frame)
        for chunk in chunks:
            errors.append(error_reply(None, HaptaError(BAD_REQUEST, f"no upload stream {chunk.stream}")))
        if requests:
            self.garbage = 0
        elif errors:
            self.garbage += 1
        for reply in errors:
            await self.send(reply)
        if self.garbage >= MAX_GARBAGE:
            await self.ws.close(CLOSE_POLICY, "too many malformed messages")
            return
        for request in requests:
            await self.slots.acquire()
            task = asyncio.ensure_future(self.serve(request))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def serve(self, request: Request) -> None:
        try:
            reply = await self.gateway.dispatch(self.peer, request)
        finally:
            self.slots.release()
        await self.send(reply)

    async def send(self, message: dict[str, Any]) -> None:
        self.outbox.append(message)
        if self.flushing:
            return   # the task already flushing will take it along
        self.flushing = True
        try:
            await asyncio.sleep(0)   # let replies finishing in this same turn join the frame
            while self.outbox:
                batch, self.outbox = self.outbox, []
                data = self.codec.encode(batch[0] if len(batch) == 1 else batch)
                try:
                    await self.ws.send(data, text=not self.codec.binary)
                except ConnectionClosed:
                    self.outbox.clear()
        finally:
            self.flushing = False
