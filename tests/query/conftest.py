"""A real PostgreSQL holding the filter test tables (see query_testdata).

The agreement tests need the database: if it cannot be reached they fail (they never skip), since
agreement between SQL and Python is the property this package promises.
"""
from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

import asyncpg
import pytest
import pytest_asyncio

from query_testdata import COMMENT_ROWS, CREATE_TABLES, POST_ROWS, SCHEMA, USER_ROWS

DATABASE_URL = os.environ.get("HAPTA_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
# pytest retries a failed session fixture for every test; remember the failure so each one fails fast.
_unreachable: list[str] = []


@dataclass
class Database:
    conn: asyncpg.Connection
    rows: dict[str, list[dict]]            # every row of every table, as evaluate() receives them
    by_id: dict[str, dict[str, dict]]      # table -> id -> row, to fill evaluate()'s `related`


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def db():
    """A connection whose search_path is a fresh schema holding the test tables; dropped afterwards."""
    if _unreachable:
        pytest.fail(_unreachable[0])
    try:
        conn = await asyncpg.connect(DATABASE_URL, timeout=10)
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        _unreachable.append(f"cannot reach PostgreSQL at {DATABASE_URL} (set HAPTA_TEST_DATABASE_URL): {error}")
        pytest.fail(_unreachable[0])
    schema_name = f"hapta_query_test_{uuid.uuid4().hex}"
    try:
        await conn.execute(f'CREATE SCHEMA "{schema_name}"')
        await conn.execute(f'SET search_path TO "{schema_name}"')
        await conn.execute(CREATE_TABLES)
        await conn.executemany("INSERT INTO users VALUES ($1, $2, $3)", USER_ROWS)
        await conn.executemany("INSERT INTO posts VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)", POST_ROWS)
        await conn.executemany("INSERT INTO comments VALUES ($1, $2, $3, $4)", COMMENT_ROWS)
        rows = {name: [dict(row) for row in await conn.fetch(f'SELECT * FROM "{name}"')] for name in SCHEMA.tables}
        by_id = {name: {row["id"]: row for row in table_rows} for name, table_rows in rows.items()}
        yield Database(conn, rows, by_id)
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema_name}" CASCADE')
        await conn.close()
