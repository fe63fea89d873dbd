"""The dashboard's build is committed (hapta/dashboard/: `hapta serve` and the single binary need no Node): it must be
what dashboard/ builds to, and fit the Content-Security-Policy the gateway serves it with (nothing inline)."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.dashboard.conftest import SOURCE
from tests.services import ROOT

BUILT = ROOT / "hapta" / "dashboard"

def _files(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_the_committed_build_is_what_the_source_builds_to(npm, tmp_path):
    """Vite's output is the same for the same inputs: any difference means `npm run build` was not run (and
    committed) after a change of dashboard/ or of the JS client it bundles."""
    out = tmp_path / "dashboard"
    done = subprocess.run(["node", str(SOURCE / "node_modules" / "vite" / "bin" / "vite.js"), "build", "--outDir",
                           str(out), "--emptyOutDir", "--logLevel", "warn"],
                          cwd=SOURCE, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    built, committed = _files(out), _files(BUILT)
    assert sorted(committed) == sorted(built), "hapta/dashboard/ is stale: run `npm run build` in dashboard/"
    stale = [name for name in built if built[name] != committed[name]]
    assert not stale, f"stale in hapta/dashboard/: {stale}; run `npm run build` in dashboard/ and commit it"


def test_nothing_inline_that_the_policy_would_block():
    """script-src and style-src are 'self': no inline <script> or <style>, no style attributes, assets from /_/."""
    page = (BUILT / "index.html").read_text()
    scripts = re.findall(r"<script\b[^>]*>(.*?)</script>", page, flags=re.S)
    assert scripts and all(not body.strip() for body in scripts), page
    assert all('src="/_/assets/' in tag for tag in re.findall(r"<script\b[^>]*>", page)), page
    assert "<style" not in page and "style=" not in page, page
    assert not list(BUILT.rglob("*.map")), "no source maps in the package"
    for source in (SOURCE / "src").rglob("*.tsx"):   # Preact would write a style attribute: the CSP refuses it
        assert "style=" not in source.read_text(), f"{source.name}: use a class in style.css, not style="
