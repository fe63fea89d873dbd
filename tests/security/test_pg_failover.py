"""Issue 34: PostgreSQL fails over. A primary and a synchronous streaming standby; DATABASE_URL names both, with
`target_session_attrs=read-write` (libpq's way, which asyncpg follows): the gateway connects to whichever is the
primary. Under load the primary is killed (SIGKILL, a machine gone) and the standby promoted, as a failover manager
would: requests in flight answer UNAVAILABLE (with retry_after) or TIMEOUT, or succeed; writes go through again on
the new primary within a bound; every create answered ok is there once, none refused with a known outcome is; and a
subscriber that resumes from before the failover hears every create once, with its position going on."""
from __future__ import annotations

import asyncio
import secrets
import time

import pytest

from tests.security.test_faults import Traffic, clean, unhooked_gateway, until
from tests.services import PrivatePostgres

RECOVERY = 30.0   # seconds from the promotion to writes going through again, asserted loosely (a shared machine)


@pytest.fixture
def primary_and_standby():
    primary = PrivatePostgres().start()
    standby = None
    try:
        standby = primary.standby(synchronous=True)
        yield primary, standby
    finally:
        for server in (standby, primary):
            if server is not None:
                server.remove()


def both(primary: PrivatePostgres, standby: PrivatePostgres) -> str:
    return (f"postgresql://postgres@127.0.0.1:{primary.port},127.0.0.1:{standby.port}/postgres"
            "?target_session_attrs=read-write")


async def test_the_primary_dies_the_standby_is_promoted_and_nothing_acknowledged_is_lost(
        primary_and_standby, tmp_path_factory, open_client):
    primary, standby = primary_and_standby
    process = unhooked_gateway(tmp_path_factory, both(primary, standby))
    await asyncio.to_thread(process.start)
    try:
        traffic = await Traffic(process, open_client, "failover" + secrets.token_hex(4)).start()
        codes = traffic.codes
        seen = len(codes)
        await asyncio.to_thread(primary.kill)
        await until(lambda: {"UNAVAILABLE", "TIMEOUT"} & set(codes[seen:]), "the primary's death is felt")
        await asyncio.to_thread(standby.promote)
        promoted = time.monotonic()
        back = len(codes)
        await until(lambda: codes[back:].count("OK") >= 50, "writes go through on the new primary",
                    seconds=RECOVERY + 30)
        recovered = time.monotonic() - promoted
        await traffic.end()
        assert recovered < RECOVERY, recovered
        # acknowledged under synchronous replication: on the promoted standby, once
        public = await traffic.stored(standby.dsn)
        heard = await traffic.heard_on_resume(public)
        positions = [pos for _, _, pos in heard]
        assert positions == sorted(positions) and len(set(positions)) == len(positions)
    finally:
        await asyncio.to_thread(process.stop)
    clean(process)
