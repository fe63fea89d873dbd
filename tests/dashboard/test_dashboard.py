"""The admin dashboard end to end (dashboard/test, vitest): Chromium signs in at /_/ of a real `hapta serve` and uses
every page, against clients of the project's JS client; and every admin op it draws from refuses a non-admin. The
JS side starts its gateways itself, on a database of this session's PostgreSQL. Screenshots of the pages go to this
test's temp folder (DASHBOARD_SHOTS=docs/dashboard with `npm test` in dashboard/ makes the committed set)."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.npm import npm_ci
from tests.services import ROOT, create_database, drop_database

SOURCE = ROOT / "dashboard"


@pytest.fixture(scope="module")
def npm() -> str:
    return npm_ci(SOURCE)


def test_the_dashboards_own_logic(npm):
    """Its pure parts (rates from metric samples, typed text as a filter literal), without a browser."""
    done = subprocess.run([npm, "test", "--", "test/rates", "test/filter"], cwd=SOURCE, env={**os.environ, "CI": "true",
                          "NO_COLOR": "1"}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_dashboard_type_checks(npm):
    """TypeScript in strict mode over dashboard/src and the client it imports (the build itself only strips types)."""
    done = subprocess.run(["node", str(SOURCE / "node_modules" / "typescript" / "bin" / "tsc"), "--noEmit", "-p",
                           str(SOURCE)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


async def test_the_dashboard_in_chromium(npm, pg_admin, tmp_path):
    if shutil.which("chromium") is None:
        pytest.skip("no chromium here: bin/test installs Debian's package where it may (root and apt-get)")
    dsn = await create_database(pg_admin)
    try:
        env = {**os.environ, "DATABASE_URL": dsn, "CI": "true", "NO_COLOR": "1", "DASHBOARD_SHOTS": str(tmp_path)}
        done = subprocess.run([npm, "test", "--", "test/dashboard"], cwd=SOURCE, env=env, capture_output=True,
                              text=True, timeout=900)
    finally:
        await drop_database(pg_admin, dsn)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    summary = output.split("Test Files")[-1]
    assert " failed" not in summary and " skipped" not in summary, output
    shots = sorted(path.name for path in tmp_path.glob("*.png"))
    # (users.png is test_users.py's)
    assert shots == ["collections.png", "functions.png", "limits.png", "live.png", "overview.png", "records.png"], \
        shots
    print(output[-400:])
