"""A WebSocket client that sends only what a test tells it to: websockets' sans-I/O ClientProtocol over a plain
socket, with none of a real client's manners. It never answers a ping, never acknowledges a close, and reads only
when asked, so a test can play a client whose peer is gone or one that never reads.
"""
from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

from websockets.client import ClientProtocol
from websockets.frames import Close, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri


class RawClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, protocol: ClientProtocol):
        self.reader = reader
        self.writer = writer
        self.protocol = protocol
        self.messages: list[Any] = []   # decoded text messages, in order
        self.close: Close | None = None
        self.eof = False

    @classmethod
    async def connect(cls, url: str, *, local_address: str | None = None, receive_buffer: int | None = None,
                      timeout: float = 10) -> "RawClient":
        uri = parse_uri(url)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:   # before connect, so that the window it advertises stays small
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        if local_address is not None:
            sock.bind((local_address, 0))
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (uri.host, uri.port))
        reader, writer = await asyncio.open_connection(sock=sock)
        protocol = ClientProtocol(uri, max_size=None)
        protocol.send_request(protocol.connect())
        client = cls(reader, writer, protocol)
        client._write()
        async with asyncio.timeout(timeout):
            while not any(isinstance(event, Response) for event in await client._read_events()):
                pass
        if protocol.handshake_exc is not None:
            raise protocol.handshake_exc
        return client

    def _write(self) -> None:
        """Only the bytes of our own frames go out: pongs and close replies the protocol queued are dropped."""
        for data in self.protocol.data_to_send():
            if data:
                self.writer.write(data)

    async def _read_events(self) -> list[Any]:
        data = await self.reader.read(65536)
        if data:
            self.protocol.receive_data(data)
        else:
            self.eof = True
            self.protocol.receive_eof()
        self.protocol.data_to_send()   # pongs and the close reply: a peer that is gone sends none
        events = self.protocol.events_received()
        for event in events:
            if getattr(event, "opcode", None) is Opcode.TEXT:
                decoded = json.loads(event.data)
                self.messages.extend(decoded if isinstance(decoded, list) else [decoded])
            elif getattr(event, "opcode", None) is Opcode.CLOSE:
                self.close = Close.parse(event.data)
        return events

    async def send(self, message: Any) -> None:
        self.protocol.send_text(json.dumps(message).encode())
        self._write()
        await self.writer.drain()

    async def recv(self, timeout: float = 10) -> Any:
        """The next message (a reply or an event)."""
        async with asyncio.timeout(timeout):
            while not self.messages:
                if self.eof:
                    raise ConnectionError("closed")
                await self._read_events()
        return self.messages.pop(0)

    async def wait_closed(self, timeout: float = 10) -> Close | None:
        """Read until the server's close frame or the end of the stream; return the close frame (None: none came)."""
        async with asyncio.timeout(timeout):
            while self.close is None and not self.eof:
                try:
                    await self._read_events()
                except ConnectionError:
                    self.eof = True
        return self.close

    def abort(self) -> None:
        self.writer.transport.abort()
