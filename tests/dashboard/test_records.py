"""The dashboard's Records page, second round, end to end (dashboard/test/records.test.ts, vitest): Chromium signed
in with the admin key at /_/ of a real `hapta serve` creates a post in the form built from admin.schema (a picture,
the author from the relation picker) that a JS client in Node hears, sees a refused field under its input, deletes
picked rows, exports the filter's rows as CSV and JSON, and sees the collections' diagram. Its pure parts (the
form's conversions, CSV, the bounded export) run without a browser. Screenshots go to this test's temp folder
(DASHBOARD_SHOTS=docs/dashboard with `npm test` in dashboard/ makes the committed set)."""
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


def test_the_forms_and_exports_own_logic(npm):
    done = subprocess.run([npm, "test", "--", "test/values"], cwd=SOURCE, env={**os.environ, "CI": "true",
                          "NO_COLOR": "1"}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


async def test_the_records_page_in_chromium(npm, pg_admin, tmp_path):
    if shutil.which("chromium") is None:
        pytest.skip("no chromium here: bin/test installs Debian's package where it may (root and apt-get)")
    dsn = await create_database(pg_admin)
    try:
        env = {**os.environ, "DATABASE_URL": dsn, "CI": "true", "NO_COLOR": "1", "DASHBOARD_SHOTS": str(tmp_path)}
        done = subprocess.run([npm, "test", "--", "test/records"], cwd=SOURCE, env=env, capture_output=True,
                              text=True, timeout=900)
    finally:
        await drop_database(pg_admin, dsn)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    summary = output.split("Test Files")[-1]
    assert " failed" not in summary and " skipped" not in summary, output
    assert sorted(path.name for path in tmp_path.glob("*.png")) == ["er.png", "record-form.png"]
    print(output[-400:])
