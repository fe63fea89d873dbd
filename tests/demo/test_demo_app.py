"""The app at the repository's root: the demo, until you replace its config.py, rules/, functions/ and migrations/
with your own. This test holds for any app there: it starts as the README's first command starts it, on embedded
defaults, and every collection it declares answers, with as many rule workers as its rules/ asks for (none when it
has none). Everything else in tests/ serves tests/app, a copy of the demo, so that `bin/test` stays green whatever
app the root holds; the demo's own tests (tests/demo/__init__.py) skip when it is not the demo."""
from __future__ import annotations

import re
import time

import pytest

from hapta.client import Client
from hapta.config import ConfigError, load_app
from hapta.settings import Settings, SettingsError
from tests.conftest import ADMIN_KEY, ANON_KEY
from tests.services import ROOT, GatewayProcess


async def test_bin_hapta_serve_runs_the_app_on_embedded_defaults(embedded_data):
    """`bin/hapta serve`: no DATABASE_URL, so an embedded PostgreSQL; the app's migrations apply, its rules load,
    its anon key signs in, and an admin can list every collection config.py declares."""
    data = embedded_data
    env = {"HAPTA_DATA_DIR": str(data)}
    try:
        app = load_app(ROOT / "config.py")
    except ConfigError as exc:   # e.g. it reads an OAuth2 client id from an environment this machine lacks
        pytest.skip(f"the app at the repository's root does not load here: {exc}")
    try:
        Settings.load(ROOT, environ={**GatewayProcess(env).env, **env})
    except SettingsError:   # no .env with development keys beside it (a user's app): the test brings its own
        env.update(HAPTA_JWT_SECRET="test-secret-" + "x" * 40, HAPTA_ANON_KEY=ANON_KEY, HAPTA_ADMIN_KEY=ADMIN_KEY)
    process = GatewayProcess(env, command=[str(ROOT / "bin" / "hapta")], config=ROOT / "config.py",
                             drop=("DATABASE_URL",))
    settings = Settings.load(ROOT, environ=process.env)
    process.start(timeout=90)
    try:
        deadline = time.monotonic() + 10   # printed just after the listening line
        while "anon key:" not in process.log_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        printed = re.search(r"anon key: (\S+)", process.log_text())
        assert printed is not None and printed.group(1) == settings.anon_key
        async with await Client.connect(process.url) as guest:
            assert await guest.call("auth.anon", {"apikey": settings.anon_key}) == {"role": "anon"}
        async with await Client.connect(process.url) as admin:
            assert await admin.call("auth.admin", {"key": settings.admin_key}) == {"role": "admin"}
            for collection in app.collections:
                page = await admin.call("records.list", {"collection": collection.name, "per_page": 1})
                assert page["page"] == 1 and isinstance(page["items"], list), collection.name
            status = await admin.call("rules.status")
            assert status["live"] == status["size"]   # every rule worker ready (an app without rules/ has none)
            assert (status["size"] > 0) == any((ROOT / "rules").glob("*.py"))
    finally:
        assert process.stop() == 0, process.log_text()
    assert (data / "postgres" / "PG_VERSION").exists()
    assert "Traceback" not in process.log_text()
