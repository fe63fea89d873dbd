"""The app at the repository's root: the demo, until you replace its config.py, rules/ and migrations/ with your
own. These tests hold for any app there: it starts as the README's first command starts it, on embedded defaults,
and every collection it declares answers. Everything else in tests/ serves tests/app, a copy of the demo, so that
`bin/test` stays green whatever app the root holds."""
from __future__ import annotations

import re
import time

from hapta.client import Client
from hapta.config import load_app
from hapta.settings import Settings
from tests.services import ROOT, GatewayProcess


async def test_bin_hapta_serve_runs_the_app_on_embedded_defaults(tmp_path):
    """`bin/hapta serve`: no DATABASE_URL, so an embedded PostgreSQL; the app's migrations apply, its rules load,
    its anon key signs in, and an admin can list every collection config.py declares."""
    process = GatewayProcess({"HAPTA_DATA_DIR": str(tmp_path / "data")}, command=[str(ROOT / "bin" / "hapta")],
                             config=ROOT / "config.py", drop=("DATABASE_URL",))
    settings = Settings.load(ROOT, environ=process.env)
    app = load_app(ROOT / "config.py")
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
            assert status["live"] == status["size"] > 0
    finally:
        assert process.stop() == 0, process.log_text()
    assert (tmp_path / "data" / "postgres" / "PG_VERSION").exists()
    assert "Traceback" not in process.log_text()
