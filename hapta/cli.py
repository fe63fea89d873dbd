"""hapta serve | migrate | types | backup | restore | version | psql | reset | admin: the command line that bin/hapta,
the container and the binary run (the development loop's commands: develop.py; backups: store/backup/)."""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import gc
import logging
import multiprocessing
import signal
import sys
from pathlib import Path
from typing import Callable

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
    parser.add_argument("--debug", action="store_true", help="a failure at start prints its whole traceback")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway for the app in --config")
    serve.add_argument("--config", default="config.py", help="the app's config.py (default: ./config.py)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=1, help="processes sharing the port (SO_REUSEPORT)")
    serve.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)   # started by the supervisor
    serve.add_argument("--reload", action="store_true", help="development: new rule and function workers when rules/ or "
                       "functions/ change; a restart when config.py or migrations/ do")
    serve.add_argument("--static", metavar="DIR", help="also serve the web pages in DIR at / (for development)")
    migrate = sub.add_parser("migrate", help="apply the app's migrations/ and exit")
    migrate.add_argument("--config", default="config.py")
    types = sub.add_parser("types", help="write TypeScript interfaces of the app's collections (migrates first)")
    types.add_argument("--config", default="config.py")
    types.add_argument("--out", default="-", help="the file to write (default: standard output)")
    backup = sub.add_parser("backup", help="write the database and the local files to one archive (docs/operations.md)")
    backup.add_argument("target", nargs="?", metavar="FILE", help="the archive to write (default: "
                        "./hapta-backup-<UTC time>.tar)")
    backup.add_argument("--config", default="config.py")
    restore = sub.add_parser("restore", help="bring a backup back into an empty database and data directory")
    restore.add_argument("file", metavar="FILE")
    restore.add_argument("--config", default="config.py")
    restore.add_argument("--force", action="store_true", help="replace what the database and data directory hold")
    sub.add_parser("version", help="print the version")
    psql = sub.add_parser("psql", help="psql on the database hapta serve uses (embedded or DATABASE_URL)")
    psql.add_argument("--config", default="config.py")
    psql.add_argument("psql_args", nargs="*", help="the rest goes to psql as it is (-c \"select 1\")")
    reset = sub.add_parser("reset", help="development only: drop the app's data (asks first)")
    reset.add_argument("--config", default="config.py")
    reset.add_argument("--yes", action="store_true", help="do not ask")
    admin = sub.add_parser("admin", help="print the admin key and the dashboard's address")
    admin.add_argument("--config", default="config.py")
    admin.add_argument("--host", help="the host hapta serve listens on (default: where the running one serves, "
                       "else 127.0.0.1)")
    admin.add_argument("--port", type=int, help="the port hapta serve listens on (default: where the running one "
                       "serves, else 8080)")
    from .admin.accounts import add_commands   # create, list, delete, totp-reset: admin accounts
    add_commands(admin)
    return parser


def _parse(argv: list[str]) -> argparse.Namespace:
    """The arguments; after `psql [--config FILE]` everything is psql's own, in its order (`-Atc "select 1"`)."""
    parser = _parser()
    if "psql" not in argv:
        return parser.parse_args(argv)
    cut = argv.index("psql") + 1
    ours, theirs = argv[:cut], argv[cut:]
    while theirs[:1] == ["--config"] and len(theirs) > 1:
        ours, theirs = ours + theirs[:2], theirs[2:]
    args = parser.parse_args(ours)
    args.psql_args = theirs[1:] if theirs[:1] == ["--"] else theirs
    return args


def _raise_open_files_limit() -> None:
    """Each connection is a file descriptor; the usual soft limit (1024) would cap a gateway far below
    App.connections.total. Raise it to the hard limit, which only the operator can lift."""
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


async def _serve(args, app, settings, app_dir: Path, dsn: str) -> bool:
    """Serve until a stop signal (SIGTERM, SIGINT, SIGHUP: stop_signals); True when --reload saw config.py or migrations/ change (restart then)."""
    from .develop import browser_url, note_serving
    from .gateway.gateway import Gateway
    from .gateway.server import Server
    from .gateway.supervisor import stop_signals

    gateway = await Gateway.start(app, settings, dsn, app_dir, reload=args.reload)
    stop = asyncio.get_running_loop().create_future()
    for sig in stop_signals():
        asyncio.get_running_loop().add_signal_handler(sig, lambda: stop.done() or stop.set_result(False))
    watcher = asyncio.ensure_future(_changes(Path(args.config).resolve(), app_dir / "migrations", stop)) \
        if args.reload and not args.worker else None
    static = None
    if args.static:
        static = Path(args.static).resolve()
        if not static.is_dir():
            sys.exit(f"hapta: --static {args.static}: not a folder")
    hapta_server = Server(gateway, static=static)
    forget_address: Callable[[], None] = lambda: None
    try:
        async with _bound(hapta_server.serve(args.host, args.port, reuse_port=args.worker), args) as server:
            port = server.sockets[0].getsockname()[1]
            if gateway.public_url is None:   # HAPTA_PUBLIC_URL unset: browsers reach us where we listen
                gateway.public_url = browser_url(settings, args.host, port)
            if not args.worker:   # for `hapta admin` (a --workers supervisor writes its own)
                forget_address = note_serving(settings.data_dir, gateway.public_url)
            print(f"hapta {__version__} listening on ws://{args.host}:{port}/ws", flush=True)
            print(f"anon key: {settings.anon_key}", flush=True)
            print(f"dashboard: {gateway.public_url}/_/ (sign in with the admin key)", flush=True)
            if static is not None:
                print(f"pages of {static} on {gateway.public_url}/", flush=True)
                # a browser drops what the policy forbids (an inline <style>) and says so only in its console
                print(f"their Content-Security-Policy{'' if settings.static_csp else ' (HAPTA_STATIC_CSP sets another)'}"
                      f": {hapta_server.static_policy}", flush=True)
            _settle_garbage_collector()
            restart = await stop
            log.info("restarting: config.py or migrations/ changed" if restart else "shutting down")
            await hapta_server.shutdown(server)
    finally:
        forget_address()
        if watcher is not None:
            watcher.cancel()
        try:   # bounded: the whole shutdown must fit in the 10 s between SIGTERM and SIGKILL
            await asyncio.wait_for(gateway.close(), 1.5)
        except asyncio.TimeoutError:
            log.warning("upstream connections did not close in time")
    return restart


def _stamp(config: Path, folders: tuple[Path, ...]) -> list[tuple[str, int, int]]:
    """What --reload compares to see a change: config.py and the files of `folders` (migrations/ *.sql, rules/ and
    functions/ *.py), each with its modification time and size."""
    files = [config, *(f for folder in folders if folder.is_dir()
                       for f in sorted(folder.rglob("*.sql" if folder.name == "migrations" else "*.py")))]
    found = []
    for f in files:
        with contextlib.suppress(OSError):   # deleted between the listing and now
            status = f.stat()
            found.append((str(f), status.st_mtime_ns, status.st_size))
    return found


async def _changes(config: Path, migrations: Path, stop: asyncio.Future) -> None:
    """--reload: what rules/ and functions/ cannot take in place (their workers reload by themselves), a change to
    config.py or to migrations/, ends the serving with a restart (the whole process, so that nothing is kept)."""
    seen = _stamp(config, (migrations,))
    while _stamp(config, (migrations,)) == seen:
        await asyncio.sleep(0.3)
    if not stop.done():
        stop.set_result(True)


def _wait_for_a_fix(args, error: Exception) -> None:
    """--reload: a mistake in the app's files (config.py, migrations/, rules/, functions/) does not end the
    development loop: say it, wait for the next change to those files and run the command again (which may find
    the next mistake, and wait again). Meanwhile nothing is served, and the embedded PostgreSQL is held by this
    process, so that a stop here (Ctrl-C, SIGTERM, a closed terminal) stops it as a stop of the gateway would: the
    restart that brought us here kept it running for us."""
    import time
    from .gateway.supervisor import stop_signals
    from .settings import Settings, SettingsError, StartupError
    print(f"hapta: {error}", file=sys.stderr, flush=True)
    for sig in stop_signals():   # each exits through atexit, which stops the embedded server
        signal.signal(sig, lambda *_: sys.exit(0))
    config = Path(args.config).resolve()
    try:
        settings = Settings.load(config.parent)
        if not settings.database_url:
            _database_url(settings)
    except (SettingsError, StartupError) as exc:
        print(f"hapta: {exc}", file=sys.stderr, flush=True)
    print("hapta: --reload: waiting for a change to config.py, migrations/, rules/ or functions/ to try again",
          file=sys.stderr, flush=True)
    folders = tuple(config.parent / name for name in ("migrations", "rules", "functions"))
    seen = _stamp(config, folders)
    while _stamp(config, folders) == seen:
        time.sleep(0.3)   # a poll of a few files' times: no loop, no thread, nothing else runs here
    _restart()


def _restart() -> None:
    """Run the same command line again in this process (after a --reload change): the new config.py and
    migrations/ are read from the start, as on a first start."""
    import os
    sys.stdout.flush()
    sys.stderr.flush()
    command = [sys.executable, *sys.argv[1:]] if getattr(sys, "frozen", False) else \
        [sys.executable, "-m", "hapta", *sys.argv[1:]]
    os.execv(command[0], command)


@contextlib.asynccontextmanager
async def _bound(serving, args):
    """`serving` (Server.serve) entered; a port that is taken is said in one line, not a traceback."""
    from .settings import StartupError
    try:
        server = await serving.__aenter__()
    except OSError as exc:
        taken = exc.errno == errno.EADDRINUSE
        raise StartupError(f"port {args.port} on {args.host} is in use: stop what holds it, or pick another --port"
                           if taken else f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from exc
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_exit(serving)
        yield server


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
    from .store.introspection import introspect
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


def _settle_garbage_collector() -> None:
    """What start-up built (the app, the catalog, compiled rules, modules) lives as long as the process: moved out
    of the collector's sight, it is not walked again on every full collection; and the youngest generation is
    collected less often, since a request's objects are freed by reference counting, not by the collector
    (docs/performance.md, "The gateway's CPU")."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


def _run(coro):
    try:
        import uvloop
    except ImportError:   # not on Windows; asyncio's own loop works, slower
        return asyncio.run(coro)
    return uvloop.run(coro)


def main(argv: list[str] | None = None) -> None:
    # A frozen binary starts its hook and function workers by running itself: this turns such a run into the worker.
    multiprocessing.freeze_support()
    # Every hapta process holds secrets (its environment, .env, the keys in memory): no other process of this user,
    # a rule or function worker least of all, may read its /proc/<pid>/environ or memory (hapta.isolation).
    from .isolation import undumpable
    undumpable()
    args = _parse(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("asyncpg.pool").addFilter(_quiet_pool_retries)
    logging.getLogger("pgserver").setLevel(logging.WARNING)   # it logs every command line it runs
    if args.command == "version":
        print(_version_text())
        return
    from .config import ConfigError
    from .settings import SettingsError, StartupError, reason
    from .store.migrations import MigrationError
    try:
        app, settings, app_dir = _load(args.config)
        if args.command == "serve":
            _raise_open_files_limit()
            if args.worker:
                from .gateway.supervisor import follow_parent
                follow_parent()
        if args.command == "admin" and args.admin_command:   # the admin accounts (hapta/admin/accounts.py)
            from .admin.accounts import command as admin_accounts
            sys.exit(admin_accounts(args, app, settings, app_dir, _database_url(settings)))
        if args.command == "admin":
            from .develop import admin
            admin(settings, args.host, args.port)
            return
        if args.command in ("backup", "restore"):   # they start the embedded server themselves, when they need it
            from .store.backup import command
            sys.exit(command(args, settings, __version__))
        dsn = _database_url(settings)
        if args.command == "psql":
            from .develop import psql
            sys.exit(psql(dsn, not settings.database_url, args.psql_args))
        if args.command == "reset":
            from .develop import reset
            reset(settings, dsn, args.yes)
            return
        if args.command == "migrate":
            _run(_migrate(app_dir, dsn))
        elif args.command == "types":
            _run(_types(app, app_dir, dsn, args.out))
        elif args.workers > 1 and not args.worker:
            from .gateway.supervisor import supervise
            sys.exit(supervise(Path(args.config).resolve(), app_dir, args.host, args.port, args.workers, dsn,
                               settings.anon_key, (*(("--reload",) if args.reload else ()),
                                                   *(("--static", str(Path(args.static).resolve())) if args.static
                                                     else ())), settings))
        else:
            if _run(_serve(args, app, settings, app_dir, dsn)):
                _restart()
            _exit_after_serving()
    except (ConfigError, SettingsError, MigrationError, StartupError) as exc:
        if args.debug:
            raise
        if isinstance(exc, (ConfigError, MigrationError)) and args.command == "serve" and args.reload \
                and not args.worker:
            _wait_for_a_fix(args, exc)   # runs the command again after the next change, or exits
        sys.exit(f"hapta: {exc}")
    except Exception as exc:   # anything else that stops it: one line; the traceback is for --debug
        if args.debug:
            raise
        sys.exit(f"hapta: {args.command} failed: {type(exc).__name__}: {reason(exc)} (--debug shows the traceback)")


if __name__ == "__main__":
    main()
