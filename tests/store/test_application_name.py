"""Each of the gateway's connections names its role in pg_stat_activity (hapta/store/postgres.py application_name):
`hapta-pool` for the pool's, `hapta-listener` for the one that LISTENs; a DSN that names the application keeps it."""
from __future__ import annotations

from hapta.store.listener import Listener
from hapta.store.postgres import application_name, create_pool
from tests.services import create_database, drop_database


def test_the_role_names_a_connection_unless_the_dsn_names_the_application():
    assert application_name("postgresql://u@h/db", "pool") == {"application_name": "hapta-pool"}
    assert application_name("postgresql://u@h/db?sslmode=disable", "listener") == \
        {"application_name": "hapta-listener"}
    assert application_name("postgresql://u@h/db?sslmode=disable&application_name=mine", "pool") == {}


async def test_pg_stat_activity_tells_the_pool_from_the_listener(pg_admin):
    dsn = await create_database(pg_admin)
    name = dsn.split("?")[0].rsplit("/", 1)[1]
    pool = await create_pool(dsn, min_size=2, max_size=2)
    listener = Listener(dsn)
    listener.add("hapta_changes", lambda payload: None)
    await listener.start()
    try:
        async with pool.acquire() as conn:
            names = sorted(r["application_name"] for r in await conn.fetch(
                "SELECT application_name FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", name))
            assert names == ["hapta-listener", "hapta-pool"]
    finally:
        await listener.close()
        await pool.close()
        await drop_database(pg_admin, dsn)
