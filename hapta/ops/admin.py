"""admin.*: what the dashboard (/_/, docs/dashboard.md) shows an operator and no one else: the collections as the
gateway understands them, this process's connections, every channel's presence, rate-limit standings and the key
figures of /metrics. Reads only: everything the dashboard changes it changes through the ordinary ops (records.*,
auth.revoke, auth.impersonate, functions.retry), under the same checks and in the same log.

    admin.schema        {collections: [{name, rules, fields: [{name, kind, relation, hidden, guarded, readonly,
                        writable, required, file, search}]}]}
    admin.connections   {process, connections: [{id, address, role, user, session, subscriptions, channels, since}]}
    admin.channels      {channels: [{name, members: [{member, user, role, joined}]}]}   (every process's)
    admin.limits        {limits: [{name, rate, per, burst, remaining, reset}]}   standing of {user} or {address}
    admin.metrics       {at, connections, subscriptions, requests, errors, events, p99_ms, cache_hits,
                        cache_loads, feed_lag_ms}
    admin.backup        {started, target}: `hapta backup` in the background (a scheduled function's ctx.backup)
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import re
import time
from typing import Annotated, Any, Callable, Iterable, Mapping

import msgspec

from .. import metrics
from ..config import Limit
from ..limits import Limiter, address_key
from ..live import Live
from ..models import AUTH_COLLECTION, AUTH_HIDDEN, RULE_OPS, Model
from ..principal import Peer
from ..protocol.errors import BAD_REQUEST, CONFLICT, FORBIDDEN, HaptaError
from ..settings import Settings
from ..store.backup import BackupError, backup
from ..store.postgres import Database
from .base import Args, Call, op

log = logging.getLogger("hapta.admin")

Text = Annotated[str, msgspec.Meta(max_length=256)]
# A connection as the dashboard lists it: (its number in this process, the peer, since when, in unix seconds)
Connected = tuple[int, Peer, float]


class BackupArgs(Args):
    target: Annotated[str, msgspec.Meta(max_length=1024)] | None = None   # s3://bucket/key, or a file name


# A backup's file name, in HAPTA_DATA_DIR/backups: a plain name, so that a socket picks no other place on the disk.
BACKUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")


class LimitsArgs(Args):
    user: Text | None = None       # the standing of this user's buckets
    address: Text | None = None    # or of this client address's


def _admin(call: Call) -> None:
    if not call.principal.is_admin:
        raise HaptaError(FORBIDDEN, f"{call.op} is for admins only")


class AdminOps:
    def __init__(self, db: Database, models: dict[str, Model], limits: Mapping[str, Limit], limiter: Limiter,
                 live: Live, connected: Callable[[], Iterable[Connected]], settings: Settings, version: str):
        self.db = db
        self.models = models
        self.limits = limits
        self.limiter = limiter
        self.live = live
        self.connected = connected
        self.settings = settings
        self.version = version   # hapta's, for a backup's manifest
        self.process = f"{os.uname().nodename}:{os.getpid()}"
        self.backing_up: asyncio.Task | None = None

    @op("admin.schema")
    async def schema(self, call: Call, args: None) -> dict[str, Any]:
        """Each collection with its rule per op (null: admins only; "": everyone signed in; else the expression)
        and its fields as the gateway reads them from the database and config.py."""
        _admin(call)
        return {"collections": [_described(model) for model in self.models.values()]}

    @op("admin.connections")
    async def connections(self, call: Call, args: None) -> dict[str, Any]:
        """This process's connections (each worker process holds its own; hapta_connections in /metrics counts all
        of them), newest first, at most 1000."""
        _admin(call)
        realtime, channels = self.live.realtime, self.live.channels
        listed = []
        for number, peer, since in sorted(self.connected(), key=lambda c: -c[2])[:1000]:
            principal = peer.principal
            listed.append({"id": number, "address": peer.address, "role": principal.role, "user": principal.user_id,
                           "session": principal.session_id, "subscriptions": realtime.count(peer),
                           "channels": sorted(channels.by_peer.get(peer, {})), "since": since})
        return {"process": self.process, "connections": listed}

    @op("admin.channels")
    async def channels(self, call: Call, args: None) -> dict[str, Any]:
        """Every channel with members, across processes and nodes (presence is kept in PostgreSQL), at most 1000
        members each."""
        _admin(call)
        rows = await self.db.fetch("""
            SELECT channel, member, user_id, role, joined,
                   row_number() OVER (PARTITION BY channel ORDER BY joined) AS n
            FROM hapta.presence ORDER BY channel, joined""")
        found: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            members = found.setdefault(row["channel"], [])
            if row["n"] <= 1000:
                members.append({"member": row["member"], "user": row["user_id"], "role": row["role"],
                                "joined": row["joined"]})
        return {"channels": [{"name": name, "members": members} for name, members in found.items()]}

    @op("admin.limits", LimitsArgs)
    async def limits_of(self, call: Call, args: LimitsArgs) -> dict[str, Any]:
        """The limits in force (App.limits over the defaults), and with `user` or `address` that client's standing
        in each: the requests that would pass now and the seconds until the full burst is back. Buckets counted
        per account (`...:identity`) have no standing here (their keys are hashed emails)."""
        _admin(call)
        if args.user is not None and args.address is not None:
            raise HaptaError(BAD_REQUEST, "give user or address, not both")
        who = f"user:{args.user}" if args.user is not None else \
            f"addr:{address_key(args.address)}" if args.address is not None else None
        listed = []
        for name, limit in sorted(self.limits.items()):
            entry: dict[str, Any] = {"name": name, "rate": limit.rate, "per": limit.per,
                                     "burst": limit.burst if limit.burst is not None else limit.rate,
                                     "remaining": None, "reset": None}
            op_name, _, collection = name.partition(":")
            if who is not None and collection != "identity":
                decision = await self.limiter.status(op_name, who, collection=collection or None)
                if decision is not None:
                    entry["remaining"], entry["reset"] = decision.remaining, decision.reset
            listed.append(entry)
        return {"limits": listed}

    @op("admin.metrics")
    async def metrics(self, call: Call, args: None) -> dict[str, Any]:
        """The figures the dashboard draws, from the same registry /metrics serves (every worker's with
        --workers); counters are totals since start, for the dashboard to difference. feed_lag_ms: how long the
        oldest change not yet handed to subscribers has waited (0 when the feed is caught up)."""
        _admin(call)
        figures = metrics.summary()
        lag = await self.db.fetchval(
            "SELECT extract(epoch FROM now() - min(at)) * 1000 FROM hapta.change_log WHERE pos > $1",
            self.live.feed.last)
        return {"at": time.time(), **figures, "feed_lag_ms": float(lag) if lag is not None else 0.0}


    @op("admin.backup", BackupArgs)
    async def backup(self, call: Call, args: BackupArgs) -> dict[str, Any]:
        """Start what `hapta backup` does (store/backup/: pg_dump on one snapshot, the local files, a manifest) in
        the background, to `s3://bucket/key` or to a file of that name in HAPTA_DATA_DIR/backups (default
        hapta-backup-<UTC time>.tar). {started: true, target}; the outcome goes to the log. One at a time per
        process: CONFLICT while one is under way. A scheduled function runs it nightly with ctx.backup()."""
        _admin(call)
        if self.backing_up is not None and not self.backing_up.done():
            raise HaptaError(CONFLICT, "a backup is under way in this process")
        target = args.target or time.strftime("hapta-backup-%Y%m%dT%H%M%SZ.tar", time.gmtime())
        if not target.startswith("s3://"):
            if not BACKUP_NAME.fullmatch(target):
                raise HaptaError(BAD_REQUEST, "target is s3://bucket/key or a plain file name (A-Z a-z 0-9 . _ -), "
                                 "written in HAPTA_DATA_DIR/backups")
            folder = self.settings.data_dir / "backups"
            folder.mkdir(parents=True, exist_ok=True)
            target = str(folder / target)
        self.backing_up = asyncio.ensure_future(self._back_up(target))
        return {"started": True, "target": target}

    async def _back_up(self, target: str) -> None:
        try:
            log.info("backup: %s", await backup(self.settings, target, self.version))
        except BackupError as exc:
            log.warning("backup to %s failed: %s", target, exc)
        except Exception:   # a bug of ours: the operator needs the story; the gateway goes on
            log.exception("backup to %s failed", target)


def _described(model: Model) -> dict[str, Any]:
    collection = model.collection
    hidden = set(collection.hidden) | (set(AUTH_HIDDEN) if model.name == AUTH_COLLECTION else set())
    fields = []
    for name, column in model.info.columns.items():
        file = collection.files.get(name)
        fields.append({
            "name": name, "kind": column.kind, "relation": model.info.relations.get(name),
            "hidden": name in hidden, "guarded": collection.guarded.get(name),
            "readonly": name not in model.writable and name not in hidden, "writable": name in model.writable,
            "required": not column.nullable and not column.has_default,
            "file": dataclasses.asdict(file) if file is not None else None,
            "search": collection.search.get(name)})
    return {"name": model.name, "rules": {rule_op: collection.rule(rule_op) for rule_op in RULE_OPS},
            "fields": fields}
