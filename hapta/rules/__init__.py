"""The hook API an app's rules/ modules use.

A module rules/<collection>.py may define any of:
    before_create(ctx, data) -> data | None          before_update(ctx, record, changes) -> changes | None
    before_delete(ctx, record)                       after_create / after_update / after_delete(ctx, record)
Plain or async functions. A `before_*` hook refuses with `raise Deny("message")` (the client gets RULE_DENIED
with that message) and may return changed data. `after_*` hooks see the stored record and never delay the reply.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable


class Deny(Exception):
    """Raised by a hook to refuse the write; the message is passed on to the client."""

    def __init__(self, message: str = "refused by a rule"):
        super().__init__(message)
        self.message = message


@dataclass
class Context:
    """What a hook may know about the request: who, what, where from. Never secrets or tokens."""
    user_id: str | None
    role: str
    op: str
    collection: str
    address: str | None
    _sql: Callable[..., Awaitable[Any]] | None = None

    async def sql(self, query: str, *params: Any) -> Any:
        """Run one parameterised statement as the gateway (for after_* side effects such as counters)."""
        if self._sql is None:
            raise RuntimeError("no database in this context")
        return await self._sql(query, *params)


__all__ = ["Deny", "Context"]
