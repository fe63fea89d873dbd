"""Creates that wait for one collection go to PostgreSQL together: one multi-row INSERT, like a group commit.

A statement costs PostgreSQL (and asyncpg, and the feed's trigger) about as much for one row as for ten
(docs/performance.md, "The write path"), so concurrent creates are worth combining; a lone create is not worth
delaying. Per collection, one create statement is under way at a time:

    nothing under way      the create goes at once, alone, exactly as it always did: no added latency
    one under way          it waits; when that one lands, everything waiting goes as one statement
                           (access.judged_together: each row judged by its own writer's rule and relation checks)
    that statement failed  answered by PostgreSQL (a refused row, a unique value taken, a bad value): nothing was
                           written, so each create runs again alone and gets exactly the answer it would have had
                           alone; not answered (the database went away): each gets what a lone create would get

So a refused row refuses only its own request, with its own error; one connection's creates keep their order (one
statement at a time, rows in the order they came); idempotent creates and batches do not come here (they run in
their own transactions). The combined statement is the gateway's own work, counted against no principal's share of
the pool (shares.py): it serves many, and one at a time per collection bounds it.
"""
from __future__ import annotations

import asyncio
import contextvars
import os
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import asyncpg

from ..access import Schemas, Sql, judged_together
from ..models import Model, Rule
from ..principal import Principal
from ..store.failures import failure
from ..store.postgres import Database
from ..store.shares import Work, current_work, done_working, working

ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"   # hapta.new_id()'s (store/sql/0001_core.sql)
# A random byte to a character of it (256 = 7 * 36 + 4: the first four characters come a little more often, which
# an id, a name and not a secret, can afford).
_TO_ID = bytes(ord(ID_ALPHABET[b % 36]) for b in range(256))
MAX_ROWS = 100   # rows of one statement: the rest wait for the next (bounds its text, its parameters, its time)

# alone(principal, model, rule, values): one create's INSERT, judged, by itself (records/writes.py)
Alone = Callable[[Principal, Model, Rule, dict[str, Any]], Awaitable[asyncpg.Record]]

def new_id() -> str:
    """An id as hapta.new_id() makes them: the gateway names its rows itself, so that it knows which row of a
    combined INSERT is whose, and PostgreSQL plans no id function per row."""
    return os.urandom(15).translate(_TO_ID).decode()


@dataclass(slots=True)
class _Create:
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
        self.waiting: dict[str, list[_Create]] = {}   # by collection: creates for the next statement
        self.under_way: set[str] = set()              # collections with a create statement under way
        self.runners: set[asyncio.Task] = set()

    async def create(self, principal: Principal, model: Model, rule: Rule, values: dict[str, Any]
                     ) -> asyncpg.Record:
        """The row `values` made (its visible columns as `principal` reads them), judged by `rule`; or the error a
        lone create of it would raise."""
        if not model.info.gateway_ids:   # no id of ours to tell its row by: alone, as ever
            return await self.alone(principal, model, rule, values)
        if "id" not in values:
            values = {"id": new_id(), **values}
        if model.name not in self.under_way:
            self.under_way.add(model.name)
            try:
                return await self.alone(principal, model, rule, values)
            finally:
                self._landed(model)
        create = _Create(principal, rule, values, current_work())
        self.waiting.setdefault(model.name, []).append(create)
        return await create.answer   # cancelled (the request's deadline): its row is left out, or ignored

    def _landed(self, model: Model) -> None:
        if not self.waiting.get(model.name):
            self.under_way.discard(model.name)
            return
        # The statements that follow are nobody's in particular: run them with no request's Work.
        runner = asyncio.get_running_loop().create_task(self._run(model), context=contextvars.Context())
        self.runners.add(runner)
        runner.add_done_callback(self.runners.discard)

    async def _run(self, model: Model) -> None:
        try:
            while self.waiting.get(model.name):
                queue = self.waiting[model.name]
                batch = [c for c in queue[:MAX_ROWS] if not c.answer.done()]
                del queue[:MAX_ROWS]
                if not queue:
                    del self.waiting[model.name]
                await self._send(model, batch)
        finally:
            self.under_way.discard(model.name)
            for create in self.waiting.pop(model.name, []):   # only when cancelled (the gateway is closing)
                create.answer.cancel()

    async def _send(self, model: Model, batch: list[_Create]) -> None:
        if len(batch) < 2:
            await self._each_alone(model, batch)
            return
        try:
            rows = await self._together(model, batch)
        except asyncpg.PostgresError as exc:
            if failure(exc) is not None:   # the database is not there (for now): as a lone create would hear
                self._answer(batch, exc)
            else:   # answered and undone: nothing was written; each alone gets exactly its own answer
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
        params: list[Any] = []
        columns = list(dict.fromkeys(name for create in batch for name in create.values))
        tuples, judged = [], []
        for create in batch:
            sql = Sql(model, create.principal, self.schemas, params)
            cells = [sql.param(create.values[name]) if name in create.values else "DEFAULT" for name in columns]
            tuples.append(f"({', '.join(cells)})")
            judged.append((sql, create.rule, list(create.values), cells[columns.index("id")]))
        names = ", ".join(f'"{name}"' for name in columns)
        insert = f'INSERT INTO "{model.name}" ({names}) VALUES {", ".join(tuples)}'
        rows = await self.db.write_all(judged_together(model, insert, judged), *params,
                                       works=[create.work for create in batch])
        by_place = {row["__n"]: row for row in rows}
        return [by_place[n] for n in range(len(batch))]

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
