"""The first hour's mistakes, as `hapta serve` meets them: each stops the start with one line that names the field
and what was expected, a non-zero exit and no traceback (that is for --debug), and the config is checked before
any migration touches the database."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

import asyncpg
import pytest

from tests.conftest import gateway_env
from tests.services import APP, create_database, drop_database, write_app

BASE = """
    import dataclasses, runpy
    from hapta.config import ConnectionBounds
    base = runpy.run_path(APP + "/config.py")["app"]
"""


def serve(config, env: dict[str, str], *extra: str, port: str = "0") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hapta", *extra, "serve", "--config", str(config), "--port", port],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=90)


def one_line(result: subprocess.CompletedProcess) -> str:
    """The refusal: a non-zero exit and, on stderr, no traceback and a last line that says it."""
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr.strip().splitlines()[-1]


@pytest.fixture
async def fresh(pg_admin):
    """A database nothing has migrated: what a config mistake must leave as it is."""
    dsn = await create_database(pg_admin)
    yield dsn
    await drop_database(pg_admin, dsn)


async def migrated(dsn: str) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT to_regclass('hapta.migrations') IS NOT NULL")
    finally:
        await conn.close()


CONFIG_MISTAKES = [
    ('app = dataclasses.replace(base, origins="http://x")',
     "hapta: App.origins: expected a list of strings or None, got the string 'http://x'"),
    ('app = dataclasses.replace(base, limits={"records.craete": None})',
     "hapta: App.limits: 'records.craete' names no op (did you mean 'records.create'?)"),
    ('app = dataclasses.replace(base, connections=ConnectionBounds(total="10000"))',
     "hapta: App.connections.total: expected an integer, got the string '10000'"),
    ('app = dataclasses.replace(base, max_connections="10000")',   # a flat name of earlier releases, moved
     "hapta: App.connections.total: expected an integer, got the string '10000'"),
    ("from hapta.config import App\napp = App(collections=base.collections, orgins=['http://x'])",
     "hapta: config.py, line 6: App has no field 'orgins' (did you mean 'origins'?)"),
    ("from hapta.config import App\napp = App(collections=base.collections, rule_worker=2)",
     "hapta: config.py, line 6: App has no field 'rule_worker' (did you mean hooks=HookBounds(workers=...)?)"),
]


@pytest.mark.parametrize("body, said", CONFIG_MISTAKES, ids=["origins-string", "limit-of-no-op", "wrong-type",
                                                             "wrong-type-flat", "unknown-field", "old-name-typo"])
async def test_a_config_mistake_is_one_line_before_any_migration(tmp_path, fresh, body, said):
    config = write_app(tmp_path / "app", BASE + textwrap.indent(body, "    "))
    assert one_line(serve(config, gateway_env(fresh))) == said
    assert not await migrated(fresh)


@pytest.mark.parametrize("hook, said", [
    ("def before_insert(ctx, data):\n    return data\n", "before_insert is not a hook (hooks are before_create,"),
    ("def before_update(ctx, record):\n    return None\n", "before_update must take (ctx, record, changes)"),
])
async def test_a_hook_that_would_never_run_right_stops_the_start(tmp_path, fresh, hook, said):
    config = write_app(tmp_path / "app", BASE + "    app = base\n")
    (config.parent / "rules").unlink()   # write_app links the test app's rules; this app has its own
    (config.parent / "rules").mkdir()
    (config.parent / "rules" / "posts.py").write_text(hook)
    line = one_line(serve(config, gateway_env(fresh)))
    assert line.startswith("hapta: rules/ does not load: rules/posts.py: ") and said in line
    assert not await migrated(fresh)


def test_settings_mistakes(tmp_path, database):
    for env, said in (({"HAPTA_ENV": "prod"}, "hapta: HAPTA_ENV must be development or production, not 'prod'"),
                      ({"REDIS_URL": "localhost:6379"}, "hapta: REDIS_URL must start with redis://, rediss://, "
                                                        "unix:// or redis+sentinel://"),
                      ({"REDIS_URL": "redis+sentinel://:s3cret-pw@s1:26379,s2:26379"},
                       "hapta: REDIS_URL: names no master: add /<master-name>, the name the sentinels monitor it by "
                       "(the form is redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/master-name[/db])"),
                      ({"S3_ENDPOINT": "127.0.0.1:9000", "S3_ACCESS_KEY": "a", "S3_SECRET_KEY": "b"},
                       "hapta: S3_ENDPOINT must be an http:// or https:// URL, not '127.0.0.1:9000'"),
                      ({"S3_ENDPOINT": "http://127.0.0.1:9000"}, "hapta: S3 needs S3_ENDPOINT, S3_ACCESS_KEY and "
                                                                 "S3_SECRET_KEY together; S3_ACCESS_KEY, S3_SECRET_KEY "
                                                                 "missing"),
                      ({"DATABASE_URL": "postgres//app:s3cret-pw@oops"},
                       "hapta: DATABASE_URL must start with postgresql:// or postgres:// (it reads as host not given, "
                       "port 5432, database unreadable, user not given)")):
        assert one_line(serve(APP / "config.py", gateway_env(database, **env))) == said


def test_an_unreachable_database_is_one_line_without_its_password(tmp_path):
    with socket.socket() as probe:   # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = gateway_env(f"postgresql://app:s3cret-pw@127.0.0.1:{port}/appdb")
    line = one_line(serve(APP / "config.py", env))
    assert line == (f"hapta: cannot reach the database (host 127.0.0.1, port {port}, database appdb, user app): "
                    "connection refused (check DATABASE_URL, or leave it unset for the embedded one)")
    debug = serve(APP / "config.py", env, "--debug")
    assert debug.returncode != 0 and "Traceback" in debug.stderr   # the whole story, when asked for
    assert "s3cret-pw" not in debug.stderr + line


def test_a_port_in_use_is_one_line(database):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        line = one_line(serve(APP / "config.py", gateway_env(database), port=str(port)))
    assert line == f"hapta: port {port} on 127.0.0.1 is in use: stop what holds it, or pick another --port"


def migrated_app(tmp_path, dsn: str):
    """A test app with its own copy of the migrations (write_app links the test app's), applied to `dsn`."""
    app = tmp_path / "app"
    config = write_app(app, BASE + "    app = base\n")
    (app / "migrations").unlink()
    (app / "migrations").mkdir()
    for migration in sorted((APP / "migrations").glob("*.sql")):
        (app / "migrations" / migration.name).write_text(migration.read_text())
    env = gateway_env(dsn)
    assert subprocess.run([sys.executable, "-m", "hapta", "migrate", "--config", str(config)], env={**os.environ,
                          **env}, capture_output=True, timeout=90).returncode == 0
    return app, config, env


async def test_an_edited_migration_says_what_to_do(tmp_path, fresh):
    app, config, env = migrated_app(tmp_path, fresh)
    first = sorted((app / "migrations").glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- an afterthought\n")
    assert one_line(serve(config, env)) == (
        f"hapta: migration app/{first.name} was edited after it was applied to this database: put the file back as "
        f"it was and add the change as a new migration (in development, `hapta reset` starts the database over)")


async def test_a_deleted_migration_is_refused_as_an_edited_one_is(tmp_path, fresh):
    app, config, env = migrated_app(tmp_path, fresh)
    last = sorted((app / "migrations").glob("*.sql"))[-1]
    last.unlink()
    assert one_line(serve(config, env)) == (
        f"hapta: migration app/{last.name} was applied to this database but its file is gone: put the file back as "
        f"it was and add any change as a new migration (in development, `hapta reset` starts the database over)")
