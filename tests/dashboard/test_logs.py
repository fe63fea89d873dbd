"""The dashboard's Logs page end to end (dashboard/test/logs.test.ts, vitest): Chromium signs in at /_/ of a real
`hapta serve` with the admin key and finds the requests a client of the JS client just made, filtered by who made
them and by outcome, counted in the chart, one shown in full, and the gateway's warnings beside them; nothing
secret on the page. The screenshot goes to this test's temp folder (DASHBOARD_SHOTS=../docs/dashboard with
`npm test -- test/logs` in dashboard/ makes the committed one)."""
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


async def test_the_logs_page_in_chromium(npm, pg_admin, tmp_path):
    if shutil.which("chromium") is None:
        pytest.skip("no chromium here: bin/test installs Debian's package where it may (root and apt-get)")
    dsn = await create_database(pg_admin)
    try:
        env = {**os.environ, "DATABASE_URL": dsn, "CI": "true", "NO_COLOR": "1", "DASHBOARD_SHOTS": str(tmp_path)}
        done = subprocess.run([npm, "test", "--", "test/logs"], cwd=SOURCE, env=env, capture_output=True,
                              text=True, timeout=600)
    finally:
        await drop_database(pg_admin, dsn)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    summary = output.split("Test Files")[-1]
    assert " failed" not in summary and " skipped" not in summary, output
    assert sorted(path.name for path in tmp_path.glob("*.png")) == ["logs.png"]
