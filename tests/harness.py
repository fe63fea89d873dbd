"""The request path in-process: a Gateway built by Gateway.start from the test app (tests/app) on a real
PostgreSQL, and devices that stand for connections. A device sends through the codec and gateway.dispatch as a
socket would (its request watched by the deadlines), and keeps what the gateway pushes, delivers and closes, so that
dispatch, access decisions and realtime delivery get fast tests without a `hapta serve` subprocess or a socket.
The real-socket tests beside them stay: this harness leaves out only the socket."""
from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from typing import Any

import msgspec

from hapta.config import load_app
from hapta.gateway.gateway import Gateway
from hapta.principal import SocketPeer
from hapta.protocol.codec import JSON, MSGPACK, Codec
from hapta.protocol.errors import HaptaError
from hapta.settings import Settings

CODECS = {JSON: Codec(JSON), MSGPACK: Codec(MSGPACK)}
PASSWORD = "correct horse battery"
_addresses = (f"10.77.{n // 250}.{n % 250 + 1}" for n in itertools.count())


class Device:
    """One connection's worth of a client, without the socket."""

    def __init__(self, gateway: Gateway, subprotocol: str = JSON):
        self.gateway = gateway
        self.codec = CODECS[subprotocol]
        self.peer = SocketPeer(address=next(_addresses), push=self._push, close=self._close, deliver=self._deliver)
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.frames: list[int] = []   # the events in each frame delivered, in order
        self.closed: tuple[int, str] | None = None
        self.user: dict[str, Any] | None = None
        self._ids = itertools.count(1)

    # ---- what the gateway sends: kept as the client would read it off the wire ----

    def _read(self, data: bytes) -> Any:
        return (msgspec.msgpack if self.codec.binary else msgspec.json).decode(data)

    def _push(self, event: str, data: Any = None, **extra: Any) -> None:
        message: dict[str, Any] = {"event": event, **extra}
        if data is not None:
            message["data"] = data
        self.events.put_nowait(self._read(self.codec.encode(message)))

    def _deliver(self, event: Any) -> None:
        """An event, or several in one frame (a transaction's: an array), each kept as the client reads it."""
        read = self._read(event.frame(self.codec))
        for message in read if isinstance(read, list) else [read]:
            self.events.put_nowait(message)
        self.frames.append(len(read) if isinstance(read, list) else 1)

    def _close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    # ---- what the client sends ----

    async def send(self, message: Any) -> list[dict[str, Any]]:
        """Every reply to one frame (a message or a batch), as the codec and the dispatcher make them."""
        frame = self.codec.encode(message)
        requests, _, errors = self.codec.decode(frame if self.codec.binary else frame.decode())   # JSON: a text frame
        replies = [self._read(self.codec.encode(error)) for error in errors]
        tasks = [asyncio.ensure_future(self.gateway.dispatch(self.peer, r, self.codec.binary)) for r in requests]
        for task in tasks:
            self.gateway.deadlines.watch(task)
        replies += [self._read(self.codec.encode(reply)) for reply in await asyncio.gather(*tasks)]
        return replies

    async def request(self, op: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"id": next(self._ids), "op": op}
        if args is not None:
            message["args"] = args
        (reply,) = await self.send(message)
        assert reply["id"] == message["id"], reply
        return reply

    async def call(self, op: str, args: dict[str, Any] | None = None) -> Any:
        """The reply's data; HaptaError (with the reply's code) when it is an error."""
        reply = await self.request(op, args)
        if not reply["ok"]:
            error = reply["error"]
            raise HaptaError(error["code"], error["message"], details=error.get("details"),
                             retry_after=error.get("retry_after"))
        return reply["data"]

    async def event(self, name: str, timeout: float = 5.0) -> dict[str, Any]:
        """The next event called `name` (others before it are dropped), within `timeout` seconds."""
        async def wait() -> dict[str, Any]:
            while True:
                message = await self.events.get()
                if message.get("event") == name:
                    return message
        return await asyncio.wait_for(wait(), timeout)

    def disconnect(self) -> None:
        """What the connection does when its socket ends."""
        self.gateway.hub.closed(self.peer)
        self.gateway.live.disconnect(self.peer)


class Harness:
    def __init__(self, gateway: Gateway, errors: "Errors"):
        self.gateway = gateway
        self.errors = errors   # what the gateway logged at ERROR during the test (the fixture wants none)
        self.devices: list[Device] = []

    def device(self, subprotocol: str = JSON) -> Device:
        device = Device(self.gateway, subprotocol)
        self.devices.append(device)
        return device

    async def user(self, subprotocol: str = JSON) -> Device:
        """A device signed in as a new user (its record in device.user)."""
        device = self.device(subprotocol)
        name = "u" + secrets.token_hex(6)
        session = await device.call("auth.register", {"email": f"{name}@example.com", "password": PASSWORD,
                                                      "username": name})
        device.user = session["user"]
        return device

    async def admin(self) -> Device:
        device = self.device()
        await device.call("auth.admin", {"key": self.gateway.settings.admin_key})
        return device

    async def anon(self) -> Device:
        device = self.device()
        await device.call("auth.anon", {"apikey": self.gateway.settings.anon_key})
        return device

    def end(self) -> None:
        for device in self.devices:
            device.disconnect()
        self.devices.clear()


class Errors(logging.Handler):
    """Records what the gateway logs at ERROR or above (a bug's traceback: INTERNAL)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def start(app_dir, env: dict[str, str], dsn: str) -> Gateway:
    settings = Settings.load(app_dir, environ=env)
    return await Gateway.start(load_app(app_dir / "config.py"), settings, dsn, app_dir)
