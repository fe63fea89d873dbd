"""The change feed: every write to an exposed table, whoever made it, numbered in commit order and kept a while.

    writer's statement     trigger -> hapta.change_inbox rows + NOTIFY hapta_changes {t, x}  (the doorbell)
    any gateway process    hears the doorbell -> ReadCache.changed at once; hapta.position_changes()
                           numbers what has committed -> hapta.change_log, NOTIFY hapta_positions <head>
    every gateway process  hears the head -> reads the log after the last position it handed on -> Realtime

Positions are numbered after commit, one numbering at a time (hapta/store/sql/0006_change_log.sql says why that
makes them commit-ordered, and docs/realtime.md why a resume from one is gap-free). Each process keeps `last`, the
newest position it has handed on, and reads the log from there: a doorbell it missed (its listening connection was
down, PostgreSQL restarted) costs nothing but the read after it reconnects. Only when the log no longer reaches
back to `last` (pruned past it: the process fell behind by more than App.realtime.log_retention) were changes
missed: then the cache is flushed and subscribers are told (`realtime.reset`).

Channel messages that wait for a commit (records.batch's `publish`, a function's ctx.transaction) ride the same
feed: the transaction writes them into the inbox after its own changes (hapta.publish_messages, 0016), so they get
the positions after those changes, and each process tells its own channel members as it reads them, after handing
on the changes before them. A process with no subscriptions reads no log for ordinary writes, as before; only when a
message doorbell rang while it holds channel members does it read on until it has read that transaction's messages.

The log is pruned in the background to App.realtime.log_retention seconds and App.realtime.log_max changes.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Awaitable, Callable

import asyncpg
import msgspec

from .. import metrics
from ..models import RULE_OPS, Everyone, Model
from ..query import fields_used
from ..query.kinds import KINDS
from ..store.migrations import create_triggers
from ..store.postgres import Database
from ..store.failures import failure

log = logging.getLogger("hapta.feed")

CHANNEL = "hapta_changes"          # writers' doorbell: {t, x}
MESSAGES = "hapta.channels"        # the `t` of a channel message's row (no collection is named so)
POSITIONS = "hapta_positions"      # numbering's doorbell: the newest position
NUMBER_BATCH = 5000                # changes one hapta.position_changes() call numbers
READ_BATCH = 1000                  # changes read from the log (and handed to delivery) at once
RETRY = 0.5                        # seconds before trying again after the database failed us
LEADER_KEY = 0x68617074614e        # the advisory lock whose holder numbers on doorbells ("haptaN")
# Seconds between two numberings that doorbells alone asked for: at one writer, numbering each change on its own
# cost PostgreSQL as much as the write itself (docs/realtime.md, "What the feed costs a write"); this delays an
# event by at most this.
NUMBER_EVERY = 0.005
LEAD_EVERY = 1.0                   # seconds between a follower's tries to lead, and its checks on the leader
TOLD_KEPT = 1024                   # transactions whose messages were read lately (a doorbell heard late finds them)


class Change(msgspec.Struct, frozen=True):
    """One row change. The names on the wire (the trigger's JSON, the log's rows) are one letter each: they are
    written for every change, and read back in bulk."""
    table: str = msgspec.field(name="t")                      # the table (collection) name
    action: str = msgspec.field(name="a")                     # "create" | "update" | "delete"
    id: Any = None                                            # the row's id as JSON gave it
    version: int = msgspec.field(default=0, name="v")         # the row's version after the change (before, for a delete)
    xact: str = msgspec.field(default="", name="x")           # the writing transaction's id: the same in every process
    old: dict[str, Any] | None = msgspec.field(default=None, name="o")   # old values: changed rule columns (update),
                                                                         # the old row (delete)
    position: int = msgspec.field(default=0, name="p")        # its position
    place: int = msgspec.field(default=0, name="s")           # its place in the inbox (a snapshot knows which it holds)
    notice: str | None = msgspec.field(default=None, name="n")   # a channel message (table MESSAGES): its notice
    closing: bool = msgspec.field(default=False, name="e")       # the last message of its transaction


class Doorbell(msgspec.Struct, frozen=True):
    table: str = msgspec.field(name="t")
    xact: str = msgspec.field(default="", name="x")


_decode_change = msgspec.json.Decoder(Change).decode
_decode_doorbell = msgspec.json.Decoder(Doorbell).decode

# A change as the log holds it, with its position and inbox place folded in: decoded straight into a Change.
LOG_ROW = "(change || jsonb_build_object('p', pos, 's', seq))::text"


def rule_columns(model: Model, models: dict[str, Model] | None = None) -> list[str]:
    """Columns of the model's own row that its rules and guards read, and (given every model) those that other
    collections' rules and guards read through a relation into it (`post.public` of comments: posts.public): their
    old values say who could see the row, and who could see the records that point at it (the derived outcomes of
    live/realtime.py; docs/realtime.md, "Visibility through relations")."""
    columns: set[str] = set()
    for node in _rule_nodes(model):
        columns.update(path[0] for path in fields_used(node))
    for other in (models or {}).values():
        for node in _rule_nodes(other):
            columns.update(path[1] for path in fields_used(node) if len(path) == 2
                           and getattr(other.table.fields.get(path[0]), "relation", None) == model.name)
    return sorted(columns)


def _rule_nodes(model: Model) -> list:
    nodes = [model.rules[op] for op in RULE_OPS] + [f.guard for f in model.table.fields.values()]
    return [node for node in nodes if node is not None and not isinstance(node, Everyone)]


def _array_literal(names: list[str]) -> str:
    return "{" + ",".join('"' + n.replace("\\", "\\\\").replace('"', '\\"') + '"' for n in names) + "}"


async def install_triggers(conn: asyncpg.Connection, models: dict[str, Model]) -> None:
    """(Re)create each exposed table's change trigger with the columns its rules, and other collections' rules
    through relations into it, read today. The column lists travel as trigger arguments (string literals, quoted
    by quote_literal)."""
    arguments = {}
    for name, model in models.items():
        hidden = [c for c in model.info.columns if c not in model.table.fields]
        arguments[name] = await conn.fetchval("SELECT quote_literal($1) || ', ' || quote_literal($2)",
                                              _array_literal(rule_columns(model, models)), _array_literal(hidden))
    await create_triggers(conn, "notify_changes", arguments, CHANGE_TRIGGERS, replaces=("hapta_changes",))


# One trigger per event (transition tables allow no more), once per statement: store/sql/0015_statement_changes.sql.
CHANGE_TRIGGERS = {
    "hapta_changes_insert": ("AFTER INSERT", "REFERENCING NEW TABLE AS hapta_new FOR EACH STATEMENT"),
    "hapta_changes_update": ("AFTER UPDATE", "REFERENCING OLD TABLE AS hapta_old NEW TABLE AS hapta_new "
                                             "FOR EACH STATEMENT"),
    "hapta_changes_delete": ("AFTER DELETE", "REFERENCING OLD TABLE AS hapta_old FOR EACH STATEMENT"),
}


def typed(model: Model, values: dict[str, Any]) -> dict[str, Any]:
    """Values that came through JSON (the trigger's payload) in the types asyncpg gives for the same columns."""
    out = {}
    for name, value in values.items():
        column = model.info.columns.get(name)
        if column is None or name not in model.table.fields:
            continue   # hidden or unknown: never used, never sent
        if value is not None:
            try:
                value = KINDS[column.kind].from_json(value)
            except ValueError:
                pass   # as it came: a rule reading it fails closed
        out[name] = value
    return out


def id_param(model: Model, value: Any) -> Any:
    """An id as asyncpg wants it for the id column's type (ValueError when it cannot be one)."""
    return KINDS[model.info.columns["id"].kind].from_json(value)


def decode_rows(rows: list[asyncpg.Record]) -> list[Change]:
    return [_decode_change(row[0]) for row in rows]


class Horizon(msgspec.Struct, frozen=True):
    """What the log holds right now: positions after `pruned`, up to `head`."""
    pruned: int
    head: int


HORIZON_HEAD = "SELECT greatest((SELECT max(pos) FROM hapta.change_log), (SELECT pruned FROM hapta.change_horizon))"
HORIZON = f"SELECT (SELECT pruned FROM hapta.change_horizon), ({HORIZON_HEAD})"


async def horizon(conn: asyncpg.Connection | Database) -> Horizon:
    pruned, head = await conn.fetchrow(HORIZON)
    return Horizon(pruned, head)


async def changes_after(conn: asyncpg.Connection | Database, table: str, since: int, head: int, limit: int, *,
                        record_id: str | None = None) -> list[Change]:
    """The changes of `table` (of one record of it) at positions in (since, head], oldest first, at most `limit`."""
    one = "" if record_id is None else "AND change->>'id' = $5 "
    return decode_rows(await conn.fetch(
        f"SELECT {LOG_ROW} FROM hapta.change_log WHERE t = $1 AND pos > $2 AND pos <= $3 {one}ORDER BY pos LIMIT $4",
        table, since, head, limit, *(() if record_id is None else (record_id,))))


async def causes_after(conn: asyncpg.Connection | Database, table: str, columns: list[str], since: int, head: int,
                       limit: int) -> list[Change]:
    """The changes of `table` at positions in [since, head] that may have moved records pointing at theirs in or
    out of view (live/realtime.py, derived outcomes): deletes, and updates whose old values hold one of `columns`;
    oldest first, at most `limit`. From `since` itself: its derived events may have reached a client in part."""
    return decode_rows(await conn.fetch(
        f"SELECT {LOG_ROW} FROM hapta.change_log WHERE t = $1 AND pos >= $2 AND pos <= $3 "
        "AND (change->>'a' = 'delete' OR (change->>'a' = 'update' AND change->'o' ?| $4::text[])) "
        "ORDER BY pos LIMIT $5", table, since, head, columns, limit))


Consumer = Callable[[list[Change], Callable[[Change], None]], Awaitable[None]]


class ChangeFeed:
    """Built with what it drives (live/__init__.py):

        deliver(changes)          the changes read from the log, in position order (realtime)
        listening()               whether anyone in this process wants them delivered (subscriptions held)
        tell(notice)              a channel message that waited for its commit, in its place between the changes
        messaging()               whether this process holds channel members (who may be told messages)
        try_lead()                take the numbering lease (the listener's advisory lock); None: always number
        changed(table, xact)      a table changed (at once, before anything is read: the read cache)
        reset()                   changes may have been missed: start over (the cache, every subscriber)
    """

    def __init__(self, models: dict[str, Model], db: Database, *, deliver: Consumer,
                 listening: Callable[[], bool], changed: Callable[[str, str], None], reset: Callable[[], Any],
                 try_lead: Callable[[], Awaitable[bool]] | None = None, retention: float = 900.0,
                 max_kept: int = 1_000_000, tell: Callable[[str], None] = lambda notice: None,
                 messaging: Callable[[], bool] = lambda: False):
        self.models = models
        self.db = db
        self.deliver = deliver
        self.tell = tell
        self.messaging = messaging
        self.changed = changed
        self.on_reset = reset
        self.retention = retention
        self.max_kept = max_kept
        self.last = 0                          # the newest position handed on
        self.numbering = asyncio.Event()       # a doorbell rang (or a subscription waits): number what committed
        self.hurry = asyncio.Event()           # a subscription waits: number now, do not let doorbells gather
        self.waiters: list[asyncio.Future] = []
        self.reading = asyncio.Event()         # the log grew past `last`: read it
        # The newest position heard of on the listener (or counted by `_recount`), read or not. Not what this
        # process's own numbering returns: a head heard comes after the doorbells of every message below it (one
        # connection, commit order), so a process that skips the log up to it has heard of each of them.
        self.seen = 0
        # Whether anyone here listens (realtime subscriptions): a process with none reads no log, it only keeps
        # `last` up with the positions it hears of, so that every change still costs one read per listening process.
        self.listening = listening
        # Transactions whose channel messages a doorbell announced while this process held channel members, not yet
        # all read (up to the one marked `closing`): while there are any, the log is read even without
        # subscriptions. `told`: those read lately (a doorbell may be heard after another process's numbering let
        # us read its messages), oldest first.
        self.owed: set[str] = set()
        self.told: dict[str, None] = {}
        self.recount = False                   # the listener was away: ask the database which messages wait
        # One process numbers on doorbells, the holder of LEADER_KEY on its listening connection (every process
        # numbering each burst costs P rounds, serialized on one lock, for one that does work). The others number
        # for their own subscriptions (`numbered`), take over when the lease is free, and number themselves when a
        # doorbell went unanswered for LEAD_EVERY (a leader that is alive but frozen).
        self.try_lead = try_lead
        self.leading = False
        self.unanswered: float | None = None   # when a doorbell rang that no numbering has answered yet
        self.tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        """After the listener started: anything committed from now on is heard, and `last` is where we are."""
        self.last = self.seen = (await horizon(self.db)).head
        self.leading = self.try_lead is None or await self.try_lead()
        self.numbering.set()   # changes written while no gateway ran are waiting in the inbox
        self.tasks = [asyncio.ensure_future(job()) for job in (self._number, self._read, self._prune, self._lead)]

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    # ---- from the listener ----

    def rung(self, payload: str) -> None:
        """A writer's doorbell (runs in the event loop, in commit order, before any request can run after it)."""
        try:
            bell = _decode_doorbell(payload)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("ignored a malformed change notification")
            return
        if bell.table in self.models:
            self.changed(bell.table, bell.xact)
        elif bell.table == MESSAGES:
            if bell.xact not in self.told and self.messaging():
                self.owed.add(bell.xact)
        else:
            return
        if self.leading:
            self.numbering.set()
        elif self.unanswered is None:
            self.unanswered = asyncio.get_running_loop().time()

    def positioned(self, payload: str) -> None:
        try:
            head = int(payload)
        except ValueError:
            log.warning("ignored a malformed position notification")
            return
        self.seen = max(self.seen, head)
        self.unanswered = None
        if head > self.last:
            self.reading.set()

    def reconnected(self) -> None:
        """The listener was away: doorbells may have rung unheard. The inbox and the log still hold everything."""
        self.seen = -1   # not known: ask the log
        self.recount = True   # message doorbells may have gone unheard too
        self.leading = self.try_lead is None   # the lease ended with the old connection
        self.numbering.set()
        self.reading.set()

    # ---- background work ----

    async def lag_ms(self) -> float:
        """How long the oldest change not yet handed on here has waited, in milliseconds (0: caught up)."""
        lag = await self.db.fetchval(
            "SELECT extract(epoch FROM now() - min(at)) * 1000 FROM hapta.change_log WHERE pos > $1", self.last)
        return float(lag) if lag is not None else 0.0

    async def numbered(self) -> int:
        """A position at or after every change committed before this call (a numbering that began after it, shared
        by those who ask meanwhile): where a subscription starts."""
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        self.numbering.set()
        self.hurry.set()
        return await waiter

    async def _number(self) -> None:
        loop = asyncio.get_running_loop()
        numbered_at = -NUMBER_EVERY
        while True:
            await self.numbering.wait()
            rest = numbered_at + NUMBER_EVERY - loop.time()
            if rest > 0 and not self.waiters:
                # Doorbells alone, soon after the last numbering: let them gather, one call numbers them all (a
                # subscription that waits for its position cuts this short).
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.hurry.wait(), rest)
            self.hurry.clear()
            self.numbering.clear()
            numbered_at = loop.time()
            waiters, self.waiters = self.waiters, []
            try:
                head, moved = await self.db.fetchrow("SELECT * FROM hapta.position_changes($1)", NUMBER_BATCH)
                while moved == NUMBER_BATCH:
                    head, moved = await self.db.fetchrow("SELECT * FROM hapta.position_changes($1)", NUMBER_BATCH)
                self.reading.set()   # ours is heard too (and moves `seen`), but there is no need to wait for it
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(head)
            except asyncio.CancelledError:
                for waiter in waiters:
                    waiter.cancel()
                raise
            except Exception as exc:
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(exc)
                self._trouble("numbering changes", exc)
                await asyncio.sleep(RETRY)
                self.numbering.set()

    async def _lead(self) -> None:
        if self.try_lead is None:
            return
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(LEAD_EVERY)
            if not self.leading:
                self.leading = await self.try_lead()
            if self.unanswered is not None and (self.leading or loop.time() - self.unanswered >= LEAD_EVERY):
                self.unanswered = None
                self.numbering.set()   # the leader did not answer (or we just took over): number ourselves

    async def _read(self) -> None:
        while True:
            await self.reading.wait()
            self.reading.clear()
            try:
                if self.recount:
                    await self._recount()
                if not self.listening() and not self.owed:   # nobody to deliver to: only keep up
                    self.last = max(self.last, self.seen)
                    continue
                while await self._read_some() == READ_BATCH:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._trouble("reading the change log", exc)
                await asyncio.sleep(RETRY)
                self.reading.set()

    async def _recount(self) -> None:
        """After the listener was away: the head, and the transactions whose channel messages wait in the inbox or
        in the log after `last`, in one snapshot. Their doorbells may have rung unheard; what commits after this is
        heard."""
        head, waiting = await self.db.fetchrow(
            f"SELECT ({HORIZON_HEAD}), array(SELECT change->>'x' FROM hapta.change_inbox WHERE change->>'t' = $1 "
            "UNION SELECT change->>'x' FROM hapta.change_log WHERE t = $1 AND pos > $2)", MESSAGES, self.last)
        self.seen = max(self.seen, head)
        if self.messaging():
            self.owed.update(xact for xact in waiting if xact not in self.told)
        self.recount = False

    async def _read_some(self) -> int:
        """Hand on the next changes after `last`, and tell the channel messages among them each in its place; how
        many there were."""
        batch = decode_rows(await self.db.fetch(
            f"SELECT {LOG_ROW} FROM hapta.change_log WHERE pos > $1 ORDER BY pos LIMIT $2", self.last, READ_BATCH))
        if not batch:
            return 0
        if batch[0].position != self.last + 1:
            # Pruned past what we handed on (we fell more than the retention behind): changes were missed.
            log.warning("the change feed fell behind the change log's retention; subscribers are told to refetch")
            await self.reset()
        metrics.FEED_CHANGES.inc(len(batch))
        # channel messages go with the changes, each told in its place (Realtime.deliver): with its transaction's
        await self._hand_on([c for c in batch if c.table in self.models or c.table == MESSAGES])
        self.last = batch[-1].position
        return len(batch)

    async def _hand_on(self, run: list[Change]) -> None:
        if not run:
            return
        try:
            await self.deliver(run, self._tell)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if failure(exc) is not None:
                raise   # nothing of the run was sent yet (rows are fetched first): read it again
            log.exception("delivering %d changes failed", len(run))
            await self.reset()
        self.last = run[-1].position

    def _tell(self, change: Change) -> None:
        """A channel message that waited for its transaction's commit, read from the log: to its members."""
        if change.closing:   # every message of its transaction is read now
            self.owed.discard(change.xact)
            self.told[change.xact] = None
            if len(self.told) > TOLD_KEPT:
                del self.told[next(iter(self.told))]
        if change.notice is not None:
            self.tell(change.notice)

    async def _prune(self) -> None:
        every = max(0.05, min(30.0, self.retention / 4))
        while True:
            await asyncio.sleep(every)
            try:
                await self.db.execute("SELECT hapta.prune_changes($1, $2)", self.retention, self.max_kept)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._trouble("pruning the change log", exc)

    def _trouble(self, doing: str, exc: Exception) -> None:
        if failure(exc) is not None:
            log.warning("%s failed: %s; trying again", doing, type(exc).__name__)
        else:
            log.exception("%s failed", doing)

    async def reset(self) -> None:
        """Changes may have been missed: the cache and every subscriber must start over (channel members too: they
        may have missed messages)."""
        metrics.FEED_RESETS.inc()
        self.owed.clear()
        result = self.on_reset()
        if asyncio.iscoroutine(result):
            await result
