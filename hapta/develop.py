"""The development loop's commands: `hapta psql`, `hapta reset` and `hapta admin` (the command line: cli.py).

    hapta psql [ARGS...]    psql on the database `hapta serve` uses: the embedded one (with its own psql) or
                            DATABASE_URL's; ARGS go to psql (`-c "select count(*) from posts"`)
    hapta reset [--yes]     development only: drop every table of the app and of the gateway, and the local files,
                            after asking; the next `hapta serve` migrates afresh
    hapta admin             the admin key and the dashboard's address
"""
from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

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


def admin(settings: Settings, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Print what signs in to the dashboard, and where it is."""
    base = settings.public_url or f"http://{host}:{port}"
    print(f"admin key: {settings.admin_key}")
    print(f"dashboard: {base}/_/")
