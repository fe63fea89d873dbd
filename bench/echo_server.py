"""The minimal protocol server: answer every request `{"id", "op", "args"}` with `{"id", "ok": true, "data": args}`.

It uses the same stack as the gateway (websockets' asyncio server on uvloop, msgspec JSON, no compression), so the
gap between it and the gateway is what the gateway itself costs: auth, rules, SQL, PostgreSQL.

It takes the same command line as `hapta serve` and prints the same "listening on" line, so that the test helper
tests.services.GatewayProcess can start and stop it: `python -m bench.echo_server serve --port 0`.
"""
from __future__ import annotations

import argparse
import asyncio
import signal

import msgspec
import uvloop
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

decode = msgspec.json.Decoder().decode
encode = msgspec.json.Encoder().encode


async def echo(ws: ServerConnection) -> None:
    try:
        async for frame in ws:
            request = decode(frame)
            # One reply per request, sent at once: the client sends one request per frame and waits for it.
            await ws.send(encode({"id": request.get("id"), "ok": True, "data": request.get("args")}), text=True)
    except ConnectionClosed:
        pass


async def main(host: str, port: int) -> None:
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    async with serve(echo, host, port, subprotocols=["hapta.v1.json"], compression=None,
                     max_size=64 * 1024) as server:
        bound = server.sockets[0].getsockname()[1]
        print(f"echo listening on ws://{host}:{bound}/ws", flush=True)
        await stop


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="a bare echo server for the Hapta protocol")
    parser.add_argument("command", nargs="?", default="serve", choices=["serve"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    # Accepted and ignored, so GatewayProcess's `serve --config ... --workers 1` works unchanged.
    parser.add_argument("--config")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    uvloop.run(main(args.host, args.port))
