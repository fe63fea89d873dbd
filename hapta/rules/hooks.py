"""Finding and calling the app's hooks.

The modules in the app's rules/ folder are imported once at start; a collection without hooks costs nothing.
"""
from __future__ import annotations

import asyncio
import importlib.util
import inspect
import logging
from pathlib import Path
from typing import Any, Callable

from ..protocol.errors import RULE_DENIED, HaptaError
from . import Context, Deny

log = logging.getLogger("hapta.rules")

HOOK_NAMES = ("before_create", "before_update", "before_delete", "after_create", "after_update", "after_delete")


class Hooks:
    def __init__(self, by_collection: dict[str, dict[str, Callable[..., Any]]] | None = None):
        self._hooks = by_collection or {}
        self._background: set[asyncio.Task] = set()

    @classmethod
    def load(cls, folder: Path | None, collections: set[str]) -> "Hooks":
        found: dict[str, dict[str, Callable[..., Any]]] = {}
        if folder is None or not folder.is_dir():
            return cls(found)
        for path in sorted(folder.glob("*.py")):
            if path.stem.startswith("_"):
                continue
            if path.stem not in collections:
                raise ValueError(f"rules/{path.name} names no collection of config.py")
            spec = importlib.util.spec_from_file_location(f"hapta_app_rules.{path.stem}", path)
            assert spec and spec.loader
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            hooks = {name: getattr(module, name) for name in HOOK_NAMES if callable(getattr(module, name, None))}
            if hooks:
                found[path.stem] = hooks
        return cls(found)

    def has(self, collection: str, name: str) -> bool:
        return name in self._hooks.get(collection, ())

    async def before(self, collection: str, name: str, ctx: Context, *args: Any) -> Any:
        """Run a before_* hook; return what it returned (None: keep the input). Deny -> RULE_DENIED."""
        hook = self._hooks.get(collection, {}).get(name)
        if hook is None:
            return None
        try:
            result = hook(ctx, *args)
            if inspect.isawaitable(result):
                result = await result
        except Deny as deny:
            raise HaptaError(RULE_DENIED, str(deny.message)[:500]) from None
        return result

    def after(self, collection: str, name: str, ctx: Context, record: dict[str, Any]) -> None:
        """Start an after_* hook without waiting for it: the reply never waits on side effects."""
        hook = self._hooks.get(collection, {}).get(name)
        if hook is None:
            return

        async def run() -> None:
            try:
                result = hook(ctx, dict(record))
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("hook %s.%s failed", collection, name)

        task = asyncio.ensure_future(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
