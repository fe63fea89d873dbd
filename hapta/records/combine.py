"""Writes that wait for one collection go to PostgreSQL together, like a group commit: creates as one multi-row
INSERT, updates as one UPDATE ... FROM (VALUES ...), deletes as one DELETE ... USING (VALUES ...).

Most of what a single-row write costs PostgreSQL is paid per statement and per commit, not per row (a row of a
10-row INSERT costs about a third of a lone one: docs/performance.md, "The write path"), so concurrent writes
are worth combining; a lone write is not worth delaying. Per collection, at most MAX_FLIGHTS statements (of any
kind) are under way at once:

    room, nothing waiting  the write goes at once, a statement of its own: no added latency (an update or delete
                           of one row is then one statement too, where alone it is a transaction of four)
    no room                it waits; when a statement lands, the waiting writes go as the next one, of the kind
                           of the first that may go (updates: that set the same columns as it), each row judged
                           by its own writer's rule and relation checks and read back as its writer sees it
                           (access.judged_together)
    a row not written      an update or delete whose record is not there, or does not pass its writer's rule or
                           expected version as it stands: that write runs again alone (records/writes.py), which
                           says exactly why (NOT_FOUND, FORBIDDEN, CONFLICT with the version)
    that statement failed  answered by PostgreSQL (a refused row, a unique value taken, a bad value, a record still
                           referred to): nothing was written, so each write runs again alone and gets exactly the
                           answer it would have had alone; so too for a lock not had in time or a deadlock, when
                           the statement held several rows (the others need not share the fate of one busy
                           record); not answered (the database went away): each gets what a lone write would get

Statements are kept per shape of their rows (the kind, the writer's kind, its rules, the columns, whether a version
is expected) and filled per batch, so the SQL is built once per shape, not per request. A refused write costs its
statement twice; refusals are the exception.

So a refused row refuses only its own request, with its own error. One connection's writes keep their order: a
connection with a write under way has its next ones wait for it to land; its creates in one INSERT go in the order
they came (an INSERT keeps it), but an UPDATE or DELETE of several rows writes them in whatever order its join
finds them, so one statement takes at most one update or delete of a connection. Nor does one take two writes of
one record, nor two statements under way write one record: they would be an arbitrary one of two, or deadlock on
each other. What comes here is decided by records/writes.py: writes with no idempotency key, not in a batch, with
no before_* hook of their op (it runs inside the write's transaction) and not of users (deleting one ends its
sessions). A combined statement is the gateway's own work, counted against no principal's share of the pool
(shares.py): it serves many, and MAX_FLIGHTS per collection bounds it.
"""
from __future__ import annotations

import asyncio
import contextvars
import os
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Awaitable, Callable, NamedTuple

import asyncpg

from ..access import Schemas, Sql, judged_together
from ..models import Model, Rule
from ..principal import Principal
from ..protocol.errors import HaptaError
from ..query.sql import PG_TYPES, VarRef, VarSlots
from ..query.values import var_value
from ..store.failures import failure
from ..store.postgres import Database
from ..store.shares import Work, current_work, done_working, working

ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"   # hapta.new_id()'s (store/sql/0001_core.sql)
# A random byte to a character of it (256 = 7 * 36 + 4: the first four characters come a little more often, which
# an id, a name and not a secret, can afford).
_TO_ID = bytes(ord(ID_ALPHABET[b % 36]) for b in range(256))
MAX_ROWS = 100   # rows of one statement: the rest wait for the next (bounds its text, its parameters, its time)
# Statements of one collection under way at once: while one commits, the next is written (two PostgreSQL
# backends, two cores), and what arrives meanwhile gathers for the one after.
MAX_FLIGHTS = 2
TEMPLATES = 512   # statement texts kept (by the shapes of their rows): the bench's all alike need one per size

CREATE, UPDATE, DELETE = "create", "update", "delete"
# What a statement of several rows may fail with because of one of them, the database being there: a record
# locked by someone else past lock_timeout, a deadlock. Its rows then run alone, each waiting only for its own.
_ONE_ROW_FAULTS = {"55P03", "40P01"}

# alone(): one write by itself, in a statement or transaction of its own, as records/writes.py runs it when it is
# not combined: its row (what the combined statement would have returned for it), or its error.
Alone = Callable[[], Awaitable[Any]]


def new_id() -> str:
    """An id as hapta.new_id() makes them: the gateway names its rows itself, so that it knows which row of a
    combined INSERT is whose, and PostgreSQL plans no id function per row."""
    return os.urandom(15).translate(_TO_ID).decode()


class _Cell(NamedTuple):
    """A parameter standing for row `row`'s value of `column`."""
    row: int
    column: str


class _Key(NamedTuple):
    """A parameter standing for the id of the record row `row` updates or deletes."""
    row: int


class _Version(NamedTuple):
    """A parameter standing for the version row `row`'s update expects its record at."""
    row: int


class _Template(NamedTuple):
    text: str
    params: tuple          # constants of the rules, _Cell, _Key, _Version and VarRef: filled per batch
    rules: tuple           # the rules it judges by (held: the cache is keyed by their ids)


@dataclass(slots=True)
class _Write:
    kind: str                    # CREATE, UPDATE, DELETE: the statement it may go in
    source: int                  # the connection (peer) it came from: its writes keep their order
    principal: Principal
    rule: Rule | None            # what the written row must satisfy (a create's rule; an update's for the changed
                                 # fields); None for a delete
    values: dict[str, Any]       # the columns written: a create's row, an update's changes
    alone: Alone
    work: Work | None
    key: Any = None              # the record an update or delete writes
    may: Rule | None = None      # what that record must satisfy as it stands: the op's rule
    version: int | None = None   # the version an update expects its record at
    answer: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    def shape(self) -> tuple:
        """What its part of a statement's text depends on (everything else is parameters)."""
        return self.principal.is_admin, id(self.rule), id(self.may), tuple(self.values), self.version is not None


def _unknown(exc: BaseException) -> bool:
    """Whether a write's failure leaves its outcome unknown (store.failures.outcome_unknown)."""
    return isinstance(exc, HaptaError) and (exc.details or {}).get("outcome") == "unknown"


def _mark(batch: list[_Write], commit: str) -> None:
    """How far their writes got, for their requests to say if their deadlines strike (store.shares.Work.commit):
    "sent", may or may not happen; "", known not to have happened (failed before their statement went, refused)."""
    for write in batch:
        work = write.work   # a handle whose documented field its holders set (store/postgres.py _committing too)
        if work is not None:
            work.commit = commit


def _fit(first: _Write | None, write: _Write) -> bool:
    """Whether `write` may share `first`'s statement: of its kind, and an update only with updates that set the
    same columns (a column that one row sets and another keeps would be set to itself in that one, and an app's
    trigger `BEFORE UPDATE OF` it would fire for it)."""
    return first is not None and write.kind == first.kind and \
        (write.kind != UPDATE or write.values.keys() == first.values.keys())


class Combiner:
    def __init__(self, db: Database, schemas: Schemas):
        self.db = db
        self.schemas = schemas
        self.waiting: dict[str, list[_Write]] = {}    # by collection: writes for the next statements
        self.flights: dict[str, int] = {}             # by collection: statements under way
        self.sending: dict[str, Counter] = {}         # by collection: writes under way, by source
        self.writing: dict[str, set] = {}             # by collection: records updated or deleted under way
        self.runners: set[asyncio.Task] = set()
        self.templates: dict[tuple, _Template] = {}   # statements by the shapes of their rows, oldest first

    async def create(self, source: object, principal: Principal, model: Model, rule: Rule, values: dict[str, Any],
                     alone: Callable[[dict[str, Any]], Awaitable[asyncpg.Record]]) -> asyncpg.Record:
        """The row `values` made (its visible columns as `principal` reads them), judged by `rule`; or the error
        alone(values), a create by itself, would raise. `source`: the connection it came from."""
        if not model.info.gateway_ids:   # no id of ours to tell its row by: alone, as ever
            return await alone(values)
        if "id" not in values:
            values = {"id": new_id(), **values}
        return await self._submit(model, _Write(CREATE, id(source), principal, rule, values, partial(alone, values),
                                                current_work()))

    async def update(self, source: object, principal: Principal, model: Model, key: Any, changes: dict[str, Any],
                     version: int | None, may: Rule, rule: Rule, alone: Alone) -> asyncpg.Record:
        """Record `key` with `changes` made, where as it stands it meets `may` (and is at `version`, if given),
        judged as updated by `rule`: the row as `principal` reads it; or what alone() returns or raises."""
        return await self._submit(model, _Write(UPDATE, id(source), principal, rule, changes, alone, current_work(),
                                                key, may, version))

    async def delete(self, source: object, principal: Principal, model: Model, key: Any, may: Rule,
                     alone: Alone) -> asyncpg.Record | dict[str, Any]:
        """Record `key` deleted, where it meets `may`: the row as `principal` read it; or what alone() returns or
        raises."""
        return await self._submit(model, _Write(DELETE, id(source), principal, None, {}, alone, current_work(),
                                                key, may))

    async def _submit(self, model: Model, write: _Write) -> Any:
        name = model.name
        if not self.waiting.get(name) and self.flights.get(name, 0) < MAX_FLIGHTS \
                and write.source not in self.sending.get(name, ()) and write.key not in self.writing.get(name, ()):
            self._take_off(name, [write])   # nothing waits and there is room: at once, alone, in this task
            try:
                await self._send(model, [write])
            finally:
                self._landed(model, [write])
            return write.answer.result()
        self.waiting.setdefault(name, []).append(write)
        return await write.answer   # cancelled (the request's deadline): its row is left out, or ignored

    def _take_off(self, name: str, batch: list[_Write]) -> None:
        """`batch` leaves the waiting for a statement: from here on each of its requests, if its deadline strikes,
        says that its write may or may not happen (Work.commit "sent", as for a COMMIT under way; store/postgres.py
        makes it "done" or "" once the statement is answered), for the statement goes on without it."""
        _mark(batch, "sent")
        self.flights[name] = self.flights.get(name, 0) + 1
        self.sending.setdefault(name, Counter()).update(write.source for write in batch)
        writing = self.writing.setdefault(name, set())
        writing.update(write.key for write in batch if write.key is not None)

    def _landed(self, model: Model, batch: list[_Write]) -> None:
        name = model.name
        self.flights[name] -= 1
        sending, writing = self.sending[name], self.writing[name]
        for write in batch:   # no count is kept at zero: a connection leaves nothing behind here
            sending[write.source] -= 1
            if not sending[write.source]:
                del sending[write.source]
            writing.discard(write.key)
        self._next(model)

    def _next(self, model: Model) -> None:
        """Start statements for what waits, while there is room: each takes the first write that may go and the
        waiting writes that fit with it (_fit), in the order they came; but none of a connection that has a write
        under way or already in it (creates aside: an INSERT keeps its rows' order), nor any after one of a
        connection's writes left waiting, so that a connection's writes are written in its order; and none of a
        record that a write under way or in it writes."""
        name = model.name
        while self.waiting.get(name) and self.flights.get(name, 0) < MAX_FLIGHTS:
            busy = set(self.sending.get(name, ()))
            records = set(self.writing.get(name, ()))
            first = None
            batch, left = [], []
            for write in self.waiting[name]:
                if write.answer.done():
                    continue   # its request's deadline passed while it waited
                free = write.source not in busy and (write.key is None or write.key not in records)
                if first is None and free:
                    first = write
                if not free or not _fit(first, write) or len(batch) == MAX_ROWS:
                    busy.add(write.source)
                    left.append(write)
                    continue
                batch.append(write)
                if write.kind != CREATE:
                    busy.add(write.source)
                    records.add(write.key)
            if left:
                self.waiting[name] = left
            else:
                self.waiting.pop(name, None)
            if not batch:
                return
            self._take_off(name, batch)
            # The statement is nobody's in particular: run it with no request's Work (each row's is marked).
            runner = asyncio.get_running_loop().create_task(self._fly(model, batch), context=contextvars.Context())
            self.runners.add(runner)
            runner.add_done_callback(self.runners.discard)

    async def _fly(self, model: Model, batch: list[_Write]) -> None:
        try:
            await self._send(model, batch)
        finally:
            self._landed(model, batch)

    async def _send(self, model: Model, batch: list[_Write]) -> None:
        if not batch:
            return
        try:
            rows = await self._together(model, batch)
        except asyncpg.PostgresError as exc:
            if failure(exc) is not None and not (len(batch) > 1 and exc.sqlstate in _ONE_ROW_FAULTS):
                self._answer(batch, exc)   # the database is not there (for now): as a lone write would hear
            else:   # answered and undone: nothing was written; each alone gets exactly its own answer (the
                # refusal's own words, a unique value taken by someone the writer may not see: records/writes.py)
                await self._each_alone(batch)
            return
        except Exception as exc:   # the pool is busy, or the outcome is unknown: the same for every row
            if not _unknown(exc):
                _mark(batch, "")
            self._answer(batch, exc)
            return
        missing = []
        for write, row in zip(batch, rows):
            if row is None:   # an update or delete whose record was not there for it as it stands
                missing.append(write)
            elif not write.answer.done():
                write.answer.set_result(row)
        await self._each_alone(missing)

    async def _together(self, model: Model, batch: list[_Write]) -> list[asyncpg.Record | None]:
        """One statement for every write of `batch`, judged row by row; each write's row in batch order (None: not
        written)."""
        key = (batch[0].kind, model.name, tuple(write.shape() for write in batch))
        template = self.templates.get(key)
        if template is None:
            template = self.templates[key] = self._template(model, batch)
            if len(self.templates) > TEMPLATES:
                del self.templates[next(iter(self.templates))]   # the oldest
        variables: dict[int, dict[str, Any]] = {}
        params = []
        for slot in template.params:
            kind = type(slot)
            if kind is _Cell:
                params.append(batch[slot.row].values[slot.column])
            elif kind is _Key:
                params.append(batch[slot.row].key)
            elif kind is _Version:
                params.append(batch[slot.row].version)
            elif kind is VarRef:
                if slot.row not in variables:
                    variables[slot.row] = batch[slot.row].principal.rule_vars()
                params.append(var_value(variables[slot.row], slot.name))
            else:
                params.append(slot)
        rows = await self.db.write_all(template.text, *params, works=[write.work for write in batch])
        by_place = {row["__n"]: row for row in rows}
        return [by_place.get(n) for n in range(len(batch))]

    def _template(self, model: Model, batch: list[_Write]) -> _Template:
        """The statement for rows of these shapes, its parameters standing for the rows' values and their writers'
        variables: built once, filled per batch."""
        params: list[Any] = []
        sqls = [Sql(model, write.principal, self.schemas, params, VarSlots(n)) for n, write in enumerate(batch)]
        build = self._insert if batch[0].kind == CREATE else self._change
        return _Template(build(model, batch, sqls), tuple(params), tuple((w.rule, w.may) for w in batch))

    @staticmethod
    def _insert(model: Model, batch: list[_Write], sqls: list[Sql]) -> str:
        """One INSERT of every row, each judged by its writer's create rule."""
        name = model.name
        columns = list(dict.fromkeys(column for write in batch for column in write.values))
        tuples, judged = [], []
        for n, (write, sql) in enumerate(zip(batch, sqls)):
            cells = [sql.param(_Cell(n, column)) if column in write.values else "DEFAULT" for column in columns]
            tuples.append(f"({', '.join(cells)})")
            judged.append((sql, write.rule, list(write.values), f'"{name}"."id" = {cells[columns.index("id")]}'))
        names = ", ".join(f'"{column}"' for column in columns)
        return judged_together(model, f'INSERT INTO "{name}" ({names}) VALUES {", ".join(tuples)}', judged)

    @staticmethod
    def _change(model: Model, batch: list[_Write], sqls: list[Sql]) -> str:
        """One UPDATE or DELETE of every row's record where it meets its writer's rule for the op as it stands
        (and is at the version expected): a record that does not is left alone and returns no row. An updated
        row is judged as stored by its writer's rule and relation checks; a deleted one is read back as its
        writer read it. A lone write's statement names its record plainly; several join a VALUES list that
        numbers them."""
        name = model.name
        table = f'"{name}"'
        conditions, keys = [], []
        for n, (write, sql) in enumerate(zip(batch, sqls)):
            condition = sql.rule(write.may)
            if write.version is not None:
                condition = f'({condition} AND {table}."version" = {sql.param(_Version(n))})'
            conditions.append(condition)
            keys.append(sql.param(_Key(n)))
        one = len(batch) == 1
        if one:
            rows, where = "", f'{table}."id" = {keys[0]} AND {conditions[0]}'
        else:
            id_type = PG_TYPES[model.info.columns["id"].kind]
            rows = f'(VALUES {", ".join(f"({n}, {key}::{id_type})" for n, key in enumerate(keys))}) ' \
                   f'AS "__v"("__n", "__id")'
            cases = " ".join(f"WHEN {n} THEN {condition}" for n, condition in enumerate(conditions))
            where = f'{table}."id" = "__v"."__id" AND CASE "__v"."__n" {cases} END'
        if batch[0].kind == DELETE:
            write = f'DELETE FROM {table}{" USING " + rows if rows else ""} WHERE {where}'
        else:
            sets = []
            for column in batch[0].values:   # every row sets the same columns (_fit)
                if one:
                    sets.append(f'"{column}" = {sqls[0].param(_Cell(0, column))}')
                    continue
                # Each row's own value; the ELSE, never taken, gives the parameters their type: the column's
                cases = " ".join(f"WHEN {n} THEN {sqls[n].param(_Cell(n, column))}" for n in range(len(batch)))
                sets.append(f'"{column}" = CASE "__v"."__n" {cases} ELSE {table}."{column}" END')
            write = f'UPDATE {table} SET {", ".join(sets)}{" FROM " + rows if rows else ""} WHERE {where}'
        return judged_together(model, write, [
            (sql, w.rule, list(w.values), "true" if one else f'{table}."__n" = {n}')
            for n, (w, sql) in enumerate(zip(batch, sqls))])

    async def _each_alone(self, batch: list[_Write]) -> None:
        """Each write by itself, counted as its own request's work (its principal's share, its COMMIT)."""
        for write in batch:
            if write.answer.done():
                continue
            token = working(write.work) if write.work is not None else None
            _mark([write], "sent")   # it runs on if the request's deadline strikes meanwhile
            try:
                row = await write.alone()
            except Exception as exc:
                if not _unknown(exc):
                    _mark([write], "")
                self._answer([write], exc)
            else:
                if not write.answer.done():
                    write.answer.set_result(row)
            finally:
                if token is not None:
                    done_working(token)

    @staticmethod
    def _answer(batch: list[_Write], exc: BaseException) -> None:
        for write in batch:
            if not write.answer.done():
                write.answer.set_exception(exc)

    async def close(self) -> None:
        """Let statements under way land (each is bounded by the statement timeout)."""
        await asyncio.gather(*self.runners, return_exceptions=True)
