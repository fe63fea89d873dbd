"""The single binary: built by bin/build-binary, run beside the demo app's files on embedded defaults."""
from __future__ import annotations

import re
import shutil
import urllib.request
import subprocess

import pytest

from hapta.client import Client, HaptaError
from tests.conftest import PASSWORD
from tests.services import APP, ROOT, GatewayProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def binary(tmp_path_factory):
    folder = tmp_path_factory.mktemp("binary")
    built = subprocess.run([str(ROOT / "bin" / "build-binary"), "--dist", str(folder / "dist"),
                            "--work", str(folder / "work")], capture_output=True, text=True, timeout=840)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return folder / "dist" / "hapta"


def test_version_names_the_build(binary):
    shown = subprocess.run([str(binary), "version"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and shown.stdout.startswith("hapta ") and "binary: commit" in shown.stdout


async def test_a_session_against_the_binary(binary, tmp_path, embedded_data):
    app = tmp_path / "app"   # what a user ships beside the binary: the app's files and its .env
    app.mkdir()
    for name in ("config.py", ".env"):
        shutil.copy(APP / name, app / name)
    for name in ("rules", "migrations"):
        shutil.copytree(APP / name, app / name)
    (app / "functions").mkdir()   # function workers start from the binary too (with only the environment allowed)
    (app / "functions" / "echo.py").write_text("from hapta.functions import call\n\n"
                                               "@call(allow=\"\")\ndef echo(ctx, args):\n    return args\n")
    process = GatewayProcess({"HAPTA_DATA_DIR": str(embedded_data)}, command=[str(binary)], config=app / "config.py",
                             drop=("DATABASE_URL", "REDIS_URL", "S3_ENDPOINT", "HAPTA_JWT_SECRET", "HAPTA_ANON_KEY",
                                   "HAPTA_ADMIN_KEY", "HAPTA_ENV"))
    process.start(timeout=180)
    try:
        async with await Client.connect(process.url) as client:
            session = await client.call("auth.register", {"email": "binary@example.com", "password": PASSWORD})
            me = session["user"]["id"]
            post = await client.call("records.create", {"collection": "posts", "data": {
                "author": me, "text": "   hello from the binary   ", "public": True}})
            assert post["text"] == "hello from the binary"   # trimmed by rules/posts.py in a rule worker
            assert await client.call("records.get", {"collection": "posts", "id": post["id"]}) == post
            with pytest.raises(HaptaError) as refused:
                await client.call("records.create", {"collection": "posts", "data": {"author": me, "text": "x" * 281}})
            assert refused.value.code == "RULE_DENIED"
            assert await client.call("functions.call", {"name": "echo", "args": {"n": 1}}) == {"n": 1}
        # the dashboard's pages ship inside the binary: no Node, no build step on the machine that runs it
        with urllib.request.urlopen(process.http + "/_/", timeout=10) as page:
            html = page.read().decode()
        script = re.search(r'src="(/_/assets/[^"]+\.js)"', html)
        assert script, html
        with urllib.request.urlopen(process.http + script.group(1), timeout=10) as asset:
            assert asset.status == 200 and len(asset.read()) > 1000
    finally:
        code = process.stop()
    assert code == 0, process.log_text()
    log = process.log_text()
    assert "shutting down" in log and "Traceback" not in log
