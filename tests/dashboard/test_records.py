"""The dashboard's Records page, second round, end to end (dashboard/test/records.test.ts, vitest): Chromium signed
in with the admin key at /_/ of a real `hapta serve` creates a post in the form built from admin.schema (a picture,
the author from the relation picker) that a JS client in Node hears, sees a refused field under its input, deletes
picked rows, exports the filter's rows as CSV and JSON, and sees the collections' diagram. Its pure parts (the
form's conversions, CSV, the bounded export) run without a browser. Screenshots go to this test's temp folder
(DASHBOARD_SHOTS=docs/dashboard with `npm test` in dashboard/ makes the committed set)."""
from __future__ import annotations

from tests.dashboard.conftest import in_chromium, screenshots, vitest


def test_the_forms_and_exports_own_logic(npm):
    vitest(npm, "test/values")


async def test_the_records_page_in_chromium(npm, pg_admin, tmp_path):
    output = await in_chromium(npm, pg_admin, "test/records", tmp_path)
    assert screenshots(tmp_path) == ["er.png", "record-form.png"]
    print(output[-400:])
