"""@hapta/react's own tests (clients/react: vitest), run by bin/test: its pure functions, the check that the committed
dist/ is what src/ builds to, its hooks and the React example (examples/react-feed) in Chromium against real `hapta
serve` processes (which the JS tests start themselves, on a database of this session's PostgreSQL), and the check
that the example's committed dist/ is what its sources build to."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.clients.test_js import _vitest
from tests.npm import npm_ci
from tests.services import ROOT

REACT = ROOT / "clients" / "react"


@pytest.fixture(scope="module")
def npm() -> str:
    # @hapta/client is linked from clients/js (its committed dist/, which needs no install), and so is the test
    # support that starts gateways (clients/js/test/support.ts, Node's own modules only)
    return npm_ci(REACT)


async def test_the_react_bindings(npm, pg_admin):
    print((await _vitest(npm, pg_admin, "test/pure", "test/dist", folder=REACT))[-400:])


async def test_the_react_bindings_in_chromium(npm, pg_admin):
    """The hooks in a real browser (Debian's Chromium through playwright-core), against real gateways."""
    if shutil.which("chromium") is None:
        pytest.skip("no chromium here: bin/test installs Debian's package where it may (root and apt-get)")
    print((await _vitest(npm, pg_admin, "test/browser", "test/example", folder=REACT))[-400:])


EXAMPLE = ROOT / "examples" / "react-feed"


def _files(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_the_react_example_dist_is_what_its_sources_build_to(npm, tmp_path):
    """examples/react-feed/dist is committed (served as it is checked in, as examples/web-feed is): it must be what
    `npm run build` makes of its sources and of the committed builds of @hapta/react and @hapta/client."""
    npm_ci(EXAMPLE)
    vite = EXAMPLE / "node_modules" / "vite" / "bin" / "vite.js"
    done = subprocess.run(["node", str(vite), "build", "--outDir", str(tmp_path / "dist"), "--emptyOutDir",
                           "--logLevel", "warn"], cwd=EXAMPLE, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    built, committed = _files(tmp_path / "dist"), _files(EXAMPLE / "dist")
    assert sorted(built) == sorted(committed), "examples/react-feed/dist is stale: run `npm run build` there"
    assert built == committed, "examples/react-feed/dist is stale: run `npm run build` there"
    assert sum(len(data) for data in built.values()) < 250_000   # small: React and the app, nothing else
