"""Importing an app's folder in a worker (rules/, functions/), and what the operator is told when it does not load.

This runs in the workers only: the gateway never executes an app's code, not even its imports. A kind's child side
(hapta.hooks.child, hapta.functions.child) says what its modules must define; the parts every kind shares are here.
"""
from __future__ import annotations

import importlib.util
import traceback
from pathlib import Path
from types import ModuleType


class LoadError(Exception):
    """A folder (rules/, functions/) cannot be used as it is; the message names the file and the reason,
    `traceback` has the whole story for the operator (empty when the message says it all). The pool raises it when
    its workers do not start."""

    def __init__(self, message: str, traceback: str = ""):
        super().__init__(message)
        self.traceback = traceback


def modules(folder: Path) -> list[Path]:
    """The app's modules in `folder`, in name order: its *.py files but helpers (a name starting with _)."""
    if not folder.is_dir():
        return []
    return [path for path in sorted(folder.glob("*.py")) if not path.stem.startswith("_")]


def import_file(path: Path, package: str) -> ModuleType:
    """Import one of the app's files as `<package>.<its stem>` (hapta_app_rules.posts, ...)."""
    spec = importlib.util.spec_from_file_location(f"{package}.{path.stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def describe(exc: BaseException, folder: Path) -> str:
    """One line for the operator: where in the folder it went wrong, and what."""
    if isinstance(exc, LoadError):
        return str(exc)
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{folder.name}/{Path(exc.filename).name}:{exc.lineno}: SyntaxError: {exc.msg}"
    inside = [frame for frame in traceback.extract_tb(exc.__traceback__)
              if Path(frame.filename).resolve().is_relative_to(folder.resolve())]
    where = f"{folder.name}/{Path(inside[-1].filename).name}:{inside[-1].lineno}: " if inside else ""
    return f"{where}{type(exc).__name__}: {exc}"
