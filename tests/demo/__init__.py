"""Tests about the app at the repository's root: the shipped demo, until a user replaces its config.py, rules/,
functions/ and migrations/ with their own app (as the README says).

Two kinds live here. test_demo_app.py holds for any app there (it starts, on embedded defaults, and every
collection it declares answers): it runs whatever the app. The others are the demo's own (its functions, the
README's quick start on its posts): they run while the root app is the demo and skip, saying why, once it is not.
The demo is recognised by the marker line of its config.py (DEMO_MARKER) and the files only it has; every test in
tests/ that reads the root app's files must be one of these (test_replaced_demo.py checks both).
"""
from __future__ import annotations

import pytest

from tests.services import ROOT

DEMO_MARKER = "# hapta-demo: the shipped demo app."
DEMO_FILES = ("rules/posts.py", "rules/likes.py", "functions/messages.py", "migrations/0001_social.sql")


def not_the_demo() -> str | None:
    """None while the app at the repository's root is the shipped demo; else why the demo's own tests skip."""
    config = ROOT / "config.py"
    if not config.is_file() or DEMO_MARKER not in config.read_text():
        return (f"the app at the repository's root is not the shipped demo (its config.py has no line "
                f"{DEMO_MARKER!r}): the demo's own tests do not apply to it")
    missing = [name for name in DEMO_FILES if not (ROOT / name).is_file()]
    if missing:
        return f"the app at the repository's root is not all the shipped demo ({missing[0]} is gone)"
    return None


# for the demo's own tests: they skip, saying why, when the root app is not the demo
demo_only = pytest.mark.skipif(not_the_demo() is not None, reason=not_the_demo() or "")
