"""The JavaScript client's own tests (clients/js: vitest), run by bin/test: its unit tests, the check that the
committed dist/ is what src/ builds to, and its end-to-end tests against real `hapta serve` processes (which the
JS tests start and restart themselves, on a database of this session's PostgreSQL), in Node and in Chromium."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.npm import npm_ci
from tests.services import ROOT, create_database, drop_database

CLIENT = ROOT / "clients" / "js"


@pytest.fixture(scope="module")
def npm() -> str:
    return npm_ci(CLIENT)


async def _vitest(npm: str, pg_admin: str, *files: str, folder: Path = CLIENT) -> str:
    """`npm test -- <files>` in `folder` (a package of clients/) on a database of its own; its output. Fails the
    test on any failure."""
    dsn = await create_database(pg_admin)
    try:
        env = {**os.environ, "DATABASE_URL": dsn, "CI": "true", "NO_COLOR": "1"}
        done = subprocess.run([npm, "test", "--", *files], cwd=folder, env=env, capture_output=True, text=True,
                              timeout=900)
    finally:
        await drop_database(pg_admin, dsn)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    summary = output.split("Test Files")[-1]
    assert " failed" not in summary and " skipped" not in summary, output
    return output


async def test_the_js_client(npm, pg_admin):
    """Unit tests, the modules check (no import cycles), the dist/ check, and end to end against real gateways, in
    Node."""
    print((await _vitest(npm, pg_admin, "test/backoff", "test/msgpack", "test/queries", "test/overlay", "test/outbox",
                         "test/modules", "test/dist", "test/gateway"))[-400:])


async def test_the_js_client_in_chromium(npm, pg_admin):
    """The same client in a real browser (Debian's Chromium through playwright-core)."""
    if shutil.which("chromium") is None:
        pytest.skip("no chromium here: bin/test installs Debian's package where it may (root and apt-get)")
    print((await _vitest(npm, pg_admin, "test/browser"))[-400:])


async def test_the_js_client_offline_in_chromium(npm, pg_admin):
    """Offline first in Chromium (persist: "indexeddb"): writes made offline, a reload and a browser restart while
    offline, two tabs sharing one outbox, a refusal rolled back, and a gateway restart while the outbox is sent."""
    if shutil.which("chromium") is None:
        pytest.skip("no chromium here: bin/test installs Debian's package where it may (root and apt-get)")
    print((await _vitest(npm, pg_admin, "test/offline"))[-400:])


USAGE = """
import { Hapta } from "%(dist)s";
import type { PostsRecord, UsersRecord, Collections } from "./types";

export async function read(hapta: Hapta): Promise<string> {
  const post = await hapta.records<PostsRecord>("posts").get("p1");
  const author: Collections["users"] = await hapta.records<UsersRecord>("users").get(post.author);
  const email: string | null = author.email;
  return post.text + (email ?? "") + post.media.map((file) => file.sha256).join();
}
"""
WRONG = """
import { Hapta } from "%(dist)s";
import type { PostsRecord } from "./types";

export async function wrong(hapta: Hapta): Promise<number> {
  const post = await hapta.records<PostsRecord>("posts").get("p1");
  return post.text;
}
"""


def test_hapta_types_writes_interfaces_that_type_the_client(npm, database, tmp_path):
    """`hapta types` of the test app, checked by TypeScript against the client's own declarations: a record read
    through records<PostsRecord> has the columns' types (a string is not a number; a guarded field may be null)."""
    out = tmp_path / "types.ts"
    done = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-m", "hapta", "types", "--config",
                           str(ROOT / "tests" / "app" / "config.py"), "--out", str(out)],
                          env={**os.environ, "DATABASE_URL": database}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert "export interface PostsRecord {" in text and "  media: HaptaFile[];" in text
    assert "  email: string | null;" in text            # guarded: null where the guard does not hold
    assert "password" not in text                       # hidden fields never leave the gateway
    tsc = str(CLIENT / "node_modules" / "typescript" / "bin" / "tsc")
    dist = str(CLIENT / "dist" / "hapta.js")
    for name, body, ok in (("usage.ts", USAGE, True), ("wrong.ts", WRONG, False)):
        (tmp_path / name).write_text(body % {"dist": dist})
        checked = subprocess.run(["node", tsc, "--noEmit", "--strict", "--target", "es2022", "--module", "es2022",
                                  "--moduleResolution", "bundler", "--skipLibCheck", str(tmp_path / name)],
                                 capture_output=True, text=True, timeout=120)
        assert (checked.returncode == 0) is ok, checked.stdout + checked.stderr
        if not ok:
            assert "Type 'string' is not assignable to type 'number'" in checked.stdout
