"""The pool's reset on release (hapta/store/postgres.py PooledConnection): no round trip after the gateway's own
statements, the full reset after anything that may have changed the session (the app's SQL), and an open
transaction rolled back either way."""
from __future__ import annotations

from hapta.store.postgres import Database, create_pool
from tests.services import create_database, drop_database


async def test_a_connection_comes_back_as_new_after_app_sql_and_costs_nothing_otherwise(pg_admin):
    dsn = await create_database(pg_admin)
    pool = await create_pool(dsn, min_size=1, max_size=1)   # one connection: each acquire gets the same one
    db = Database(pool)
    try:
        # the app's SQL changes the session (a hook's ctx.sql may): the next user must not inherit it, and the
        # connection keeps the name it started with
        await db.fetch_for_app("SELECT set_config('application_name', 'hook was here', false)")
        assert await db.fetchval("SHOW application_name") == "hapta-pool"
        async with db.acquire() as conn:
            sent = conn._con._protocol.queries_count
        async with db.acquire() as conn:   # the release in between sent nothing
            assert conn._con._protocol.queries_count == sent
            tx = conn.transaction()
            await tx.start()
            await conn.execute("CREATE TEMP TABLE left_open (n int)")
        # released inside a transaction (a bug, or a cancelled request): rolled back, not handed on
        assert await db.fetchval("SELECT to_regclass('pg_temp.left_open') IS NULL")
    finally:
        await pool.close()
        await drop_database(pg_admin, dsn)
