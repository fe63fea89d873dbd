"""The README's quick start, as written, against the demo app at the repository's root (the demo's own test: it
skips once a user's app replaces the demo)."""
from __future__ import annotations

import re
import secrets
import subprocess
import sys

import pytest

from hapta.client import Client, HaptaError
from tests.conftest import gateway_env
from tests.demo import demo_only
from tests.services import ROOT, GatewayProcess, create_database, drop_database


@pytest.fixture
async def fresh(pg_admin):
    dsn = await create_database(pg_admin)
    yield dsn
    await drop_database(pg_admin, dsn)


@demo_only
async def test_the_readme_quick_start_runs_as_written_twice(tmp_path, fresh):
    """The README's Python snippet, against the demo app (the repository's own config.py) in development: it can
    run again and again (it signs in the second time), and the demo's register limit does not stop a developer
    trying it from one address; in production the demo's own limit holds."""
    readme = (ROOT / "README.md").read_text()
    snippet = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    gateway = GatewayProcess(gateway_env(fresh), config=ROOT / "config.py").start()
    try:
        script = tmp_path / "try.py"
        script.write_text(snippet.replace("ws://127.0.0.1:8080/ws", gateway.url))
        for _ in range(2):
            ran = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
            assert ran.returncode == 0 and "'text': 'hello'" in ran.stdout, ran.stderr
        async with await Client.connect(gateway.url) as developer:   # one address, many sign-ups
            for n in range(12):
                await developer.call("auth.register", {"email": f"dev{n}-{secrets.token_hex(3)}@example.com",
                                                       "password": "correct horse battery"})
    finally:
        gateway.stop()
    production = gateway_env(fresh, HAPTA_ENV="production", HAPTA_JWT_SECRET="j" * 40, HAPTA_ADMIN_KEY="k" * 40,
                             HAPTA_ANON_KEY="a" * 20)
    gateway = GatewayProcess(production, config=ROOT / "config.py").start()
    try:
        async with await Client.connect(gateway.url) as visitor:
            codes = []
            for n in range(11):
                try:
                    await visitor.call("auth.register", {"email": f"p{n}-{secrets.token_hex(3)}@example.com",
                                                         "password": "correct horse battery"})
                    codes.append("OK")
                except HaptaError as error:
                    codes.append(error.code)
        assert codes == ["OK"] * 10 + ["RATE_LIMITED"]
    finally:
        gateway.stop()
