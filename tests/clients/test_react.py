"""@hapta/react's own tests (clients/react: vitest), run by bin/test: its pure functions, the check that the committed
dist/ is what src/ builds to, and its hooks in Chromium against a real `hapta serve` (which the JS tests start
themselves, on a database of this session's PostgreSQL)."""
from __future__ import annotations

import shutil

import pytest

from tests.clients.test_js import CLIENT as JS_CLIENT, _vitest
from tests.npm import npm_ci
from tests.services import ROOT

REACT = ROOT / "clients" / "react"


@pytest.fixture(scope="module")
def npm() -> str:
    npm_ci(JS_CLIENT)   # its dist/ is there already; the test support (startGateway) is shared
    return npm_ci(REACT)


async def test_the_react_bindings(npm, pg_admin):
    print((await _vitest(npm, pg_admin, "test/pure", "test/dist", folder=REACT))[-400:])


async def test_the_react_bindings_in_chromium(npm, pg_admin):
    """The hooks in a real browser (Debian's Chromium through playwright-core), against real gateways."""
    if shutil.which("chromium") is None:
        pytest.skip("no chromium here: bin/test installs Debian's package where it may (root and apt-get)")
    print((await _vitest(npm, pg_admin, "test/browser", folder=REACT))[-400:])
