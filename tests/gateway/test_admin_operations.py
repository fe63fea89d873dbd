"""The ops of the dashboard's Backups, Settings and SQL pages (hapta/ops/operations.py) through a real `hapta serve`
on a database of its own, with a real SMTP server (aiosmtpd, asking for a login): admins only; the settings with no
secret in the answer; a test mail that arrives; SQL read-only unless `write`, bounded in time, in the admin log
with who ran it; backups started, listed, downloaded, deleted and restored where restore is allowed, refused in
production."""
from __future__ import annotations

import asyncio
import io
import secrets
import tarfile
import urllib.request
from pathlib import Path

import asyncpg
import msgspec
import pytest
import pytest_asyncio
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from hapta.admin.operations import MASK, effective_settings
from hapta.client import Client
from hapta.protocol.errors import HaptaError
from hapta.settings import Settings
from tests.auth.accounts.conftest import Inbox
from tests.auth.sessions.conftest import until
from tests.conftest import ADMIN_KEY, ANON_KEY, PASSWORD, gateway_env
from tests.services import GatewayProcess, SeaweedS3, create_database, drop_database, free_port, next_loopback

S3 = ("S3_ENDPOINT", "S3_ACCESS_KEY", "S3_SECRET_KEY", "S3_BUCKET")
OPS = ("admin.backups", "admin.backup", "admin.backup.download", "admin.backup.delete", "admin.backup.restore",
       "admin.settings", "admin.mail.test", "admin.sql", "admin.log")
JWT_SECRET = "jwt-" + secrets.token_hex(20)
RETIRED = "retired-" + secrets.token_hex(20)
DB_PASSWORD = "dbpw-" + secrets.token_hex(8)        # trust authentication ignores it; the URL still carries it
SMTP_PASSWORD = "smtppw-" + secrets.token_hex(8)


@pytest.fixture(scope="module")
def smtp():
    """aiosmtpd that asks for a login (the password of SMTP_URL), without TLS: a local test server."""
    inbox = Inbox()

    def authenticate(server, session, envelope, mechanism, auth_data):
        return AuthResult(success=auth_data.password.decode() == SMTP_PASSWORD)

    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), authenticator=authenticate,
                            auth_require_tls=False)
    controller.start()
    yield inbox, controller.port
    controller.stop()


@pytest_asyncio.fixture(scope="module")
async def node(pg_admin, smtp, tmp_path_factory):
    _, port = smtp
    dsn = await create_database(pg_admin)
    with_password = dsn.replace("://postgres@", f"://postgres:{DB_PASSWORD}@", 1)
    assert DB_PASSWORD in with_password, dsn
    env = gateway_env(with_password, HAPTA_JWT_SECRET=JWT_SECRET, HAPTA_JWT_RETIRED_SECRETS=RETIRED,
                      SMTP_URL=f"smtp://mailer:{SMTP_PASSWORD}@127.0.0.1:{port}",
                      HAPTA_DATA_DIR=str(tmp_path_factory.mktemp("ops-data")))
    process = await asyncio.to_thread(GatewayProcess(env, drop=S3).start)
    yield process, dsn
    process.stop()
    await drop_database(pg_admin, dsn)
    log = process.log_text()
    assert "Traceback" not in log, log
    for secret in (JWT_SECRET, RETIRED, DB_PASSWORD, SMTP_PASSWORD, ADMIN_KEY):
        assert secret not in log


@pytest_asyncio.fixture
async def admin(node):
    process, _ = node
    client = await Client.connect(process.url, local_addr=(next_loopback(), 0))
    await client.call("auth.admin", {"key": ADMIN_KEY})
    yield client
    await client.close()


async def code_of(coroutine) -> str:
    with pytest.raises(HaptaError) as refused:
        await coroutine
    return refused.value.code


async def refusal(coroutine) -> HaptaError:
    with pytest.raises(HaptaError) as refused:
        await coroutine
    return refused.value


async def test_only_admins_may(node):
    process, _ = node
    user = await Client.connect(process.url, local_addr=(next_loopback(), 0))
    anon = await Client.connect(process.url, local_addr=(next_loopback(), 0))
    try:
        name = "o" + secrets.token_hex(5)
        await user.call("auth.register", {"email": f"{name}@example.com", "password": PASSWORD})
        await anon.call("auth.anon", {"apikey": ANON_KEY})
        for client in (user, anon):
            for op in OPS:
                assert await code_of(client.call(op, {})) == "FORBIDDEN", op
    finally:
        await user.close()
        await anon.close()


async def test_the_settings_say_where_each_came_from_and_no_secret(admin):
    answer = await admin.call("admin.settings")
    raw = msgspec.json.encode(answer).decode()
    for secret in (JWT_SECRET, RETIRED, DB_PASSWORD, SMTP_PASSWORD, ADMIN_KEY, ANON_KEY):
        assert secret not in raw
    shown = {s["name"]: s for s in answer["settings"]}
    assert shown["HAPTA_JWT_SECRET"] == {"name": "HAPTA_JWT_SECRET", "value": MASK, "source": "env", "secret": True}
    assert shown["SMTP_URL"]["value"].startswith(f"smtp://mailer:{MASK}@127.0.0.1:")
    assert f"postgres:{MASK}@" in shown["DATABASE_URL"]["value"]
    assert shown["HAPTA_ENV"]["value"] == "development" and shown["HAPTA_ENV"]["source"] == "env"
    assert shown["HAPTA_REDIS_PREFIX"] == {"name": "HAPTA_REDIS_PREFIX", "value": "hapta:", "source": "default",
                                           "secret": False}
    assert answer["sql_timeout"] == 3.0


def test_every_secret_is_masked_wherever_it_comes_from():
    """Pure: S3's keys (no gateway here has S3), query-string passwords, and .env as a source."""
    settings = Settings(database_url="postgresql://app:pw1@db/app?sslpassword=pw2", redis_url="redis://:pw3@r:6379/0",
                        data_dir=Path("/data"), jwt_secret="j" * 40, anon_key="anon-pw4", admin_key="admin-pw5",
                        env="development", s3_endpoint="https://s3.example.com", s3_access_key="pw6",
                        s3_secret_key="pw7", s3_bucket="b1", smtp_url="smtps://u:pw8@mail:465",
                        database_replica_urls=("postgresql://app:pw9@r1/app", "postgresql://app:pw10@r2/app?a=pw11"))
    shown = effective_settings(settings, {"DATABASE_URL": "x"}, {"S3_SECRET_KEY": "pw7"})
    raw = repr(shown)
    for secret in ("pw1", "pw2", "pw3", "pw4", "pw5", "pw6", "pw7", "pw8", "pw9", "pw10", "pw11", "j" * 40):
        assert secret not in raw, secret
    sources = {s["name"]: s["source"] for s in shown}
    assert sources["DATABASE_URL"] == "env" and sources["S3_SECRET_KEY"] == ".env" and sources["S3_BUCKET"] == "default"
    replicas = next(s["value"] for s in shown if s["name"] == "DATABASE_REPLICA_URLS")
    assert replicas == f"postgresql://app:{MASK}@r1/app, postgresql://app:{MASK}@r2/app?a={MASK}", replicas


async def test_a_test_mail_arrives_and_a_refusal_is_shown(admin, smtp):
    inbox, _ = smtp
    to = f"ops-{secrets.token_hex(4)}@example.com"
    answer = await admin.call("admin.mail.test", {"to": to})
    assert answer["sent"] is True and answer["message"].startswith("accepted by 127.0.0.1:"), answer
    assert (await inbox.to(to))["Subject"] == "Hapta test mail"
    assert await code_of(admin.call("admin.mail.test", {"to": "not an address"})) == "BAD_REQUEST"


async def test_sql_reads_and_writes_only_when_switched_on(admin):
    table = f"t_{secrets.token_hex(4)}"
    answer = await admin.call("admin.sql", {"sql": "SELECT 1 AS one, 'x'::text AS letter, now() AS at"})
    assert answer["columns"] == [{"name": "one", "type": "int4"}, {"name": "letter", "type": "text"},
                                 {"name": "at", "type": "timestamptz"}]
    assert answer["rows"][0][:2] == [1, "x"] and answer["write"] is False
    refused = await refusal(admin.call("admin.sql", {"sql": f"CREATE TABLE {table} (n int)"}))
    assert refused.code == "BAD_REQUEST" and refused.details["sqlstate"] == "25006", refused
    assert str(refused.message) == "cannot execute CREATE TABLE in a read-only transaction"
    # nor can a statement switch its own transaction to writing
    refused = await refusal(admin.call("admin.sql", {"sql": "SET transaction_read_only = off"}))
    assert refused.details["sqlstate"] == "25001", refused
    await admin.call("admin.sql", {"sql": f"CREATE TABLE {table} (n int)", "write": True})
    written = await admin.call("admin.sql", {"sql": f"INSERT INTO {table} SELECT generate_series(1, 3)",
                                             "write": True})
    assert written["rows_count"] == 3 and written["status"] == "INSERT 0 3"
    # the switch is per statement: the next one reads only again
    assert (await refusal(admin.call("admin.sql", {"sql": f"DELETE FROM {table}"}))).details["sqlstate"] == "25006"
    many = await admin.call("admin.sql", {"sql": "SELECT generate_series(1, 2000) AS n"})
    assert len(many["rows"]) == 500 and many["cut"] is True
    typo = await refusal(admin.call("admin.sql", {"sql": "SELEC 1"}))
    assert typo.message == 'syntax error at or near "SELEC"' and typo.details["sqlstate"] == "42601"
    await admin.call("admin.sql", {"sql": f"DROP TABLE {table}", "write": True})


async def test_the_timeout_stops_a_long_statement(admin):
    refused = await refusal(admin.call("admin.sql", {"sql": "SELECT pg_sleep(30)"}))
    assert refused.details["sqlstate"] == "57014", refused
    assert refused.message == "canceling statement due to statement timeout"


async def test_each_statement_is_in_the_admin_log_with_who(admin, node):
    _, dsn = node
    marker = secrets.token_hex(6)
    await admin.call("admin.sql", {"sql": f"SELECT '{marker}' AS m"})
    await code_of(admin.call("admin.sql", {"sql": f"SELECT '{marker}'::int"}))
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT admin, address, action, detail::text AS detail FROM hapta.admin_log "
                                "WHERE detail->>'sql' LIKE $1 ORDER BY id", f"%{marker}%")
    finally:
        await conn.close()
    assert [(r["admin"], r["action"]) for r in rows] == [("admin key", "sql"), ("admin key", "sql")]
    first, second = (msgspec.json.decode(r["detail"]) for r in rows)
    assert first == {"sql": f"SELECT '{marker}' AS m", "write": False, "rows": 1}
    assert second["error"] == "22P02" and "rows" not in second
    assert rows[0]["address"].startswith("127.")
    listed = (await admin.call("admin.log", {"limit": 5}))["items"]
    assert any(marker in (item["detail"].get("sql") or "") for item in listed)


async def _finished(admin, kind: str):
    async def ended():
        listed = await admin.call("admin.backups")
        last = listed[f"last_{kind}"]
        return listed if listed["running"] is None and last and last["state"] != "running" else None
    return await until(ended, timeout=120, every=0.2)


async def test_backups_start_list_download_delete_and_restore(admin, node):
    _, dsn = node
    name = f"ops-{secrets.token_hex(4)}.tar"
    assert (await admin.call("admin.backup", {"target": name}))["started"] is True
    listed = await _finished(admin, "backup")
    assert listed["last_backup"]["state"] == "done", listed["last_backup"]
    assert listed["restore_allowed"] is True and listed["s3"] is None
    mine = [b for b in listed["backups"] if b["name"] == name]
    assert len(mine) == 1 and mine[0]["where"] == "local" and mine[0]["size"] > 0

    data = b"".join([chunk async for chunk in admin.stream("admin.backup.download", {"name": name})])
    assert len(data) == mine[0]["size"]
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert {"database.dump", "manifest.json"} <= set(tar.getnames())
    for bad in ("../x.tar", "/etc/passwd", "s3://other/backups/x.tar"):
        assert await code_of(admin.call("admin.backup.download", {"name": bad})) == "BAD_REQUEST", bad
    assert await code_of(admin.call("admin.backup.download", {"name": "none.tar"})) == "NOT_FOUND"

    # a table made after the backup is gone once it is restored; the name must be typed again
    table = f"after_{secrets.token_hex(4)}"
    await admin.call("admin.sql", {"sql": f"CREATE TABLE {table} (n int)", "write": True})
    assert await code_of(admin.call("admin.backup.restore", {"name": name, "confirm": "yes"})) == "BAD_REQUEST"
    assert (await admin.call("admin.backup.restore", {"name": name, "confirm": name}))["started"] is True
    restored = await _finished(admin, "restore")
    assert restored["last_restore"]["state"] == "done", restored["last_restore"]
    gone = await refusal(admin.call("admin.sql", {"sql": f"SELECT * FROM {table}"}))
    assert gone.details["sqlstate"] == "42P01"

    assert (await admin.call("admin.backup.delete", {"name": name})) == {"deleted": name}
    assert name not in [b["name"] for b in (await admin.call("admin.backups"))["backups"]]
    assert await code_of(admin.call("admin.backup.delete", {"name": name})) == "NOT_FOUND"

    conn = await asyncpg.connect(dsn)
    try:
        actions = [(r["action"], r["detail"]) for r in await conn.fetch(
            "SELECT action, detail->>'name' AS detail FROM hapta.admin_log WHERE action LIKE 'backup.%' ORDER BY id")]
    finally:
        await conn.close()
    # the restore put back the log as it was at the backup (its start already in it), then logged its end
    assert ("backup.restore", name) in actions and actions[-1] == ("backup.delete", name), actions


async def test_restore_is_refused_in_production(node, tmp_path):
    _, dsn = node
    strong = {"HAPTA_ADMIN_KEY": "admin-" + secrets.token_hex(20), "HAPTA_ANON_KEY": "anon-" + secrets.token_hex(10)}
    env = gateway_env(dsn, HAPTA_ENV="production", HAPTA_JWT_SECRET=JWT_SECRET, HAPTA_DATA_DIR=str(tmp_path), **strong)
    process = await asyncio.to_thread(GatewayProcess(env, drop=S3).start)
    try:
        client = await Client.connect(process.url, local_addr=(next_loopback(), 0))
        try:
            await client.call("auth.admin", {"key": strong["HAPTA_ADMIN_KEY"]})
            assert (await client.call("admin.backups"))["restore_allowed"] is False
            refused = await refusal(client.call("admin.backup.restore", {"name": "x.tar", "confirm": "x.tar"}))
            assert refused.code == "FORBIDDEN" and "HAPTA_ALLOW_RESTORE" in refused.message
        finally:
            await client.close()
    finally:
        process.stop()


@pytest.fixture(scope="module")
def seaweed():
    server = SeaweedS3().start()
    yield server
    server.stop()


async def test_backups_in_the_apps_s3(seaweed, pg_admin, tmp_path):
    """With S3: a backup to s3://<bucket>/backups/, listed, downloaded through its presigned link, deleted; and the
    S3 keys are no more in the settings' answer than the others."""
    bucket = f"hapta-{secrets.token_hex(4)}"
    dsn = await create_database(pg_admin)
    env = {**gateway_env(dsn, HAPTA_DATA_DIR=str(tmp_path / "data")), **seaweed.env(bucket)}
    process = await asyncio.to_thread(GatewayProcess(env).start)
    try:
        client = await Client.connect(process.url, local_addr=(next_loopback(), 0))
        try:
            await client.call("auth.admin", {"key": ADMIN_KEY})
            raw = msgspec.json.encode(await client.call("admin.settings")).decode()
            assert seaweed.SECRET_KEY not in raw and seaweed.ACCESS_KEY not in raw
            name = f"s3://{bucket}/backups/nightly-{secrets.token_hex(3)}.tar"
            assert await code_of(client.call("admin.backup.delete", {"name": "s3://elsewhere/backups/x.tar"})) \
                == "BAD_REQUEST"
            await client.call("admin.backup", {"target": name})
            listed = await _finished(client, "backup")
            assert listed["last_backup"]["state"] == "done", listed["last_backup"]
            assert listed["s3"] == f"s3://{bucket}/backups/"
            mine = [b for b in listed["backups"] if b["name"] == name]
            assert len(mine) == 1 and mine[0]["where"] == "s3" and mine[0]["size"] > 0, listed["backups"]
            link = await client.call("admin.backup.download", {"name": name})
            body = await asyncio.to_thread(lambda: urllib.request.urlopen(link["url"], timeout=30).read())
            assert len(body) == mine[0]["size"]
            with tarfile.open(fileobj=io.BytesIO(body)) as tar:
                assert "manifest.json" in tar.getnames()
            assert await client.call("admin.backup.delete", {"name": name}) == {"deleted": name}
            assert name not in [b["name"] for b in (await client.call("admin.backups"))["backups"]]
        finally:
            await client.close()
    finally:
        process.stop()
        await drop_database(pg_admin, dsn)
    assert "Traceback" not in process.log_text(), process.log_text()
