"""hooks.status: the hook workers as an operator sees them (admins only). `rules.status` is its old name, kept
because dashboards and scripts call it; both answer the same."""
from __future__ import annotations

from typing import Any

from ..hooks.service import Hooks
from .base import Call, op


class HookOps:
    def __init__(self, hooks: Hooks):
        self.hooks = hooks

    @op("hooks.status", admin=True)
    async def status(self, call: Call, args: None) -> dict[str, Any]:
        """{size, live, busy, queued, calls, timeouts, deaths, rejected, generation, hooks}: `live` below `size`
        means workers are being replaced (see docs/rules.md)."""
        return self.hooks.status()

    @op("rules.status", admin=True)
    async def rules_status(self, call: Call, args: None) -> dict[str, Any]:
        """hooks.status, by the name it had first."""
        return self.hooks.status()
