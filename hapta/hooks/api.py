"""The API an app's rules/ hooks use in the workers (docs/rules.md); apps import it as `hapta.rules`.

A module rules/<collection>.py may define any of:
    before_create(ctx, data) -> data | None          before_update(ctx, record, changes) -> changes | None
    before_delete(ctx, record)                       after_create / after_update / after_delete(ctx, record)
    before_upload(ctx, info)                         before_send(ctx, record) -> record | None
Plain or async functions. A `before_*` hook refuses with `raise Deny("message")` (the client gets RULE_DENIED
with that message) and may return changed data. `after_*` hooks see the stored record and never delay the reply.

Hooks run in worker processes (hapta.workers, the kind hapta.hooks.service.HOOK_WORKERS), never in the gateway: a
hook that hangs, crashes or leaks costs one request. A worker holds no secrets and no database credentials;
`await ctx.sql(...)` is carried back to the gateway, which runs the statement and returns the rows.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from ..workers.api import Deny, SqlError


@dataclass
class Context:
    """What a hook may know about the request: who, what, where from. Never secrets or tokens."""
    user_id: str | None
    role: str                  # "anon", "user" or "admin"
    op: str                    # e.g. "records.create"
    collection: str
    address: str | None        # the client's IP address
    _sql: Callable[..., Awaitable[Any]] | None = None

    async def sql(self, query: str, *params: Any) -> list[dict[str, Any]]:
        """Run one parameterised statement ($1, $2, ...) as the gateway; return its rows as dicts ([] when it
        returns none). In before_update and before_delete it runs inside the write's transaction."""
        if self._sql is None:
            raise RuntimeError("no database in this context")
        return await self._sql(query, *params)


__all__ = ["Context", "Deny", "SqlError"]
