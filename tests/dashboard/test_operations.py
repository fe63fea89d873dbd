"""The dashboard's Backups, Settings and SQL pages end to end (dashboard/test/operations.test.ts, vitest): Chromium
signs in at /_/ of a real `hapta serve` with the admin key, starts a backup, sees it listed and downloads it; reads
the settings with no secret in the page (DATABASE_URL carries a password here, which trust authentication ignores)
and sends a test mail; runs an SQL read, and a write refused until switched on. Screenshots of the three pages go to
this test's temp folder (DASHBOARD_SHOTS=docs/dashboard with `npm test` in dashboard/ makes the committed set)."""
from __future__ import annotations

import secrets

from tests.dashboard.conftest import in_chromium, screenshots


async def test_the_operations_pages_in_chromium(npm, pg_admin, tmp_path):
    password = "dash-db-" + secrets.token_hex(8)   # DATABASE_URL carries a password: the pages must not show it

    def with_password(dsn: str) -> str:
        dressed = dsn.replace("://postgres@", f"://postgres:{password}@", 1)
        assert password in dressed, dsn
        return dressed
    output = await in_chromium(npm, pg_admin, "test/operations", tmp_path, database_url=with_password)
    assert password not in output
    assert screenshots(tmp_path) == ["backups.png", "settings.png", "sql.png"]
    print(output[-400:])
