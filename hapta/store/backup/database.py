"""What backup and restore ask the database: who it is, what is in it, and a snapshot pg_dump can share.

App tables are those outside the gateway's own schema `hapta` (and PostgreSQL's): `users` and the app's
migrations' tables. Their row counts go in the manifest, counted in the very snapshot pg_dump then dumps.
"""
from __future__ import annotations

import asyncio

import asyncpg

from .errors import BackupError
from .pgtools import where

SYSTEM = ("pg_catalog", "information_schema", "pg_toast")

APP_TABLES = """
    SELECT format('%I.%I', schemaname, tablename) AS sql_name,
           CASE WHEN schemaname = 'public' THEN tablename ELSE schemaname || '.' || tablename END AS name
    FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema', 'hapta') ORDER BY 2
"""


async def connect(dsn: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(dsn, timeout=10)
    except ConnectionRefusedError:
        reason = "connection refused"
    except (asyncio.TimeoutError, TimeoutError):
        reason = "no answer within 10 s"
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise BackupError(f"the database at {where(dsn)} refused the connection: {exc}") from None
    raise BackupError(f"cannot reach the database at {where(dsn)} ({reason})")


async def server_major(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SHOW server_version_num")) // 10000


async def describe(conn: asyncpg.Connection) -> dict:
    """The manifest's `database` part, minus the dump's own hash and size."""
    migrations = []
    if await conn.fetchval("SELECT to_regclass('hapta.migrations') IS NOT NULL"):
        migrations = [{"name": r["name"], "checksum": r["checksum"], "applied_at": r["applied_at"].isoformat()}
                      for r in await conn.fetch("SELECT name, checksum, applied_at FROM hapta.migrations "
                                                "ORDER BY applied_at, name")]
    return {"name": await conn.fetchval("SELECT current_database()"),
            "server_version": await conn.fetchval("SHOW server_version"),
            "migrations": migrations,
            "rows": await row_counts(conn)}


async def row_counts(conn: asyncpg.Connection) -> dict[str, int]:
    counts = {}
    for table in await conn.fetch(APP_TABLES):   # names quoted by format(%I), from the catalog
        counts[table["name"]] = await conn.fetchval(f"SELECT count(*) FROM {table['sql_name']}")
    return counts


async def tables(conn: asyncpg.Connection) -> int:
    """How many tables the database holds, the gateway's own included: a target for a restore must have none."""
    return await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname <> ALL($1::text[])", list(SYSTEM))


async def empty(conn: asyncpg.Connection) -> None:
    """Drop every schema but PostgreSQL's (what --force replaces), and give back an empty `public`."""
    schemas = await conn.fetch("SELECT quote_ident(nspname) AS name FROM pg_namespace "
                               "WHERE nspname <> ALL($1::text[]) AND nspname NOT LIKE 'pg\\_%'", list(SYSTEM))
    async with conn.transaction():
        for schema in schemas:
            await conn.execute(f"DROP SCHEMA {schema['name']} CASCADE")
        await conn.execute("CREATE SCHEMA public")
