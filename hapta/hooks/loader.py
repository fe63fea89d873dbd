"""Importing the app's rules/ folder: one module per collection, each defining some of HOOK_NAMES.

This runs in the rule workers only: the gateway never executes an app's hook code, not even its imports.
"""
from __future__ import annotations

import importlib.util
import inspect
import traceback
from pathlib import Path
from typing import Any, Callable

HOOK_NAMES = ("before_create", "before_update", "before_delete", "after_create", "after_update", "after_delete",
              "before_upload", "before_send")
# What each hook is called with after ctx (hooks/worker.py): a hook that cannot take them is a mistake worth
# naming at start, not at its first call.
HOOK_ARGS = {"before_create": ("data",), "before_update": ("record", "changes"), "before_delete": ("record",),
             "after_create": ("record",), "after_update": ("record",), "after_delete": ("record",),
             "before_upload": ("info",), "before_send": ("record",)}

HookTable = dict[str, dict[str, Callable[..., Any]]]


class RulesError(Exception):
    """The rules/ folder cannot be used as it is; the message names the file and the reason, `traceback` has
    the whole story for the operator (empty when the message says it all)."""

    def __init__(self, message: str, traceback: str = ""):
        super().__init__(message)
        self.traceback = traceback


def load(folder: Path, collections: set[str]) -> HookTable:
    """Import every rules/<collection>.py (files starting with _ are helpers, not hook modules)."""
    found: HookTable = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.py")):
        if path.stem.startswith("_"):
            continue
        if path.stem not in collections:
            raise RulesError(f"rules/{path.name} names no collection of config.py")
        spec = importlib.util.spec_from_file_location(f"hapta_app_rules.{path.stem}", path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        hooks = {name: getattr(module, name) for name in HOOK_NAMES if callable(getattr(module, name, None))}
        check_hooks(path.name, module, hooks)
        if hooks:
            found[path.stem] = hooks
    return found


def check_hooks(file: str, module: Any, hooks: dict[str, Callable[..., Any]]) -> None:
    """RulesError for a hook-like name that is no hook (`before_insert`: a typo that would never run) and for a hook
    that cannot be called as the gateway calls it (`before_update(ctx, record)` lacks `changes`)."""
    for name, value in vars(module).items():
        if callable(value) and name.startswith(("before_", "after_")) and name not in HOOK_NAMES \
                and getattr(value, "__module__", None) == module.__name__:
            raise RulesError(f"rules/{file}: {name} is not a hook (hooks are {', '.join(HOOK_NAMES)})")
    for name, hook in hooks.items():
        expected = ("ctx", *HOOK_ARGS[name])
        try:
            inspect.signature(hook).bind(*expected)
        except TypeError:
            raise RulesError(f"rules/{file}: {name} must take ({', '.join(expected)})") from None
        except ValueError:   # no signature to read (a builtin): it is called and fails then, if it must
            pass


FunctionTable = dict[str, tuple[Callable[..., Any], Any]]   # name -> (the function, its Declared)


def load_functions(folder: Path) -> FunctionTable:
    """Import every functions/*.py (files starting with _ are helpers) and collect what @call marked."""
    from .api import MARK
    found: FunctionTable = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.py")):
        if path.stem.startswith("_"):
            continue
        spec = importlib.util.spec_from_file_location(f"hapta_app_functions.{path.stem}", path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for value in vars(module).values():
            declared = getattr(value, MARK, None)
            if declared is None or not callable(value):
                continue
            if declared.name in found and found[declared.name][0] is not value:
                raise RulesError(f"functions/{path.name}: a second function named {declared.name!r}")
            found[declared.name] = (value, declared)
    return found


def describe(exc: BaseException, folder: Path) -> str:
    """One line for the operator: where in rules/ it went wrong, and what."""
    if isinstance(exc, RulesError):
        return str(exc)
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{folder.name}/{Path(exc.filename).name}:{exc.lineno}: SyntaxError: {exc.msg}"
    inside = [frame for frame in traceback.extract_tb(exc.__traceback__)
              if Path(frame.filename).resolve().is_relative_to(folder.resolve())]
    where = f"{folder.name}/{Path(inside[-1].filename).name}:{inside[-1].lineno}: " if inside else ""
    return f"{where}{type(exc).__name__}: {exc}"
