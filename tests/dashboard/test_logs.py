"""The dashboard's Logs page end to end (dashboard/test/logs.test.ts, vitest): Chromium signs in at /_/ of a real
`hapta serve` with the admin key and finds the requests a client of the JS client just made, filtered by who made
them and by outcome, counted in the chart, one shown in full, and the gateway's warnings beside them; nothing
secret on the page. The screenshot goes to this test's temp folder (DASHBOARD_SHOTS=../docs/dashboard with
`npm test -- test/logs` in dashboard/ makes the committed one)."""
from __future__ import annotations

from tests.dashboard.conftest import in_chromium, screenshots


async def test_the_logs_page_in_chromium(npm, pg_admin, tmp_path):
    await in_chromium(npm, pg_admin, "test/logs", tmp_path, timeout=600)
    assert screenshots(tmp_path) == ["logs.png"]
