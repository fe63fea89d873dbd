"""A user who replaces the demo app at the repository's root (config.py, rules/, functions/, migrations/), as the
README says, keeps a green `bin/test` (issue 26, item 12): the framework's tests hold for any valid app there, and
the demo's own skip, saying why. Checked for real: the repository's framework and tests, copied beside a different
minimal app (no rules/, no functions/, no .env), run the tests that read the root app."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.demo import DEMO_MARKER
from tests.services import ROOT

pytestmark = pytest.mark.timeout(600)

HERE = Path(__file__).resolve().parent
# How a test reaches the root app's files; every test module that does must live in tests/demo/.
READS_ROOT_APP = re.compile(r"ROOT\s*/\s*[\"'](config\.py|rules|functions|migrations|\.env)\b")

NOTES_APP = '''
"""Someone's own app: notes, nothing of the demo."""
from hapta.config import App, Collection

app = App(collections=[Collection("notes", list="", view="", create="@user.id != null", update=None, delete=None)])
'''
NOTES_MIGRATION = """
CREATE TABLE notes (
  id      text PRIMARY KEY DEFAULT hapta.new_id(),
  body    text NOT NULL DEFAULT '',
  created timestamptz NOT NULL DEFAULT now(),
  updated timestamptz NOT NULL DEFAULT now(),
  version bigint NOT NULL DEFAULT 1
);
"""


def test_only_tests_demo_reads_the_app_at_the_root():
    """The tests that read the root app's files are the ones test_replaced_demo runs against another app: any
    other would go untried, and fail for a user who replaced the demo."""
    readers = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "tests").rglob("*.py")
                     if READS_ROOT_APP.search(path.read_text()))
    assert readers and all(reader.startswith("tests/demo/") for reader in readers), readers


def test_the_suite_passes_for_an_app_that_replaced_the_demo(tmp_path):
    copy = tmp_path / "repository"
    copy.mkdir()
    for name in ("hapta", "bin", "pyproject.toml", ".venv", "README.md", "docs", "LICENSE"):   # the framework
        if (ROOT / name).exists():
            (copy / name).symlink_to(ROOT / name)
    shutil.copytree(ROOT / "tests", copy / "tests", ignore=shutil.ignore_patterns("__pycache__", "node_modules"))
    (copy / "config.py").write_text(textwrap.dedent(NOTES_APP).lstrip())   # and the user's app in the demo's place
    (copy / "migrations").mkdir()
    (copy / "migrations" / "0001_notes.sql").write_text(NOTES_MIGRATION)
    assert DEMO_MARKER not in (copy / "config.py").read_text()
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST")}
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", "tests/demo",
                           "--deselect", "tests/demo/test_replaced_demo.py::"
                                         "test_the_suite_passes_for_an_app_that_replaced_the_demo"],
                          cwd=copy, env=env, capture_output=True, text=True, timeout=540)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    summary = output.strip().splitlines()[-1]
    # the framework's tests ran and passed on the notes app; the demo's own skipped, each saying why
    assert re.search(r"\b2 passed\b", summary) and re.search(r"\b2 skipped\b", summary), output
    skipped = [line for line in output.splitlines() if line.startswith("SKIPPED")]
    assert len(skipped) == 2 and all("is not the shipped demo" in line for line in skipped), skipped
    assert {re.search(r"tests/demo/(\w+)\.py", line).group(1) for line in skipped} == \
        {"test_demo_functions", "test_quick_start"}, skipped
