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
    admin.logs          {enabled, items: [{id, at, op, collection, principal, role, address, code, duration_ms,
                        pos}], next}   the request log, filtered, newest first, keyset paged (before)
    admin.logs.chart    {bucket, since, until, buckets: [{at, ok, errors}]}   requests per bucket
    admin.warnings      {process, warnings: [{at, level, logger, message, exception?}]}   this process's

(admin.backup and the other ops of the Backups, Settings and SQL pages: ops/operations.py)
"""
from __future__ import annotations

import time
from typing import Annotated, Any, Literal

import msgspec

from ..admin.service import Admin
from .base import Args, Call, op

Text = Annotated[str, msgspec.Meta(max_length=256)]


class LimitsArgs(Args):
    user: Text | None = None       # the standing of this user's buckets
    address: Text | None = None    # or of this client address's


Seconds = Annotated[float, msgspec.Meta(ge=0)]


class LogFilter(Args):
    """Which request log rows: each given field must match exactly; `outcome` "ok" or "error"; `since` (inclusive)
    and `until` (exclusive) in unix seconds."""
    op: Text | None = None
    collection: Text | None = None
    principal: Text | None = None
    address: Text | None = None
    code: Text | None = None
    outcome: Literal["ok", "error"] | None = None
    since: Seconds | None = None
    until: Seconds | None = None

    def columns(self) -> dict[str, str | None]:
        return {"op": self.op, "collection": self.collection, "principal": self.principal, "address": self.address,
                "code": self.code}


class LogsArgs(LogFilter):
    before: Annotated[int, msgspec.Meta(ge=1)] | None = None   # the `next` of the page before: older rows
    limit: Annotated[int, msgspec.Meta(ge=1, le=500)] = 100


class ChartArgs(LogFilter):
    bucket: Annotated[float, msgspec.Meta(gt=0)] = 60.0   # seconds per bucket


class WarningsArgs(Args):
    limit: Annotated[int, msgspec.Meta(ge=1, le=200)] = 200


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

    @op("admin.logs", LogsArgs, admin=True)
    async def logs(self, call: Call, args: LogsArgs) -> dict[str, Any]:
        return await self.admin.logs(args.columns(), args.outcome, args.since, args.until, args.before, args.limit)

    @op("admin.logs.chart", ChartArgs, admin=True)
    async def logs_chart(self, call: Call, args: ChartArgs) -> dict[str, Any]:
        since = args.since if args.since is not None else time.time() - 3600   # default: the last hour
        return await self.admin.logs_chart(args.columns(), args.outcome, since, args.until, args.bucket)

    @op("admin.warnings", WarningsArgs, admin=True)
    async def warnings(self, call: Call, args: WarningsArgs) -> dict[str, Any]:
        return self.admin.warnings(args.limit)
