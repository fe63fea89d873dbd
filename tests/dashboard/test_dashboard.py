"""The admin dashboard end to end (dashboard/test, vitest): Chromium signs in at /_/ of a real `hapta serve` and uses
every page, against clients of the project's JS client; and every admin op it draws from refuses a non-admin. The
JS side starts its gateways itself, on a database of this session's PostgreSQL. Screenshots of the pages go to this
test's temp folder (DASHBOARD_SHOTS=docs/dashboard with `npm test` in dashboard/ makes the committed set)."""
from __future__ import annotations

import subprocess

from tests.dashboard.conftest import SOURCE, in_chromium, screenshots, vitest


def test_the_dashboards_own_logic(npm):
    """Its pure parts (rates from metric samples, typed text as a filter literal), without a browser."""
    vitest(npm, "test/rates", "test/filter")


def test_the_dashboard_type_checks(npm):
    """TypeScript in strict mode over dashboard/src and the client it imports (the build itself only strips types)."""
    done = subprocess.run(["node", str(SOURCE / "node_modules" / "typescript" / "bin" / "tsc"), "--noEmit", "-p",
                           str(SOURCE)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


async def test_the_dashboard_in_chromium(npm, pg_admin, tmp_path):
    output = await in_chromium(npm, pg_admin, "test/dashboard", tmp_path)
    # (users.png is test_users.py's)
    assert screenshots(tmp_path) == ["collections.png", "functions.png", "limits.png", "live.png", "overview.png",
                                     "records.png"]
    print(output[-400:])
