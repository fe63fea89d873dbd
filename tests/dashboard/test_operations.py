"""The dashboard's Backups, Settings and SQL pages end to end (dashboard/test/operations.test.ts, vitest): Chromium
signs in at /_/ of a real `hapta serve` with the admin key, starts a backup, sees it listed and downloads it; reads
the settings with no secret in the page (DATABASE_URL carries a password here, which trust authentication ignores)
and sends a test mail; runs an SQL read, and a write refused until switched on. Screenshots of the three pages go to
this test's temp folder (DASHBOARD_SHOTS=docs/dashboard with `npm test` in dashboard/ makes the committed set)."""
from __future__ import annotations

import os
import secrets
import shutil
import subprocess

import pytest

from tests.npm import npm_ci
from tests.services import ROOT, create_database, drop_database

SOURCE = ROOT / "dashboard"


@pytest.fixture(scope="module")
def npm() -> str:
    return npm_ci(SOURCE)


async def test_the_operations_pages_in_chromium(npm, pg_admin, tmp_path):
    if shutil.which("chromium") is None:
        pytest.skip("no chromium here: bin/test installs Debian's package where it may (root and apt-get)")
    dsn = await create_database(pg_admin)
    password = "dash-db-" + secrets.token_hex(8)
    with_password = dsn.replace("://postgres@", f"://postgres:{password}@", 1)
    assert password in with_password, dsn
    try:
        env = {**os.environ, "DATABASE_URL": with_password, "CI": "true", "NO_COLOR": "1",
               "DASHBOARD_SHOTS": str(tmp_path)}
        done = subprocess.run([npm, "test", "--", "test/operations"], cwd=SOURCE, env=env, capture_output=True,
                              text=True, timeout=900)
    finally:
        await drop_database(pg_admin, dsn)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    summary = output.split("Test Files")[-1]
    assert " failed" not in summary and " skipped" not in summary, output
    assert password not in output
    shots = sorted(path.name for path in tmp_path.glob("*.png"))
    assert shots == ["backups.png", "settings.png", "sql.png"], shots
    print(output[-400:])
