"""What an operator sees and starts from the dashboard (/_/, docs/dashboard.md), as use cases: the collections as
the gateway understands them, this process's connections, every channel's presence, rate-limit standings, the key
figures of /metrics, the request log and this process's recent warnings, and a backup in the background. Reads
only, but for the backup: everything the dashboard changes it changes through the ordinary ops (records.*,
auth.revoke, auth.impersonate, functions.retry), under the same checks and in the same log. Admins only: the ops
say so (ops/admin.py, @op(admin=True)).
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import re
import time
from typing import Any, Callable, Iterable, Mapping

from .. import metrics
from ..config import ACCOUNT_SCOPES, Limit
from ..limits import Limiter, address_key
from ..live import Live
from ..models import AUTH_COLLECTION, AUTH_HIDDEN, RULE_OPS, Model
from ..principal import Peer
from ..protocol.errors import BAD_REQUEST, CONFLICT, HaptaError
from ..settings import Settings
from ..store.backup import BackupError, backup
from .requests import RequestLog
from .warnings import Warnings

log = logging.getLogger("hapta.admin")

# A connection as the dashboard lists it: (its number in this process, the peer, since when, in unix seconds)
Connected = tuple[int, Peer, float]
# A backup's file name, in HAPTA_DATA_DIR/backups: a plain name, so that a socket picks no other place on the disk.
BACKUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")
MAX_LISTED = 1000   # connections, and members per channel, one answer lists


class Admin:
    def __init__(self, models: dict[str, Model], limits: Mapping[str, Limit], limiter: Limiter, live: Live,
                 connected: Callable[[], Iterable[Connected]], settings: Settings, version: str,
                 requests: RequestLog, warnings: Warnings):
        self.models = models
        self.limits = limits
        self.limiter = limiter
        self.live = live
        self.connected = connected
        self.settings = settings
        self.version = version   # hapta's, for a backup's manifest
        self.process = f"{os.uname().nodename}:{os.getpid()}"
        self.backing_up: asyncio.Task | None = None
        self.requests = requests   # the request log (every process's rows, in PostgreSQL)
        self.warned = warnings     # this process's recent warnings and errors
        self.last_backup: dict[str, Any] | None = None   # {target, state, started, ended, message} (admin.backups)

    def schema(self) -> dict[str, Any]:
        """Each collection with its rule per op (null: admins only; "": everyone signed in; else the expression)
        and its fields as the gateway reads them from the database and config.py."""
        return {"collections": [_described(model) for model in self.models.values()]}

    def connections(self) -> dict[str, Any]:
        """This process's connections (each worker process holds its own; hapta_connections in /metrics counts all
        of them), newest first, at most MAX_LISTED."""
        realtime, channels = self.live.realtime, self.live.channels
        listed = []
        for number, peer, since in sorted(self.connected(), key=lambda c: -c[2])[:MAX_LISTED]:
            principal = peer.principal
            listed.append({"id": number, "address": peer.address, "role": principal.role, "user": principal.user_id,
                           "name": principal.name, "session": principal.session_id, "subscriptions": realtime.count(peer),
                           "channels": sorted(channels.by_peer.get(peer, {})), "since": since})
        return {"process": self.process, "connections": listed}

    async def channels(self) -> dict[str, Any]:
        """Every channel with members, across processes and nodes (presence is kept in PostgreSQL), at most
        MAX_LISTED members each."""
        return {"channels": await self.live.channels.everyone(MAX_LISTED)}

    async def limits_of(self, user: str | None, address: str | None) -> dict[str, Any]:
        """The limits in force (App.limits over the defaults), and with `user` or `address` that client's standing
        in each: the requests that would pass now and the seconds until the full burst is back. Buckets counted
        per account or recipient (`...:identity`, `...:recipient`) have no standing here (their keys are hashed)."""
        if user is not None and address is not None:
            raise HaptaError(BAD_REQUEST, "give user or address, not both")
        who = f"user:{user}" if user is not None else f"addr:{address_key(address)}" if address is not None else None
        listed = []
        for name, limit in sorted(self.limits.items()):
            entry: dict[str, Any] = {"name": name, "rate": limit.rate, "per": limit.per,
                                     "burst": limit.burst if limit.burst is not None else limit.rate,
                                     "remaining": None, "reset": None}
            op_name, _, collection = name.partition(":")
            if who is not None and collection not in ACCOUNT_SCOPES:
                decision = await self.limiter.status(op_name, who, collection=collection or None)
                if decision is not None:
                    entry["remaining"], entry["reset"] = decision.remaining, decision.reset
            listed.append(entry)
        return {"limits": listed}

    async def metrics(self) -> dict[str, Any]:
        """The figures the dashboard draws, from the same registry /metrics serves (every worker's with
        --workers); counters are totals since start, for the dashboard to difference. feed_lag_ms: how long the
        oldest change not yet handed to subscribers has waited (0 when the feed is caught up)."""
        return {"at": time.time(), **metrics.summary(), "feed_lag_ms": await self.live.feed.lag_ms()}

    async def logs(self, filters: dict[str, str | None], outcome: str | None, since: float | None,
                   until: float | None, before: int | None, limit: int) -> dict[str, Any]:
        """The request log's rows that match, newest first (admin/requests.py)."""
        return {"enabled": self.requests.enabled,
                **await self.requests.rows(filters, outcome, since, until, before, limit)}

    async def logs_chart(self, filters: dict[str, str | None], outcome: str | None, since: float,
                         until: float | None, bucket: float) -> dict[str, Any]:
        return await self.requests.chart(filters, outcome, since, until, bucket)

    def warnings(self, limit: int) -> dict[str, Any]:
        """This process's recent warnings and errors (each worker process keeps its own), newest first."""
        return {"process": self.process, "warnings": self.warned.recent(limit)}

    def backup(self, target: str | None) -> dict[str, Any]:
        """Start what `hapta backup` does (store/backup/: pg_dump on one snapshot, the local files, a manifest) in
        the background, to `s3://bucket/key` or to a file of that name in HAPTA_DATA_DIR/backups (default
        hapta-backup-<UTC time>.tar). {started: true, target}; the outcome goes to the log. One at a time per
        process: CONFLICT while one is under way. A scheduled function runs it nightly with ctx.backup()."""
        if self.backing_up is not None and not self.backing_up.done():
            raise HaptaError(CONFLICT, "a backup is under way in this process")
        target = target or time.strftime("hapta-backup-%Y%m%dT%H%M%SZ.tar", time.gmtime())
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
        self.last_backup = last = {"target": target, "state": "running", "started": time.time(), "message": None}
        try:
            last["message"] = await backup(self.settings, target, self.version)
            last["state"] = "done"
            log.info("backup: %s", last["message"])
        except BackupError as exc:
            last["state"], last["message"] = "failed", str(exc)
            log.warning("backup to %s failed: %s", target, exc)
        except Exception as exc:   # a bug of ours: the operator needs the story; the gateway goes on
            last["state"], last["message"] = "failed", f"failed: {type(exc).__name__}"
            log.exception("backup to %s failed", target)
        last["ended"] = time.time()


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
            # for the dashboard's forms: whether an input may be left empty (null), what the database puts in when
            # nothing is sent (its SQL text, shown as a hint: "now()", "false"), a CHECK's IN list as a select
            "nullable": column.nullable, "default": column.default,
            "choices": list(model.info.choices[name]) if name in model.info.choices else None,
            "file": dataclasses.asdict(file) if file is not None else None,
            "search": collection.search.get(name)})
    return {"name": model.name, "rules": {rule_op: collection.rule(rule_op) for rule_op in RULE_OPS},
            "fields": fields}
