"""The published Python package: `python -m build` makes an sdist and, from that sdist, a wheel; the wheel installs
into a fresh virtual environment, whose own `hapta` prints the version and serves an app (the test app, a copy of the
demo, with a function) to a real client: rule and function workers run from the installed package."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

import hapta
from hapta.client import Client
from tests.conftest import gateway_env
from tests.services import APP, ROOT, GatewayProcess, create_database, drop_database

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

VERSION = hapta.__version__
MIGRATIONS = sorted(path.name for path in (ROOT / "hapta" / "store" / "sql").glob("*.sql"))
# what a checkout may hold that no published file should: caches, other tools' folders, the test suite
NEVER_SHIPPED = ("__pycache__", ".pyc", ".pytest_cache", "node_modules", ".venv", "/tests/", "/data/", ".env")


def run(command: list[str], timeout: float, **options) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, **options)
    assert done.returncode == 0, f"{command}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """The sdist and the wheel built from it (python -m build's default: the wheel comes from the unpacked sdist, so
    a file the sdist forgot is missing from the wheel too)."""
    folder = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--outdir", str(folder), str(ROOT)], timeout=600)
    return folder


@pytest.fixture(scope="module")
def venv(dist, tmp_path_factory) -> Path:
    """A fresh virtual environment with nothing but the wheel and its dependencies from the package index."""
    folder = tmp_path_factory.mktemp("venv") / "venv"
    run([sys.executable, "-m", "venv", str(folder)], timeout=120)
    wheel = dist / f"hapta-{VERSION}-py3-none-any.whl"
    run([str(folder / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         str(wheel)], timeout=600)
    return folder


def test_the_sdist_and_the_wheel_hold_what_is_needed(dist):
    with tarfile.open(dist / f"hapta-{VERSION}.tar.gz") as sdist:
        names = [name.removeprefix(f"hapta-{VERSION}") for name in sdist.getnames()]
    for needed in ("/pyproject.toml", "/README.md", "/LICENSE", "/CHANGELOG.md", "/hapta/py.typed",
                   "/hapta/__init__.py", *(f"/hapta/store/sql/{name}" for name in MIGRATIONS)):
        assert needed in names, needed
    assert not [name for name in names if any(part in name for part in NEVER_SHIPPED)]
    with zipfile.ZipFile(dist / f"hapta-{VERSION}-py3-none-any.whl") as wheel:
        names = ["/" + name for name in wheel.namelist()]
        metadata = wheel.read(f"hapta-{VERSION}.dist-info/METADATA").decode()
    assert not [name for name in names if any(part in name for part in NEVER_SHIPPED)]
    assert f"/hapta-{VERSION}.dist-info/licenses/LICENSE" in names
    for line in (f"Version: {VERSION}", "License-Expression: MIT", "Requires-Python: >=3.11",
                 "Classifier: Framework :: AsyncIO", "Classifier: Typing :: Typed"):
        assert line in metadata.splitlines(), line


async def test_the_installed_package_serves_an_app(venv, pg_admin, tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    hapta_command = str(venv / "bin" / "hapta")
    shown = run([hapta_command, "version"], timeout=60, env=env, cwd=tmp_path)
    assert shown.stdout.startswith(f"hapta {VERSION} (Python ")

    # the environment imports its own copy, with the migrations and the PEP 561 marker beside it
    where = run([str(venv / "bin" / "python"), "-c",
                 "import hapta, pathlib; print(pathlib.Path(hapta.__file__).parent)"],
                timeout=60, env=env, cwd=tmp_path)
    package = Path(where.stdout.strip())
    assert package.is_relative_to(venv) and (package / "py.typed").is_file()
    assert sorted(path.name for path in (package / "store" / "sql").glob("*.sql")) == MIGRATIONS

    app = tmp_path / "app"   # an app as a user would lay it out beside an installed hapta (not the repository's own:
    app.mkdir()              # that is the user's to replace, and tests/demo/ is about it)
    shutil.copy(APP / "config.py", app / "config.py")
    for name in ("rules", "migrations"):
        shutil.copytree(APP / name, app / name, ignore=shutil.ignore_patterns("__pycache__"))
    (app / "functions").mkdir()
    (app / "functions" / "echo.py").write_text("from hapta.functions import call\n\n"
                                               "@call(allow=\"\")\ndef echo(ctx, args):\n    return args\n")
    dsn = await create_database(pg_admin)
    process = GatewayProcess({**gateway_env(dsn), "HAPTA_DATA_DIR": str(app / "data")}, command=[hapta_command],
                             config=app / "config.py", drop=("PYTHONPATH", "VIRTUAL_ENV", "REDIS_URL", "S3_ENDPOINT"))
    try:
        process.start(timeout=180)
        assert process.health()["status"] == "ok"
        async with await Client.connect(process.url) as client:
            before = int(time.time() * 1000)
            pong = await client.call("ping")
            assert pong["time"] >= before - 1000   # the gateway's clock, in milliseconds
            await client.call("auth.anon", {"apikey": gateway_env(dsn)["HAPTA_ANON_KEY"]})
            assert await client.call("functions.call", {"name": "echo", "args": [1, "a"]}) == [1, "a"]
    finally:
        code = process.stop()
        await drop_database(pg_admin, dsn)
    log = process.log_text()
    assert code == 0 and f"hapta {VERSION} listening on ws://" in log and "Traceback" not in log, log
