"""A real PostgreSQL holding the filter test tables (see query_testdata), in a database of their own on the server
the whole suite uses (tests/services.admin_dsn: 127.0.0.1:5432 when it answers, else an embedded one).

The agreement tests need the database: if it cannot be reached they fail (they never skip), since
agreement between SQL and Python is the property this package promises.
"""
from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import pytest
import pytest_asyncio

from query_testdata import COMMENT_ROWS, CREATE_TABLES, POST_ROWS, SCHEMA, USER_ROWS
from tests.services import create_database, drop_database

# pytest retries a failed session fixture for every test; remember the failure so each one fails fast.
_unreachable: list[str] = []


@dataclass
class Database:
    conn: asyncpg.Connection
    rows: dict[str, list[dict]]            # every row of every table, as evaluate() receives them
    by_id: dict[str, dict[str, dict]]      # table -> id -> row, to fill evaluate()'s `related`


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def db(pg_admin):
    """A connection to a fresh database holding the test tables; dropped afterwards."""
    if _unreachable:
        pytest.fail(_unreachable[0])
    dsn = await create_database(pg_admin)
    try:
        conn = await asyncpg.connect(dsn, timeout=10)
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        _unreachable.append(f"cannot reach PostgreSQL at {pg_admin.rsplit('@', 1)[-1]}: {error}")
        await drop_database(pg_admin, dsn)
        pytest.fail(_unreachable[0])
    try:
        await conn.execute(CREATE_TABLES)
        await conn.executemany("INSERT INTO users VALUES ($1, $2, $3)", USER_ROWS)
        await conn.executemany("INSERT INTO posts VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)", POST_ROWS)
        await conn.executemany("INSERT INTO comments VALUES ($1, $2, $3, $4)", COMMENT_ROWS)
        rows = {name: [dict(row) for row in await conn.fetch(f'SELECT * FROM "{name}"')] for name in SCHEMA.tables}
        by_id = {name: {row["id"]: row for row in table_rows} for name, table_rows in rows.items()}
        yield Database(conn, rows, by_id)
    finally:
        await conn.close()
        await drop_database(pg_admin, dsn)
