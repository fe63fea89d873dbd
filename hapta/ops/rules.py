"""rules.status: the rule workers as an operator sees them (admins only)."""
from __future__ import annotations

from typing import Any

from ..hooks.service import Hooks
from .base import Call, op


class RuleOps:
    def __init__(self, hooks: Hooks):
        self.hooks = hooks

    @op("rules.status", admin=True)
    async def status(self, call: Call, args: None) -> dict[str, Any]:
        """{size, live, busy, queued, calls, timeouts, deaths, rejected, generation, hooks}: `live` below `size`
        means workers are being replaced (see docs/rules.md)."""
        return self.hooks.status()
