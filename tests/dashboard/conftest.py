"""What the dashboard's tests share: its npm dependencies, installed once, and a run of its vitest suites, the browser
ones in Debian's Chromium against a real `hapta serve` on a database of their own (dashboard/test starts it)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.npm import npm_ci
from tests.services import ROOT, create_database, drop_database

SOURCE = ROOT / "dashboard"


@pytest.fixture(scope="session")
def npm() -> str:
    return npm_ci(SOURCE)


def vitest(npm: str, *suites: str, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    """Run dashboard/test suites; their output, once every test in them passed (none skipped)."""
    done = subprocess.run([npm, "test", "--", *suites], cwd=SOURCE, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "CI": "true", "NO_COLOR": "1", **(env or {})})
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    summary = output.split("Test Files")[-1]
    assert " failed" not in summary and " skipped" not in summary, output
    return output


async def in_chromium(npm: str, pg_admin: str, suite: str, shots: Path, *, env: dict[str, str] | None = None,
                      database_url=lambda dsn: dsn, timeout: float = 900) -> str:
    """A browser suite against a gateway on a new database (`database_url` may dress its DSN), screenshots into
    `shots`; its output."""
    if shutil.which("chromium") is None:
        pytest.skip("no chromium here: bin/test installs Debian's package where it may (root and apt-get)")
    dsn = await create_database(pg_admin)
    try:
        return vitest(npm, suite, timeout=timeout,
                      env={"DATABASE_URL": database_url(dsn), "DASHBOARD_SHOTS": str(shots), **(env or {})})
    finally:
        await drop_database(pg_admin, dsn)


def screenshots(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.glob("*.png"))
