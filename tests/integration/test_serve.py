"""`hapta serve` as users start it: the Origin allowlist, and settings that must stop it (embedded defaults:
tests/demo)."""
from __future__ import annotations

import subprocess
import sys

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.conftest import gateway_env
from tests.services import APP, GatewayProcess, write_app


@pytest.fixture
def origin_gateway(tmp_path, database):
    config = write_app(tmp_path / "app", """
        import dataclasses, runpy
        app = dataclasses.replace(runpy.run_path(APP + "/config.py")["app"], origins=("https://app.example",))
    """)
    process = GatewayProcess(gateway_env(database), config=config).start()
    yield process
    process.stop()


async def test_origin_allowlist(origin_gateway):
    for _ in range(3):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(origin_gateway.url, origin="https://evil.example"):
                pass
        assert refused.value.response.status_code == 403
    # a misconfiguration is said once, not once per attempt of every browser
    assert origin_gateway.log_text().count("refused a WebSocket from origin 'https://evil.example'") == 1
    for origin in ("https://app.example", None):   # the app's own pages, and native clients that send none
        async with connect(origin_gateway.url, origin=origin) as ws:
            await ws.send('{"id": 1, "op": "ping"}')
            assert '"ok":true' in await ws.recv()


def run_serve(config, env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hapta", "serve", "--config", str(config), "--port", "0"],
                          env=env, capture_output=True, text=True, timeout=60)


def test_production_refuses_development_secrets(database):
    import os
    env = {**os.environ, "DATABASE_URL": database, "HAPTA_ENV": "production"}
    for key in ("HAPTA_JWT_SECRET", "HAPTA_ANON_KEY", "HAPTA_ADMIN_KEY"):
        env.pop(key, None)   # so the shipped .env's development values apply
    result = run_serve(APP / "config.py", env)
    assert result.returncode != 0
    assert "production refuses the development value" in result.stderr and "Traceback" not in result.stderr


def test_config_mistakes_stop_the_start_with_a_message(tmp_path, database):
    import os
    config = write_app(tmp_path / "bad", """
        from hapta.config import App, Collection
        app = App(collections=[Collection("posts", list="public = tru || author = @user.id")])
    """)
    (config.parent / "rules").unlink()   # the test app's hooks are for collections this app does not have
    result = run_serve(config, {**os.environ, **gateway_env(database)})
    assert result.returncode != 0 and "posts.list rule" in result.stderr and "Traceback" not in result.stderr
    config.write_text("from hapta.config import App, Collection\napp = App(collections=[Collection('nosuch')])\n")
    result = run_serve(config, {**os.environ, **gateway_env(database)})
    assert result.returncode != 0 and "'nosuch' has no table" in result.stderr


def test_file_links_answer_pages_of_allowed_origins(origin_gateway):
    """A page of an allowed origin may fetch() a files.url link and read the answer (CORS); another may not."""
    import urllib.error
    import urllib.request

    def headers(origin: str):
        request = urllib.request.Request(origin_gateway.http + "/files/nothing/here.png?sig=x",
                                         headers={"Origin": origin})
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(request, timeout=10)
        return answer.value.code, answer.value.headers

    code, allowed = headers("https://app.example")
    assert code == 403 and allowed["Access-Control-Allow-Origin"] == "https://app.example"
    assert allowed["Vary"] == "Origin"
    code, refused = headers("https://evil.example")
    assert code == 403 and refused["Access-Control-Allow-Origin"] is None
