"""Fixtures: a real PostgreSQL database per test session, the test app (tests/app, a copy of the demo) served by a
real `hapta serve`, and the same app in-process (tests/harness.py) for fast tests of the request path."""
from __future__ import annotations

import logging
import secrets

import pytest
import pytest_asyncio

from hapta.client import Client
from tests import harness as in_process
from tests.services import (APP, GatewayProcess, admin_dsn, create_database, drop_database, embedded_data_dir,
                            next_loopback)

ANON_KEY = "test-anon-key"
ADMIN_KEY = "test-admin-key"
PASSWORD = "correct horse battery"


@pytest_asyncio.fixture(scope="session")
async def pg_admin() -> str:
    return await admin_dsn()


@pytest_asyncio.fixture(scope="session")
async def database(pg_admin):
    dsn = await create_database(pg_admin)
    yield dsn
    await drop_database(pg_admin, dsn)


def gateway_env(dsn: str, **extra: str) -> dict[str, str]:
    return {"DATABASE_URL": dsn, "HAPTA_ANON_KEY": ANON_KEY, "HAPTA_ADMIN_KEY": ADMIN_KEY,
            "HAPTA_JWT_SECRET": "test-secret-" + "x" * 40, "HAPTA_ENV": "development", **extra}


@pytest.fixture
def embedded_data():
    """A HAPTA_DATA_DIR for a gateway on an embedded PostgreSQL (tests.services.embedded_data_dir)."""
    with embedded_data_dir() as folder:
        yield folder


@pytest.fixture(scope="session")
def gateway(database):
    process = GatewayProcess(gateway_env(database)).start()
    yield process
    process.stop()
    log = process.log_text()
    assert "Traceback" not in log, log


@pytest_asyncio.fixture
async def open_client():
    """open_client(process, **options) -> a Client to that gateway process, from a loopback address of its own
    (as devices have: per-address limits couple no two clients); all are closed after the test."""
    clients: list[Client] = []

    async def make(process: GatewayProcess, **options) -> Client:
        options.setdefault("local_addr", (next_loopback(), 0))
        client = await Client.connect(process.url, **options)
        clients.append(client)
        return client
    yield make
    for client in clients:
        await client.close()


@pytest_asyncio.fixture
async def connect(gateway, open_client):
    """connect(**options) -> a Client to the session's gateway."""
    async def make(**options) -> Client:
        return await open_client(gateway, **options)
    return make


@pytest_asyncio.fixture
async def user(connect):
    """user() -> (client, session) for a freshly registered user, signed in on that client."""
    async def make(**options):
        client = await connect(**options)
        name = "u" + secrets.token_hex(5)
        session = await client.call("auth.register", {"email": f"{name}@example.com", "password": PASSWORD,
                                                      "username": name})
        return client, session
    return make


@pytest_asyncio.fixture
async def anon(connect) -> Client:
    client = await connect()
    await client.call("auth.anon", {"apikey": ANON_KEY})
    return client


@pytest_asyncio.fixture
async def admin(connect) -> Client:
    client = await connect()
    await client.call("auth.admin", {"key": ADMIN_KEY})
    return client


@pytest_asyncio.fixture(scope="session")
async def in_process_gateway(pg_admin, tmp_path_factory):
    """The test app's Gateway in this process, on a database of its own."""
    dsn = await create_database(pg_admin)
    env = {**gateway_env(dsn), "HAPTA_DATA_DIR": str(tmp_path_factory.mktemp("in-process"))}
    gateway = await in_process.start(APP, env, dsn)
    yield gateway
    await gateway.close()
    await drop_database(pg_admin, dsn)


@pytest_asyncio.fixture
async def harness(in_process_gateway):
    """Devices on the in-process gateway (tests/harness.py), disconnected after the test, which fails if the
    gateway logged an error meanwhile that the test did not claim (harness.errors)."""
    errors = in_process.Errors()
    logging.getLogger("hapta").addHandler(errors)
    found = in_process.Harness(in_process_gateway, errors)
    try:
        yield found
    finally:
        found.end()
        logging.getLogger("hapta").removeHandler(errors)
    assert not errors.records, [record.getMessage() for record in errors.records]
