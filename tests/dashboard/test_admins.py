"""Admin accounts in the dashboard end to end (dashboard/test/admins.test.ts, vitest): `hapta admin create` makes an
account, Chromium signs in with its password and TOTP code, reloads without signing in again (no sign-in attempt
counted), uses the Admins page and signs out; a non-admin gets FORBIDDEN from its ops. The JS side starts its
gateway itself, on a database of this session's PostgreSQL, which the command reaches too. The page's screenshot
goes to this test's temp folder (DASHBOARD_SHOTS=docs/dashboard with `npm test` in dashboard/ makes the committed
one)."""
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


async def test_admin_accounts_in_chromium(npm, pg_admin, tmp_path):
    if shutil.which("chromium") is None:
        pytest.skip("no chromium here: bin/test installs Debian's package where it may (root and apt-get)")
    dsn = await create_database(pg_admin)
    try:
        env = {**os.environ, "DATABASE_URL": dsn, "CI": "true", "NO_COLOR": "1", "DASHBOARD_SHOTS": str(tmp_path)}
        done = subprocess.run([npm, "test", "--", "test/admins"], cwd=SOURCE, env=env, capture_output=True,
                              text=True, timeout=600)
    finally:
        await drop_database(pg_admin, dsn)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    summary = output.split("Test Files")[-1]
    assert " failed" not in summary and " skipped" not in summary, output
    assert sorted(path.name for path in tmp_path.glob("*.png")) == ["admins.png"]
    print(output[-400:])
