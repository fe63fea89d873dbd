"""Node packages for the tests that run JavaScript (clients/js, dashboard/): `npm ci` of a folder, once per change of
its package-lock.json, so that bin/test on a fresh machine needs nothing but Node with npm."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def _installed(folder: Path) -> bool:
    """node_modules is there and matches package-lock.json (npm ci records the lock it installed from)."""
    recorded = folder / "node_modules" / ".package-lock.json"
    return recorded.exists() and recorded.stat().st_mtime >= (folder / "package-lock.json").stat().st_mtime


def npm_ci(folder: Path) -> str:
    """The npm to run, after `npm ci` in `folder` when its node_modules is missing or stale."""
    found = shutil.which("npm")
    assert found, f"npm is needed for the tests of {folder.name} (Node 20+ with npm)"
    if not _installed(folder):
        done = subprocess.run([found, "ci", "--no-audit", "--no-fund"], cwd=folder, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
    return found
