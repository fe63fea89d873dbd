"""Schema migrations: the gateway's own (hapta/store/sql) first, then the app's migrations/ folder.

Each file runs once, in name order, in its own transaction, and is recorded with its checksum; a file changed
or deleted after it was applied stops the start (editing history silently is how databases drift). An advisory lock lets
many workers or nodes start at once: one migrates, the others wait and find nothing left to do.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import asyncpg

log = logging.getLogger("hapta.migrate")

CORE_DIR = Path(__file__).parent / "sql"
LOCK_KEY = 0x6861707461  # "hapta"


class MigrationError(Exception):
    pass


def _files(folder: Path, prefix: str) -> list[tuple[str, str]]:
    if not folder.is_dir():
        return []
    return [(f"{prefix}/{path.name}", path.read_text()) for path in sorted(folder.glob("*.sql"))]


async def migrate(conn: asyncpg.Connection, app_dir: Path | None) -> list[str]:
    """Apply what is new; return the names applied."""
    files = _files(CORE_DIR, "hapta") + (_files(app_dir, "app") if app_dir else [])
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        await conn.execute("""
            CREATE SCHEMA IF NOT EXISTS hapta;
            CREATE TABLE IF NOT EXISTS hapta.migrations (
              name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())
        """)
        done = {r["name"]: r["checksum"] for r in await conn.fetch("SELECT name, checksum FROM hapta.migrations")}
        _refuse_missing(done, files, app_dir is not None)
        for name, sql in files:
            checksum = hashlib.sha256(sql.encode()).hexdigest()
            if name in done:
                if done[name] != checksum:
                    raise MigrationError(f"migration {name} was edited after it was applied to this database: put the "
                                         f"file back as it was and add the change as a new migration (in "
                                         f"development, `hapta reset` starts the database over)")
                continue
            async with conn.transaction():
                try:
                    await conn.execute(sql)
                except asyncpg.PostgresError as exc:
                    raise MigrationError(f"migration {name} failed: {exc}") from None
                await conn.execute("INSERT INTO hapta.migrations (name, checksum) VALUES ($1, $2)", name, checksum)
            log.info("applied migration %s", name)
            applied_now.append(name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    return applied_now


def _refuse_missing(done: dict[str, str], files: list[tuple[str, str]], with_app: bool) -> None:
    """A file deleted after it was applied is history rewritten, as an edit is: refuse it the same way, before
    anything runs. Without an app folder (app_dir None) only the gateway's own are judged."""
    present = {name for name, _ in files}
    missing = sorted(name for name in done
                     if name not in present and (name.startswith("hapta/") or with_app and name.startswith("app/")))
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise MigrationError(f"migration {missing[0]}{more} was applied to this database but its file is gone: put "
                             f"the file back as it was and add any change as a new migration (in development, "
                             f"`hapta reset` starts the database over)")


async def create_triggers(conn: asyncpg.Connection, function: str, tables: dict[str, str],
                          triggers: dict[str, str], replaces: tuple[str, ...] = ()) -> None:
    """(Re)create each trigger of `triggers` (name -> what fires it and how often, e.g. "BEFORE UPDATE" and "FOR
    EACH ROW") running hapta.<function>(its arguments) on each table of `tables` (table -> the arguments' SQL
    text, already quoted literals) that exists in the current schema, dropping the triggers named in `replaces`,
    all in one transaction (no write sees both the old and the new). Table names come from the catalog and
    config.py; many workers start at once, so one at a time."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('hapta.triggers'))")
        existing = {r["relname"] for r in await conn.fetch(
            "SELECT relname FROM pg_class WHERE relname = ANY($1::text[]) AND relkind = 'r' "
            "AND relnamespace = current_schema()::regnamespace", list(tables))}
        for table, arguments in tables.items():
            if table in existing and table.isidentifier():
                for old in replaces:
                    await conn.execute(f'DROP TRIGGER IF EXISTS {old} ON "{table}"')
                for name, (when, each) in triggers.items():
                    await conn.execute(f'CREATE OR REPLACE TRIGGER {name} {when} ON "{table}" {each} '
                                       f'EXECUTE FUNCTION hapta.{function}({arguments})')
