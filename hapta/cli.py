"""hapta serve | migrate | version: the command line that bin/hapta, the container and the binary run."""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from . import __version__

log = logging.getLogger("hapta")


def _quiet_pool_retries(record: logging.LogRecord) -> bool:
    """asyncpg logs a full traceback each time it retries a lost database; one line says it as well."""
    if record.exc_info:
        record.msg = f"{record.msg} ({record.exc_info[1]!r})"
        record.exc_info = None
    return True


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hapta", description="A WebSocket gateway in front of PostgreSQL and S3.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway for the app in --config")
    serve.add_argument("--config", default="config.py", help="the app's config.py (default: ./config.py)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=1, help="processes sharing the port (SO_REUSEPORT)")
    migrate = sub.add_parser("migrate", help="apply the app's migrations/ and exit")
    migrate.add_argument("--config", default="config.py")
    sub.add_parser("version", help="print the version")
    return parser


def _database_url(settings) -> str:
    if settings.database_url:
        return settings.database_url
    from .store.embedded import start_embedded
    return start_embedded(settings.data_dir)


def _load(config: str):
    from .config import load_app
    from .settings import Settings
    path = Path(config).resolve()
    if not path.is_file():
        sys.exit(f"hapta: no config file at {path}")
    app_dir = path.parent
    sys.path.insert(0, str(app_dir))
    return load_app(path), Settings.load(app_dir), app_dir


async def _serve(args, app, settings, app_dir: Path, dsn: str) -> None:
    from .gateway.gateway import Gateway
    from .gateway.server import Server

    gateway = await Gateway.start(app, settings, dsn, app_dir)
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    try:
        async with Server(gateway).serve(args.host, args.port, reuse_port=args.workers > 1) as server:
            port = server.sockets[0].getsockname()[1]
            print(f"hapta {__version__} listening on ws://{args.host}:{port}/ws", flush=True)
            print(f"anon key: {settings.anon_key}", flush=True)
            await stop
            log.info("shutting down")
    finally:
        await gateway.close()


async def _migrate(app_dir: Path, dsn: str) -> None:
    import asyncpg
    from .store.migrations import migrate
    conn = await asyncpg.connect(dsn)
    try:
        applied = await migrate(conn, app_dir / "migrations")
    finally:
        await conn.close()
    print("applied: " + (", ".join(applied) if applied else "nothing new"))


def _run(coro) -> None:
    try:
        import uvloop
    except ImportError:   # not on Windows; asyncio's own loop works, slower
        asyncio.run(coro)
    else:
        uvloop.run(coro)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("asyncpg.pool").addFilter(_quiet_pool_retries)
    if args.command == "version":
        print(f"hapta {__version__}")
        return
    from .models import ConfigError
    from .settings import SettingsError
    from .store.migrations import MigrationError
    try:
        app, settings, app_dir = _load(args.config)
        dsn = _database_url(settings)
        if args.command == "migrate":
            _run(_migrate(app_dir, dsn))
        else:
            _run(_serve(args, app, settings, app_dir, dsn))
    except (ConfigError, SettingsError, MigrationError) as exc:
        sys.exit(f"hapta: {exc}")


if __name__ == "__main__":
    main()
