"""`hapta admin create | list | delete | totp-reset` on a database of its own, then the account it made signing in to
a real `hapta serve` over a socket, with the code of the secret the command printed; and `hapta admin` alone still
prints the key and the dashboard's address."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pyotp
import pytest
import pytest_asyncio

from hapta.client import Client
from hapta.protocol.errors import HaptaError
from tests.conftest import ADMIN_KEY, PASSWORD, gateway_env
from tests.services import APP, GatewayProcess, create_database, drop_database, next_loopback

CONFIG = str(APP / "config.py")


@pytest_asyncio.fixture(scope="module")
async def dsn(pg_admin):
    found = await create_database(pg_admin)
    yield found
    await drop_database(pg_admin, found)


def hapta(*args: str, env: dict[str, str], input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hapta", "admin", *args], env={**os.environ, **env}, input=input,
                          capture_output=True, text=True, timeout=90, stdin=None if input is not None
                          else subprocess.DEVNULL)


def secret_in(output: str) -> str:
    found = re.search(r"^  secret: ([A-Z2-7]+)$", output, re.M)
    assert found, output
    return found.group(1)


async def test_the_commands_and_a_sign_in_with_what_they_printed(dsn):
    env = gateway_env(dsn)
    made = hapta("create", "--config", CONFIG, "--email", "Ops@Example.com", "--password-stdin", env=env,
                 input=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    secret = secret_in(made.stdout)
    assert made.stdout.splitlines()[0] == "admin ops@example.com created"
    assert f"otpauth://totp/Hapta%20admin:ops%40example.com?secret={secret}&issuer=Hapta%20admin" in made.stdout
    assert PASSWORD not in made.stdout + made.stderr   # never echoed, never logged

    again = hapta("create", "--config", CONFIG, "--email", "ops@example.com", "--password-stdin", env=env,
                  input=PASSWORD + "\n")
    assert (again.returncode, again.stderr.splitlines()[-1]) == (1, "hapta: admin create: there is an admin "
                                                                    "ops@example.com already")
    weak = hapta("create", "--config", CONFIG, "--email", "w@example.com", "--password-stdin", env=env,
                 input="password\n")
    assert weak.returncode == 1 and "at least 12 characters" in weak.stderr
    asked = hapta("create", "--config", CONFIG, "--email", "w@example.com", env=env)   # no terminal to ask on
    assert asked.returncode == 1 and "--password-stdin" in asked.stderr
    last = hapta("delete", "--config", CONFIG, "--email", "ops@example.com", env=env)
    assert last.returncode == 1 and "the last admin account cannot be deleted" in last.stderr
    plain = hapta("create", "--config", CONFIG, "--email", "dev@example.com", "--password-stdin", "--no-totp",
                  env=env, input=PASSWORD + "\n")
    assert plain.returncode == 0 and "no second factor" in plain.stdout, plain.stderr

    listed = hapta("list", "--config", CONFIG, env=env)
    assert listed.stdout.splitlines() == [
        "dev@example.com  second factor: NO  live sessions: 0  last sign-in: never",
        "ops@example.com  second factor: yes  live sessions: 0  last sign-in: never"], listed.stderr
    # the command without a subcommand is as before
    shown = hapta("--config", CONFIG, env=env)
    assert shown.stdout.splitlines() == [f"admin key: {ADMIN_KEY}", "dashboard: http://127.0.0.1:8080/_/"]

    gateway = GatewayProcess(env).start()
    try:
        async with await Client.connect(gateway.url, local_addr=(next_loopback(), 0)) as dashboard:
            signed = await dashboard.call("auth.admin.signin", {"email": "ops@example.com", "password": PASSWORD,
                                                                "code": pyotp.TOTP(secret).now()})
            assert (await dashboard.call("admins.list"))["you"] == "ops@example.com"
            # the Live page says which admin a connection is
            connections = (await dashboard.call("admin.connections"))["connections"]
            assert [c["name"] for c in connections if c["role"] == "admin"] == ["ops@example.com"]
            # a new factor from the command line: the old one is void and the session it opened ends at once
            reset = hapta("totp-reset", "--config", CONFIG, "--email", "ops@example.com", env=env)
            assert reset.returncode == 0 and secret_in(reset.stdout) != secret, reset.stderr
            revoked = await dashboard.next_event(timeout=10)
            assert revoked == {"event": "auth.revoked", "data": {"reason": "second factor reset"}}
        async with await Client.connect(gateway.url, local_addr=(next_loopback(), 0)) as reloaded:
            with pytest.raises(HaptaError) as ended:
                await reloaded.call("auth.admin.resume", {"token": signed["token"]})
            assert ended.value.code == "TOKEN_INVALID"
        deleted = hapta("delete", "--config", CONFIG, "--email", "dev@example.com", env=env)
        assert deleted.returncode == 0 and "deleted" in deleted.stdout, deleted.stderr
    finally:
        gateway.stop()
    assert "Traceback" not in gateway.log_text()
    assert PASSWORD not in gateway.log_text() and signed["token"] not in gateway.log_text()


def test_production_refuses_an_admin_without_a_second_factor(dsn):
    env = gateway_env(dsn, HAPTA_ENV="production", HAPTA_ADMIN_KEY="k" * 40, HAPTA_ANON_KEY="a" * 20)
    refused = hapta("create", "--config", CONFIG, "--email", "p@example.com", "--password-stdin", "--no-totp",
                    env=env, input=PASSWORD + "\n")
    assert refused.returncode == 1 and "production requires a second factor" in refused.stderr
