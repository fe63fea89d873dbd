"""The hooks' side of a worker process: importing rules/ (one module per collection, each defining some of
HOOK_NAMES) and running one hook call. hapta.workers.child imports this module by name (HOOK_WORKERS.program) once
the worker has given up the gateway's powers; the gateway never runs it, nor any of the app's code.
"""
from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any, Callable

from ..workers.api import Deny
from ..workers.child import Runner
from ..workers.loading import LoadError, import_file, modules
from ..workers.messages import Invoke
from .api import Context

HOOK_NAMES = ("before_create", "before_update", "before_delete", "after_create", "after_update", "after_delete",
              "before_upload", "before_send")
# What each hook is called with after ctx: a hook that cannot take them is a mistake worth naming at start, not at
# its first call.
HOOK_ARGS = {"before_create": ("data",), "before_update": ("record", "changes"), "before_delete": ("record",),
             "after_create": ("record",), "after_update": ("record",), "after_delete": ("record",),
             "before_upload": ("info",), "before_send": ("record",)}

HookTable = dict[str, dict[str, Callable[..., Any]]]   # collection -> hook name -> the hook

log = logging.getLogger("hapta.hooks")


def program(folder: Path, collections: list[str]) -> "HookProgram":
    """What a hook worker runs (hapta.workers.child calls it by name): the hooks of rules/."""
    return HookProgram(load(folder, set(collections)))


def load(folder: Path, collections: set[str]) -> HookTable:
    """Import every rules/<collection>.py (files starting with _ are helpers, not hook modules)."""
    found: HookTable = {}
    for path in modules(folder):
        if path.stem not in collections:
            raise LoadError(f"rules/{path.name} names no collection of config.py")
        module = import_file(path, "hapta_app_rules")
        hooks = {name: getattr(module, name) for name in HOOK_NAMES if callable(getattr(module, name, None))}
        check_hooks(path.name, module, hooks)
        if hooks:
            found[path.stem] = hooks
    return found


def check_hooks(file: str, module: Any, hooks: dict[str, Callable[..., Any]]) -> None:
    """LoadError for a hook-like name that is no hook (`before_insert`: a typo that would never run) and for a hook
    that cannot be called as the gateway calls it (`before_update(ctx, record)` lacks `changes`)."""
    for name, value in vars(module).items():
        if callable(value) and name.startswith(("before_", "after_")) and name not in HOOK_NAMES \
                and getattr(value, "__module__", None) == module.__name__:
            raise LoadError(f"rules/{file}: {name} is not a hook (hooks are {', '.join(HOOK_NAMES)})")
    for name, hook in hooks.items():
        expected = ("ctx", *HOOK_ARGS[name])
        try:
            inspect.signature(hook).bind(*expected)
        except TypeError:
            raise LoadError(f"rules/{file}: {name} must take ({', '.join(expected)})") from None
        except ValueError:   # no signature to read (a builtin): it is called and fails then, if it must
            pass


class HookProgram:
    """The hooks a worker imported (hapta.workers.child.Program), and one call of them."""

    def __init__(self, hooks: HookTable):
        self.hooks = hooks

    def report(self) -> dict[str, list[str]]:
        """collection -> the hook names its module defines (what Hooks.has answers from)."""
        return {name: sorted(table) for name, table in self.hooks.items()}

    def context(self, invoke: Invoke, link: Runner) -> Context:
        who, call = invoke.who, invoke.call
        return Context(who.user_id, who.role, who.op, who.collection, who.address,
                       _sql=lambda query, *params: link.sql(call, query, params))

    def logs(self, ctx: Context) -> list[str]:
        return []

    def run(self, ctx: Context, invoke: Invoke, link: Runner) -> Any:
        hook = self.hooks[invoke.collection][invoke.name]
        if invoke.name == "before_send":   # one call for a whole page: each record, or None (left out)
            return [self.send_one(hook, ctx, record, link) for record in invoke.args[0]]
        return hook(ctx, *invoke.args)

    def send_one(self, hook: Any, ctx: Context, record: dict[str, Any], link: Runner) -> dict[str, Any] | None:
        """before_send for one record: what it returned (None: the record as it was), None when it raised Deny or
        failed (a record the hook could not check does not leave; the failure is logged). Only the record's own
        fields come back: a hook can mask and remove, not add."""
        try:
            result = link.settle(hook(ctx, dict(record)))
            if result is not None and not isinstance(result, dict):
                raise TypeError(f"before_send returned {type(result).__name__}; return the record (a dict), or None")
        except Deny:
            return None
        except Exception as exc:
            log.error("hook %s.before_send failed: the record is left out\n%s", ctx.collection,
                      link.traceback(exc).rstrip())
            return None
        if result is None:
            return record
        return {key: value for key, value in result.items() if key in record}
