"""A raw HTTP/1.1 client for the tests of the gateway's plain HTTP: bytes go out exactly as a test writes them (a
malformed head, half a body, two requests in one write), and each answer is read with a deadline, on one
connection for as many requests as the server keeps it for."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass


@dataclass
class Answer:
    status: int
    headers: dict[str, str]   # lower-case names
    body: bytes

    def json(self):
        import json
        return json.loads(self.body)


class Raw:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, address: str | None = None) -> "Raw":
        reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                       local_addr=(address, 0) if address else None)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self, timeout: float = 10, head: bool = False) -> Answer:
        """The next answer (its head only for a HEAD request's): the server writes Content-Length on each."""
        async def read() -> Answer:
            raw_head = await self.reader.readuntil(b"\r\n\r\n")
            lines = raw_head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ")[1])
            headers: dict[str, str] = {}
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            length = 0 if head or status in (204, 304) or 100 <= status < 200 else int(headers["content-length"])
            body = await self.reader.readexactly(length)
            return Answer(status, headers, body)
        return await asyncio.wait_for(read(), timeout)

    async def closed(self, timeout: float = 10) -> bool:
        """Whether the server closes the connection (an end of stream, or a reset) within `timeout`; what it still
        sends before that is dropped."""
        async def drained() -> None:
            while await self.reader.read(65536):
                pass
        try:
            await asyncio.wait_for(drained(), timeout)
        except ConnectionResetError:
            return True
        except asyncio.TimeoutError:
            return False
        return True

    def close(self) -> None:
        self.writer.transport.abort()

    async def __aenter__(self) -> "Raw":
        return self

    async def __aexit__(self, *exc) -> None:
        self.close()


def post(path: str, body: bytes, headers: dict[str, str] | None = None, method: str = "POST") -> bytes:
    """A request with a Content-Length body, as bytes."""
    lines = [f"{method} {path} HTTP/1.1", "Host: gateway", f"Content-Length: {len(body)}",
             *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked(path: str, parts: list[bytes], headers: dict[str, str] | None = None) -> bytes:
    """A request with a chunked body of `parts`, as bytes."""
    lines = [f"POST {path} HTTP/1.1", "Host: gateway", "Transfer-Encoding: chunked",
             *(f"{k}: {v}" for k, v in (headers or {}).items())]
    body = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts if part) + b"0\r\n\r\n"
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
