"""admin.*: what the dashboard (/_/, docs/dashboard.md) shows an operator and no one else: the collections as the
gateway understands them, this process's connections, every channel's presence, rate-limit standings and the key
figures of /metrics (hapta/admin/service.py does each). Admins only.

    admin.schema        {collections: [{name, rules, fields: [{name, kind, relation, hidden, guarded, readonly,
                        writable, required, nullable, default, choices, file, search}]}]}
    admin.connections   {process, connections: [{id, address, role, user, session, subscriptions, channels, since}]}
    admin.channels      {channels: [{name, members: [{member, user, role, joined}]}]}   (every process's)
    admin.limits        {limits: [{name, rate, per, burst, remaining, reset}]}   standing of {user} or {address}
    admin.metrics       {at, connections, subscriptions, requests, errors, events, p99_ms, cache_hits,
                        cache_loads, feed_lag_ms}
(admin.backup and the other ops of the Backups, Settings and SQL pages: ops/operations.py)
"""
from __future__ import annotations

from typing import Annotated, Any

import msgspec

from ..admin.service import Admin
from .base import Args, Call, op

Text = Annotated[str, msgspec.Meta(max_length=256)]


class LimitsArgs(Args):
    user: Text | None = None       # the standing of this user's buckets
    address: Text | None = None    # or of this client address's


class AdminOps:
    def __init__(self, admin: Admin):
        self.admin = admin

    @op("admin.schema", admin=True)
    async def schema(self, call: Call, args: None) -> dict[str, Any]:
        return self.admin.schema()

    @op("admin.connections", admin=True)
    async def connections(self, call: Call, args: None) -> dict[str, Any]:
        return self.admin.connections()

    @op("admin.channels", admin=True)
    async def channels(self, call: Call, args: None) -> dict[str, Any]:
        return await self.admin.channels()

    @op("admin.limits", LimitsArgs, admin=True)
    async def limits_of(self, call: Call, args: LimitsArgs) -> dict[str, Any]:
        return await self.admin.limits_of(args.user, args.address)

    @op("admin.metrics", admin=True)
    async def metrics(self, call: Call, args: None) -> dict[str, Any]:
        return await self.admin.metrics()
