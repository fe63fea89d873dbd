"""The change feed: what PostgreSQL tells us about every write to an exposed table, whoever made it.

A trigger (hapta/store/sql/0003_live.sql) NOTIFYs `hapta_changes` with a small payload per row; each process's
Listener hands it to `ChangeFeed.notified`, which at once (synchronously, before any request can run in between)
moves the read cache's generation for that table, then queues it. A single task drains the queue in batches, so
that a burst of changes costs one row fetch per table, and hands each batch on (realtime delivery). When the
listening connection was lost, or the queue overflowed, events may have been missed: `reset` flushes the cache and
tells subscribers.
"""
from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime
from typing import Any, Awaitable, Callable

import asyncpg
import msgspec

from .. import metrics
from ..models import RULE_OPS, Everyone, Model
from ..query import fields_used
from ..query import schema as kinds
from ..store.postgres import failure

log = logging.getLogger("hapta.feed")

CHANNEL = "hapta_changes"
# Changes waiting for delivery. Past it (delivery far behind a flood of writes) they are dropped and subscribers
# get `realtime.reset`: memory stays bounded, and nobody is told a stale story.
MAX_PENDING = 50_000


class Change(msgspec.Struct, frozen=True):
    t: str                                  # table (collection) name
    a: str                                  # "create" | "update" | "delete"
    id: Any                                 # the row's id as JSON gave it
    v: int                                  # the row's version after the change (before it, for a delete)
    x: str = ""                             # the writing transaction's id: the same in every process
    o: dict[str, Any] | None = None         # old values: changed rule columns (update), the old row (delete)


_decode = msgspec.json.Decoder(Change).decode


def rule_columns(model: Model) -> list[str]:
    """Columns of the model's own row that its rules and guards read: their old values say who could see it."""
    columns: set[str] = set()
    nodes = [model.rules[op] for op in RULE_OPS] + [f.guard for f in model.table.fields.values()]
    for node in nodes:
        if node is not None and not isinstance(node, Everyone):
            columns.update(path[0] for path in fields_used(node))
    return sorted(columns)


def _array_literal(names: list[str]) -> str:
    return "{" + ",".join('"' + n.replace("\\", "\\\\").replace('"', '\\"') + '"' for n in names) + "}"


async def install_triggers(conn: asyncpg.Connection, models: dict[str, Model]) -> None:
    """(Re)create each exposed table's change trigger with the columns its rules read today. Names come from the
    catalog; the column lists travel as trigger arguments (string literals, quoted by quote_literal)."""
    async with conn.transaction():
        # Many workers start at once: one at a time, or CREATE OR REPLACE TRIGGER collides with itself.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('hapta.live.triggers'))")
        for name, model in models.items():
            if not name.isidentifier():
                continue
            hidden = [c for c in model.info.columns if c not in model.table.fields]
            arguments = await conn.fetchval("SELECT quote_literal($1) || ', ' || quote_literal($2)",
                                            _array_literal(rule_columns(model)), _array_literal(hidden))
            await conn.execute(f'CREATE OR REPLACE TRIGGER hapta_changes AFTER INSERT OR UPDATE OR DELETE ON "{name}" '
                               f'FOR EACH ROW EXECUTE FUNCTION hapta.notify_change({arguments})')


def typed(model: Model, values: dict[str, Any]) -> dict[str, Any]:
    """Values that came through JSON (the trigger's payload) in the types asyncpg gives for the same columns."""
    out = {}
    for name, value in values.items():
        column = model.info.columns.get(name)
        if column is None or name not in model.table.fields:
            continue   # hidden or unknown: never used, never sent
        if value is not None:
            try:
                if column.kind == kinds.TIMESTAMP and isinstance(value, str):
                    value = datetime.fromisoformat(value)
                elif column.kind == kinds.UUID and isinstance(value, str):
                    value = uuid.UUID(value)
                elif column.kind == kinds.FLOAT and isinstance(value, (int, str)):
                    value = float(value)
            except ValueError:
                pass
        out[name] = value
    return out


def id_param(model: Model, value: Any) -> Any:
    """An id as asyncpg wants it for the id column's type."""
    kind = model.info.columns["id"].kind
    if kind == kinds.INT:
        return int(value)
    if kind == kinds.UUID:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    return str(value)


Consumer = Callable[[list[Change]], Awaitable[None]]


class ChangeFeed:
    def __init__(self, models: dict[str, Model]):
        self.models = models
        self.pending: list[Change] = []
        self.wake = asyncio.Event()
        self.on_change: list[Callable[[Change], None]] = []     # synchronous: cache invalidation
        self.on_reset: list[Callable[[], Any]] = []
        self.consumer: Consumer | None = None
        self.task: asyncio.Task | None = None
        self.overflowed = False

    def start(self) -> None:
        self.task = asyncio.ensure_future(self._drain())

    async def close(self) -> None:
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    def notified(self, payload: str) -> None:
        """The Listener's callback: runs in the event loop for each NOTIFY, in commit order."""
        try:
            change = _decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("ignored a malformed change notification")
            return
        if change.t not in self.models:
            return
        metrics.FEED_CHANGES.inc()
        for callback in self.on_change:
            callback(change)
        if len(self.pending) >= MAX_PENDING:
            self.pending.clear()
            self.overflowed = True
        self.pending.append(change)
        self.wake.set()

    async def reset(self) -> None:
        """Notifications may have been missed (the listener reconnected)."""
        metrics.FEED_RESETS.inc()
        for callback in self.on_reset:
            result = callback()
            if asyncio.iscoroutine(result):
                await result

    async def _drain(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            batch, self.pending = self.pending, []
            if self.overflowed:
                self.overflowed = False
                log.warning("the change feed fell %d changes behind; subscribers are told to refetch", MAX_PENDING)
                await self.reset()
            if not batch or self.consumer is None:
                continue
            try:
                await self.consumer(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if failure(exc) is not None:
                    # The database went away while we fetched rows: these events are lost, never the feed.
                    log.warning("delivering %d changes failed: %s", len(batch), type(exc).__name__)
                else:
                    log.exception("delivering %d changes failed", len(batch))
                await self.reset()
