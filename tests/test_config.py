"""App's bounds in sections (hapta/config.py), and the flat names of earlier releases that still work. Pure."""
from __future__ import annotations

import dataclasses
import logging

import pytest

from hapta.config import (FLAT_NAMES, SECTIONS, App, ConfigError, ConnectionBounds, HookBounds, check_app)


def test_every_flat_name_lands_in_its_section_with_a_line_naming_the_new_place(caplog):
    for name, (section, field) in FLAT_NAMES.items():
        assert field in {f.name for f in dataclasses.fields(SECTIONS[section])}, name
    with caplog.at_level(logging.WARNING, logger="hapta.config"):
        app = App([], rule_workers=3, max_connections=7, hooks=HookBounds(timeout=2.0))
    assert app.hooks == HookBounds(workers=3, timeout=2.0) and app.connections.total == 7
    assert "App(rule_workers=...) is now App(hooks=HookBounds(workers=...))" in caplog.text
    assert app.rule_workers == 3 and app.max_connections == 7   # read back through their old names too


def test_replace_takes_sections_and_flat_names_alike():
    app = App([])
    assert dataclasses.replace(app, connections=ConnectionBounds(total=5)).connections.total == 5
    moved = dataclasses.replace(app, max_message=1024, hooks=HookBounds(workers=1))
    assert moved.connections.max_message == 1024 and moved.hooks.workers == 1 and isinstance(moved, App)


def test_a_section_is_held_to_its_types():
    with pytest.raises(ConfigError) as refused:
        check_app(App([], connections=ConnectionBounds(total="10")))
    assert str(refused.value) == "App.connections.total: expected an integer, got the string '10'"
    with pytest.raises(AttributeError):
        App([]).no_such_field
