"""Creates that wait for one collection go to PostgreSQL together: one multi-row INSERT, like a group commit.

Most of what a single-row create costs PostgreSQL is paid per statement and per commit, not per row (a row of a
10-row INSERT costs about a third of a lone one: docs/performance.md, "The write path"), so concurrent creates
are worth combining; a lone create is not worth delaying. Per collection, at most MAX_FLIGHTS create statements
are under way at once:

    room, nothing waiting  the create goes at once, a statement of its own: no added latency
    no room                it waits; when a statement lands, everything waiting goes as the next one
                           (access.judged_together: each row judged by its own writer's rule and relation checks)
    that statement failed  answered by PostgreSQL (a refused row, a unique value taken, a bad value): nothing was
                           written, so each create runs again alone (Writes.insert) and gets exactly the answer it
                           would have had alone; not answered (the database went away): each gets what a lone
                           create would get

Statements are kept per shape of their rows (the writer's kind, rule and columns) and filled per batch, so the SQL
is built once per shape, not per request. A refused create costs its statement twice; refusals are the exception.

So a refused row refuses only its own request, with its own error. One connection's creates keep their order: rows
go in the order they came, and a connection with a create under way has its next ones wait for it to land.
Idempotent creates and batches do not come here (they run in their own transactions). A combined statement is the
gateway's own work, counted against no principal's share of the pool (shares.py): it serves many, and MAX_FLIGHTS
per collection bounds it.
"""
from __future__ import annotations

import asyncio
import contextvars
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, NamedTuple

import asyncpg

from ..access import Schemas, Sql, judged_together
from ..models import Model, Rule
from ..principal import Principal
from ..query.sql import VarRef, VarSlots
from ..query.values import var_value
from ..store.failures import failure
from ..store.postgres import Database
from ..store.shares import Work, current_work, done_working, working

ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"   # hapta.new_id()'s (store/sql/0001_core.sql)
# A random byte to a character of it (256 = 7 * 36 + 4: the first four characters come a little more often, which
# an id, a name and not a secret, can afford).
_TO_ID = bytes(ord(ID_ALPHABET[b % 36]) for b in range(256))
MAX_ROWS = 100   # rows of one statement: the rest wait for the next (bounds its text, its parameters, its time)
# Create statements of one collection under way at once: while one commits, the next is written (two PostgreSQL
# backends, two cores), and what arrives meanwhile gathers for the one after.
MAX_FLIGHTS = 2
TEMPLATES = 512   # statement texts kept (by the shapes of their rows): the bench's all alike need one per size

# alone(principal, model, rule, values): one create's INSERT, judged, by itself (records/writes.py)
Alone = Callable[[Principal, Model, Rule, dict[str, Any]], Awaitable[asyncpg.Record]]

def new_id() -> str:
    """An id as hapta.new_id() makes them: the gateway names its rows itself, so that it knows which row of a
    combined INSERT is whose, and PostgreSQL plans no id function per row."""
    return os.urandom(15).translate(_TO_ID).decode()


class _Cell(NamedTuple):
    """A parameter standing for row `row`'s value of `column`."""
    row: int
    column: str


class _Template(NamedTuple):
    text: str
    params: tuple          # constants of the rules, _Cell and VarRef: filled per batch
    rules: tuple           # the rules it judges by (held: the cache is keyed by their ids)


@dataclass(slots=True)
class _Create:
    source: int                  # the connection (peer) it came from: its creates keep their order
    principal: Principal
    rule: Rule
    values: dict[str, Any]
    work: Work | None
    answer: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Combiner:
    def __init__(self, db: Database, schemas: Schemas, alone: Alone):
        self.db = db
        self.schemas = schemas
        self.alone = alone
        self.waiting: dict[str, list[_Create]] = {}   # by collection: creates for the next statements
        self.flights: dict[str, int] = {}             # by collection: create statements under way
        self.sending: dict[str, Counter] = {}         # by collection: creates under way, by source
        self.runners: set[asyncio.Task] = set()
        self.templates: dict[tuple, _Template] = {}   # statements by the shapes of their rows, oldest first

    async def create(self, source: object, principal: Principal, model: Model, rule: Rule,
                     values: dict[str, Any]) -> asyncpg.Record:
        """The row `values` made (its visible columns as `principal` reads them), judged by `rule`; or the error a
        lone create of it would raise. `source`: the connection it came from (its creates keep their order)."""
        if not model.info.gateway_ids:   # no id of ours to tell its row by: alone, as ever
            return await self.alone(principal, model, rule, values)
        if "id" not in values:
            values = {"id": new_id(), **values}
        create = _Create(id(source), principal, rule, values, current_work())
        name = model.name
        if not self.waiting.get(name) and self.flights.get(name, 0) < MAX_FLIGHTS \
                and create.source not in self.sending.get(name, ()):
            self._take_off(name, [create])   # nothing waits and there is room: at once, alone, in this task
            try:
                await self._send(model, [create])
            finally:
                self._landed(model, [create])
            return create.answer.result()
        self.waiting.setdefault(name, []).append(create)
        return await create.answer   # cancelled (the request's deadline): its row is left out, or ignored

    def _take_off(self, name: str, batch: list[_Create]) -> None:
        self.flights[name] = self.flights.get(name, 0) + 1
        self.sending.setdefault(name, Counter()).update(create.source for create in batch)

    def _landed(self, model: Model, batch: list[_Create]) -> None:
        name = model.name
        self.flights[name] -= 1
        sending = self.sending[name]
        for create in batch:   # no count is kept at zero: a connection leaves nothing behind here
            sending[create.source] -= 1
            if not sending[create.source]:
                del sending[create.source]
        self._next(model)

    def _next(self, model: Model) -> None:
        """Start statements for what waits, while there is room: each takes the waiting creates in the order they
        came, but none of a connection that has a create under way (nor any after one of its creates left
        waiting), so that a connection's creates are written in its order."""
        name = model.name
        while self.waiting.get(name) and self.flights.get(name, 0) < MAX_FLIGHTS:
            busy = set(self.sending.get(name, ()))
            batch, left = [], []
            for create in self.waiting[name]:
                if create.answer.done():
                    continue   # its request's deadline passed while it waited
                if create.source in busy or len(batch) == MAX_ROWS:
                    busy.add(create.source)
                    left.append(create)
                else:
                    batch.append(create)
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

    async def _fly(self, model: Model, batch: list[_Create]) -> None:
        try:
            await self._send(model, batch)
        finally:
            self._landed(model, batch)

    async def _send(self, model: Model, batch: list[_Create]) -> None:
        if not batch:
            return
        try:
            rows = await self._together(model, batch)
        except asyncpg.PostgresError as exc:
            if failure(exc) is not None:   # the database is not there (for now): as a lone create would hear
                self._answer(batch, exc)
            else:   # answered and undone: nothing was written; each alone gets exactly its own answer (the
                # refusal's own words, a unique value taken by someone the writer may not see: Writes.insert)
                await self._each_alone(model, batch)
            return
        except Exception as exc:   # the pool is busy, or the outcome is unknown: the same for every row
            self._answer(batch, exc)
            return
        for create, row in zip(batch, rows):
            if not create.answer.done():
                create.answer.set_result(row)

    async def _together(self, model: Model, batch: list[_Create]) -> list[asyncpg.Record]:
        """One INSERT of every row of `batch`, judged row by row; the rows in batch order."""
        key = (model.name, tuple((c.principal.is_admin, id(c.rule), tuple(c.values)) for c in batch))
        template = self.templates.get(key)
        if template is None:
            template = self.templates[key] = self._template(model, batch)
            if len(self.templates) > TEMPLATES:
                del self.templates[next(iter(self.templates))]   # the oldest
        variables: dict[int, dict[str, Any]] = {}
        params = []
        for slot in template.params:
            if type(slot) is _Cell:
                params.append(batch[slot.row].values[slot.column])
            elif type(slot) is VarRef:
                if slot.row not in variables:
                    variables[slot.row] = batch[slot.row].principal.rule_vars()
                params.append(var_value(variables[slot.row], slot.name))
            else:
                params.append(slot)
        rows = await self.db.write_all(template.text, *params, works=[create.work for create in batch])
        by_place = {row["__n"]: row for row in rows}
        return [by_place[n] for n in range(len(batch))]

    def _template(self, model: Model, batch: list[_Create]) -> _Template:
        """The statement for rows of these shapes (writer's kind, rule, columns), its parameters standing for the
        rows' values and their writers' variables: built once, filled per batch."""
        params: list[Any] = []
        columns = list(dict.fromkeys(name for create in batch for name in create.values))
        tuples, judged = [], []
        for n, create in enumerate(batch):
            sql = Sql(model, create.principal, self.schemas, params, VarSlots(n))
            cells = [sql.param(_Cell(n, name)) if name in create.values else "DEFAULT" for name in columns]
            tuples.append(f"({', '.join(cells)})")
            judged.append((sql, create.rule, list(create.values), cells[columns.index("id")]))
        names = ", ".join(f'"{name}"' for name in columns)
        insert = f'INSERT INTO "{model.name}" ({names}) VALUES {", ".join(tuples)}'
        return _Template(judged_together(model, insert, judged), tuple(params), tuple(c.rule for c in batch))

    async def _each_alone(self, model: Model, batch: list[_Create]) -> None:
        """Each create by itself, counted as its own request's work (its principal's share, its COMMIT)."""
        for create in batch:
            if create.answer.done():
                continue
            token = working(create.work) if create.work is not None else None
            try:
                row = await self.alone(create.principal, model, create.rule, create.values)
            except Exception as exc:
                self._answer([create], exc)
            else:
                if not create.answer.done():
                    create.answer.set_result(row)
            finally:
                if token is not None:
                    done_working(token)

    @staticmethod
    def _answer(batch: list[_Create], exc: BaseException) -> None:
        for create in batch:
            if not create.answer.done():
                create.answer.set_exception(exc)

    async def close(self) -> None:
        """Let statements under way land (each is bounded by the statement timeout)."""
        await asyncio.gather(*self.runners, return_exceptions=True)
