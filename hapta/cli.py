"""hapta serve | migrate | types | version: the command line that bin/hapta, the container and the binary run."""
from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
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


def _version_text() -> str:
    """The version, and for a built binary what it was built from (bin/build-binary writes build_info.json)."""
    import json
    import platform
    info_file = Path(__file__).parent / "build_info.json"
    if info_file.is_file():
        info = json.loads(info_file.read_text())
        return (f"hapta {__version__} (binary: commit {info['commit']}, built {info['built']}, "
                f"Python {info['python']}, {info['platform']})")
    return f"hapta {__version__} (Python {platform.python_version()}, {sys.platform})"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hapta", description="A WebSocket gateway in front of PostgreSQL and S3.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway for the app in --config")
    serve.add_argument("--config", default="config.py", help="the app's config.py (default: ./config.py)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=1, help="processes sharing the port (SO_REUSEPORT)")
    serve.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)   # started by the supervisor
    serve.add_argument("--reload", action="store_true", help="restart the rule workers when a rules/ file changes")
    serve.add_argument("--static", metavar="DIR", help="also serve the web pages in DIR at / (for development)")
    migrate = sub.add_parser("migrate", help="apply the app's migrations/ and exit")
    migrate.add_argument("--config", default="config.py")
    types = sub.add_parser("types", help="write TypeScript interfaces of the app's collections (migrates first)")
    types.add_argument("--config", default="config.py")
    types.add_argument("--out", default="-", help="the file to write (default: standard output)")
    sub.add_parser("version", help="print the version")
    return parser


def _raise_open_files_limit() -> None:
    """Each connection is a file descriptor; the usual soft limit (1024) would cap a gateway far below
    App.max_connections. Raise it to the hard limit, which only the operator can lift."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _exit_after_serving() -> None:
    """The stop is complete: run the atexit work (the embedded PostgreSQL's stop, flushing logs) and leave without
    the interpreter's teardown, which would free tens of thousands of connections' objects one cycle at a time
    (seconds) and push the shutdown past its 10 s."""
    import atexit
    import os
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


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

    gateway = await Gateway.start(app, settings, dsn, app_dir, reload=args.reload)
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    static = None
    if args.static:
        static = Path(args.static).resolve()
        if not static.is_dir():
            sys.exit(f"hapta: --static {args.static}: not a folder")
    hapta_server = Server(gateway, static=static)
    try:
        async with hapta_server.serve(args.host, args.port, reuse_port=args.worker) as server:
            port = server.sockets[0].getsockname()[1]
            if gateway.public_url is None:   # HAPTA_PUBLIC_URL unset: browsers reach us where we listen
                gateway.public_url = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else args.host}:{port}"
            print(f"hapta {__version__} listening on ws://{args.host}:{port}/ws", flush=True)
            print(f"anon key: {settings.anon_key}", flush=True)
            print(f"dashboard: {gateway.public_url}/_/ (sign in with the admin key)", flush=True)
            if static is not None:
                print(f"pages of {static} on {gateway.public_url}/", flush=True)
            await stop
            log.info("shutting down")
            await hapta_server.shutdown(server)
    finally:
        try:   # bounded: the whole shutdown must fit in the 10 s between SIGTERM and SIGKILL
            await asyncio.wait_for(gateway.close(), 1.5)
        except asyncio.TimeoutError:
            log.warning("upstream connections did not close in time")


async def _migrate(app_dir: Path, dsn: str) -> None:
    import asyncpg
    from .store.migrations import migrate
    conn = await asyncpg.connect(dsn)
    try:
        applied = await migrate(conn, app_dir / "migrations")
    finally:
        await conn.close()
    print("applied: " + (", ".join(applied) if applied else "nothing new"))


async def _types(app, app_dir: Path, dsn: str, out: str) -> None:
    import asyncpg
    from .models import build_models
    from .store.migrations import migrate
    from .store.postgres import introspect
    from .typescript import interfaces
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, app_dir / "migrations")
        _, models = build_models(app, await introspect(conn, [c.name for c in app.collections]))
    finally:
        await conn.close()
    text = interfaces(models)
    if out == "-":
        sys.stdout.write(text)
    else:
        Path(out).write_text(text)
        print(f"wrote {out}: {len(models)} collections", file=sys.stderr)


def _run(coro) -> None:
    try:
        import uvloop
    except ImportError:   # not on Windows; asyncio's own loop works, slower
        asyncio.run(coro)
    else:
        uvloop.run(coro)


def main(argv: list[str] | None = None) -> None:
    # A frozen binary starts its rule workers by running itself: this turns such a run into the worker.
    multiprocessing.freeze_support()
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("asyncpg.pool").addFilter(_quiet_pool_retries)
    logging.getLogger("pgserver").setLevel(logging.WARNING)   # it logs every command line it runs
    if args.command == "version":
        print(_version_text())
        return
    from .config import ConfigError
    from .settings import SettingsError
    from .store.migrations import MigrationError
    try:
        app, settings, app_dir = _load(args.config)
        if args.command == "serve":
            _raise_open_files_limit()
            if args.worker:
                from .gateway.supervisor import follow_parent
                follow_parent()
        dsn = _database_url(settings)
        if args.command == "migrate":
            _run(_migrate(app_dir, dsn))
        elif args.command == "types":
            _run(_types(app, app_dir, dsn, args.out))
        elif args.workers > 1 and not args.worker:
            from .gateway.supervisor import supervise
            sys.exit(supervise(Path(args.config).resolve(), app_dir, args.host, args.port, args.workers, dsn,
                               settings.anon_key, (*(("--reload",) if args.reload else ()),
                                                   *(("--static", str(Path(args.static).resolve())) if args.static
                                                     else ()))))
        else:
            _run(_serve(args, app, settings, app_dir, dsn))
            _exit_after_serving()
    except (ConfigError, SettingsError, MigrationError) as exc:
        sys.exit(f"hapta: {exc}")


if __name__ == "__main__":
    main()
