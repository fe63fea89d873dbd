"""An async Python client for the Hapta protocol.

    async with await Client.connect("ws://127.0.0.1:8080/ws") as hapta:
        await hapta.call("auth.anon", {"apikey": key})
        page = await hapta.call("records.list", {"collection": "posts"})
        async for event in hapta.events():
            ...

`call` may be used from many tasks at once (requests are pipelined, replies matched by id); a failed call
raises HaptaError carrying the protocol's error code.
"""
from __future__ import annotations

import asyncio
import itertools
from typing import Any, AsyncIterator

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from .protocol.codec import JSON, MSGPACK
from .protocol.errors import HaptaError

__all__ = ["Client", "HaptaError", "JSON", "MSGPACK"]


class Client:
    def __init__(self, ws: ClientConnection, subprotocol: str):
        self.ws = ws
        self.binary = subprotocol == MSGPACK
        if self.binary:
            self._encode, self._decode = msgspec.msgpack.Encoder().encode, msgspec.msgpack.Decoder().decode
        else:
            self._encode, self._decode = msgspec.json.Encoder().encode, msgspec.json.Decoder().decode
        self._ids = itertools.count(1)
        self._pending: dict[Any, asyncio.Future] = {}
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._closed: BaseException | None = None
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def connect(cls, url: str, *, subprotocol: str = JSON, origin: str | None = None,
                      **options: Any) -> "Client":
        ws = await connect(url, subprotocols=[subprotocol], origin=origin, compression=None,
                           max_size=options.pop("max_size", 16 * 1024 * 1024), **options)
        return cls(ws, subprotocol)

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        await self.ws.close()
        await asyncio.gather(self._reader, return_exceptions=True)

    async def call(self, op: str, args: dict[str, Any] | None = None) -> Any:
        """Send one request and wait for its reply; raise HaptaError on an error reply."""
        future = self._request(op, args)
        await self._send(self._message(future))
        return await future

    async def batch(self, calls: list[tuple[str, dict[str, Any] | None]]) -> list[Any]:
        """Send several requests in one frame; return each one's data, or its HaptaError, in order."""
        futures = [self._request(op, args) for op, args in calls]
        await self._send([self._message(f) for f in futures])
        return list(await asyncio.gather(*futures, return_exceptions=True))

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Unrequested messages from the gateway, in order of arrival; ends when the connection closes."""
        while True:
            if self._closed is not None and self._events.empty():
                return
            event = await self._events.get()
            if event.get("event") == "__closed__":
                return
            yield event

    async def next_event(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next event; ConnectionError when the connection closes, TimeoutError after `timeout` seconds."""
        async def first() -> dict[str, Any]:
            async for event in self.events():
                return event
            raise ConnectionError("connection closed")
        return await asyncio.wait_for(first(), timeout)

    # ---- plumbing ----

    def _request(self, op: str, args: dict[str, Any] | None) -> asyncio.Future:
        if self._closed is not None:
            raise ConnectionError("connection closed") from self._closed
        request_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        future.request = {"id": request_id, "op": op, "args": args or {}}  # type: ignore[attr-defined]
        self._pending[request_id] = future
        return future

    @staticmethod
    def _message(future: asyncio.Future) -> dict[str, Any]:
        return future.request  # type: ignore[attr-defined]

    async def _send(self, message: Any) -> None:
        await self.ws.send(self._encode(message), text=not self.binary)

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                message = self._decode(frame)
                for item in message if isinstance(message, list) else [message]:
                    self._dispatch(item)
        except ConnectionClosed as exc:
            self._closed = exc
        except BaseException as exc:   # a decoding bug must not leave callers waiting forever
            self._closed = exc
            raise
        finally:
            if self._closed is None:
                self._closed = ConnectionError("connection closed")
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("connection closed before the reply"))
            self._pending.clear()
            self._events.put_nowait({"event": "__closed__"})

    def _dispatch(self, item: dict[str, Any]) -> None:
        if "event" in item:
            self._events.put_nowait(item)
            return
        future = self._pending.pop(item.get("id"), None)
        if future is None or future.done():
            return
        if item.get("ok"):
            future.set_result(item.get("data"))
        else:
            error = item.get("error") or {}
            future.set_exception(HaptaError(error.get("code", "INTERNAL"), error.get("message", ""),
                                            details=error.get("details"), retry_after=error.get("retry_after")))

    @property
    def close_code(self) -> int | None:
        return self.ws.close_code
