"""Admin accounts in the dashboard end to end (dashboard/test/admins.test.ts, vitest): `hapta admin create` makes an
account, Chromium signs in with its password and TOTP code, reloads without signing in again (no sign-in attempt
counted), uses the Admins page and signs out; a non-admin gets FORBIDDEN from its ops. The JS side starts its
gateway itself, on a database of this session's PostgreSQL, which the command reaches too. The page's screenshot
goes to this test's temp folder (DASHBOARD_SHOTS=docs/dashboard with `npm test` in dashboard/ makes the committed
one)."""
from __future__ import annotations

from tests.dashboard.conftest import in_chromium, screenshots


async def test_admin_accounts_in_chromium(npm, pg_admin, tmp_path):
    output = await in_chromium(npm, pg_admin, "test/admins", tmp_path, timeout=600)
    assert screenshots(tmp_path) == ["admins.png"]
    print(output[-400:])
