"""The development loop's commands: `hapta psql`, `hapta reset` and `hapta admin` (the command line: cli.py).

    hapta psql [ARGS...]    psql on the database `hapta serve` uses: the embedded one (with its own psql) or
                            DATABASE_URL's; ARGS go to psql (`-c "select count(*) from posts"`)
    hapta reset [--yes]     development only: drop every table of the app and of the gateway, and the local files,
                            after asking; the next `hapta serve` migrates afresh
    hapta admin             the admin key and the dashboard's address (where the running `hapta serve` serves, or
                            --host/--port)
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

from .settings import Settings, StartupError, database_address, database_parts, reason


def psql_binary(embedded: bool) -> str:
    """The embedded server's own psql (the same version as the server), else the one on PATH."""
    if embedded:
        import pgserver
        bundled = Path(pgserver.__file__).parent / "pginstall" / "bin" / "psql"
        if bundled.is_file():
            return str(bundled)
    found = shutil.which("psql")
    if found is None:
        raise StartupError("no psql on PATH: install PostgreSQL's client (Debian: apt-get install postgresql-client)")
    return found


def psql(dsn: str, embedded: bool, extra: list[str]) -> int:
    """Run psql on `dsn` in this terminal; its exit code."""
    return subprocess.run([psql_binary(embedded), dsn, *extra]).returncode


def reset(settings: Settings, dsn: str, yes: bool, ask=input) -> None:
    """Drop the app's data (every table, the gateway's schema, the local files) after the operator typed the
    database's name, or with --yes. Never in production."""
    if settings.production:
        raise StartupError("hapta reset is for development; HAPTA_ENV=production refuses it")
    where = database_address(dsn)
    files = settings.data_dir / "files"
    if not yes:
        print(f"This drops every table in {where} (the app's and the gateway's: users, sessions, records) and "
              f"deletes {files}.")
        name = where.rpartition("/")[2].split("?")[0]
        if ask(f"Type the database's name ({name}) to go on: ").strip() != name:
            raise StartupError("reset: nothing was dropped")
    asyncio.run(_drop_everything(dsn))
    shutil.rmtree(files, ignore_errors=True)
    print(f"reset {where}: the next `hapta serve` applies every migration afresh", file=sys.stderr)


async def _drop_everything(dsn: str) -> None:
    import asyncpg
    try:
        conn = await asyncpg.connect(dsn, timeout=10)
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError) as exc:
        raise StartupError(f"cannot reach the database ({database_parts(dsn)}): {reason(exc)}") from exc
    try:
        async with conn.transaction():
            await conn.execute("DROP SCHEMA IF EXISTS hapta CASCADE")
            await conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
            await conn.execute("CREATE SCHEMA public AUTHORIZATION pg_database_owner")
            await conn.execute("GRANT USAGE ON SCHEMA public TO PUBLIC")
    finally:
        await conn.close()


# In HAPTA_DATA_DIR while `hapta serve` runs: its pid and where browsers reach it, so that `hapta admin` names the
# address the gateway really serves (a newcomer's `serve --port 9000` was printed as 8080).
SERVING = "serving.json"


def browser_url(settings: Settings, host: str, port: int) -> str:
    """How a browser reaches a gateway listening on host:port: HAPTA_PUBLIC_URL, else that address (a wildcard
    host is reached on loopback)."""
    return settings.public_url or f"http://{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{port}"


def note_serving(data_dir: Path, url: str) -> Callable[[], None]:
    """Write where this process serves; return what takes the note back (at the stop: only if it is still ours).
    A data directory that cannot be written costs only the note."""
    path = data_dir / SERVING
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"pid": os.getpid(), "url": url}))
    except OSError:
        return lambda: None

    def forget() -> None:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()
    return forget


def serving_url(data_dir: Path) -> str | None:
    """Where the `hapta serve` of this data directory serves, while it runs; None when none does."""
    try:
        note = json.loads((data_dir / SERVING).read_text())
        os.kill(int(note["pid"]), 0)   # still running (a stop by SIGKILL leaves its note behind)
        return str(note["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def admin(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Print what signs in to the dashboard, and where it is: on the --host/--port given, else where the running
    gateway serves, else where `hapta serve` serves by default."""
    if host is None and port is None:
        base = serving_url(settings.data_dir) or browser_url(settings, "127.0.0.1", 8080)
    else:
        base = browser_url(settings, host or "127.0.0.1", port or 8080)
    print(f"admin key: {settings.admin_key}")
    print(f"dashboard: {base}/_/")
