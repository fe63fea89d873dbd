"""records.*: what a request names (a collection, its fields, a filter, an expansion), and reads, each authorized
by the collection's rules (access/). Writes are writes.py's, on the same names.

Reads put the rule into the query's WHERE clause and go through the read cache, then leave through the record
view (before_send, expand: view.py). Every identifier in the SQL comes from the catalog (models), every value is
a parameter.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Awaitable, Callable, TypeVar

import asyncpg

from ..access import BoundFilter, Schemas, Sql, anyone_key, anyone_sees, client_filter, query_key, rule_for, rule_fields
from ..hooks.api import Context
from ..hooks.service import Hooks
from ..models import Model, Rule
from ..principal import Peer, Principal
from ..protocol.errors import BAD_REQUEST, FORBIDDEN, NOT_FOUND, HaptaError
from ..store.postgres import Database
from . import aggregate as aggregates
from .cursors import RANK, after_condition, decode_cursor, encode_cursor, keyset_ready, ranked_search, sort_terms
from .expand import Plan, ReadThrough, plan_of
from .values import record_key
from .view import RecordView

T = TypeVar("T")
# Where a cache miss reads: `reads(run)` runs `run(db)` on the Database it chooses (store/replicas.py: a replica
# proven fresh, else the primary) and returns what it returns.
Reads = Callable[[Callable[[Database], Awaitable[T]]], Awaitable[T]]


def row_fields(row: asyncpg.Record, fields: tuple[str, ...]) -> dict[str, Any]:
    return {name: row[name] for name in fields}


def _order_by(sql: Sql, terms: list[tuple[str, bool]], search: Any) -> str:
    """records.list's ORDER BY: each term through the reader's guards (a hidden value sorts as a null)."""
    return ", ".join(f'{sql.rank(search) if name == RANK else sql.column(name)} {"DESC" if descending else "ASC"}'
                     for name, descending in terms)


class Records:
    def __init__(self, db: Database, models: dict[str, Model], schemas: Schemas, hooks: Hooks, view: RecordView,
                 read: ReadThrough, max_filter_cost: int, reads: Reads | None = None):
        self.db = db
        # cache misses of get, list and aggregate (nothing in a write's transaction, no subscription's snapshot)
        self.reads: Reads = reads or (lambda run: run(db))
        self.models = models
        self.schemas = schemas
        self.hooks = hooks       # their ctx (context), and before_create & co. through writes.py
        self.view = view         # before_send and expand: how records leave for one reader (records/view.py)
        self.read = read
        self.max_filter_cost = max_filter_cost

    # ---- what a request names ----

    def model(self, name: str) -> Model:
        model = self.models.get(name)
        if model is None:
            raise HaptaError(NOT_FOUND, f"no collection {name}")
        return model

    @staticmethod
    def fields(model: Model, requested: list[str] | None) -> tuple[str, ...]:
        if requested is None:
            return model.visible
        unknown = [f for f in requested if f not in model.table.fields]
        if unknown:
            raise HaptaError(BAD_REQUEST, f"unknown field {unknown[0]!r} in fields")
        return tuple(dict.fromkeys(requested))

    def expansion(self, model: Model, paths: list[str] | None, fields: tuple[str, ...]) -> Plan | None:
        """The plan for `expand` (records/expand.py); the relations it follows must be among the fields returned."""
        plan = plan_of(self.models, model, paths)
        if plan is not None:
            missing = [name for name in plan.fields() if name not in fields]
            if missing:
                raise HaptaError(BAD_REQUEST, f"expand follows {missing[0]!r}: name it in fields too")
        return plan

    def filter(self, principal: Principal, model: Model, text: str | None) -> BoundFilter | None:
        """A client's filter, bound once against what this principal may read, cost-checked (access/filters.py)."""
        return client_filter(model, self.schemas.of(principal), text, self.max_filter_cost)

    def sql(self, principal: Principal, model: Model) -> Sql:
        return Sql(model, principal, self.schemas)

    def context(self, peer: Peer, op: str, model: Model, conn: asyncpg.Connection | None = None) -> Context:
        """What hooks learn of the call. Their ctx.sql runs on `conn` (the write's transaction) when given."""
        principal = peer.principal
        return Context(principal.user_id, principal.role, op, model.name, peer.address,
                       _sql=partial(self.db.fetch_for_app, conn=conn))

    # ---- reads ----

    async def list(self, principal: Principal, collection: str, *, filter: str | None, sort: str | None, page: int,
                   per_page: int, after: str | None, fields: list[str] | None, count: bool,
                   expand: list[str] | None = None) -> dict[str, Any]:
        """Through the read cache: keyed by the query and what the rules read of the principal; then through the
        collection's before_send hook, for this principal (the cache keeps what the rules allow); then what its
        relations point at, under `expand`, as the related collections' rules show it to this principal."""
        model = self.model(collection)
        found = self.filter(principal, model, filter)
        shown = self.fields(model, fields)
        plan = self.expansion(model, expand, shown)
        sorted_fields = [part.strip().lstrip("+-") for part in (sort or "").split(",")]
        key, tables = query_key(model, "list", principal, found, [*shown, *sorted_fields],
                                (shown, sort, page, per_page, after, count))
        result = await self.read(key, tables, lambda: self._list(principal, model, found, shown, sort, page,
                                                                    per_page, after, count))
        result = await self.view.page(principal, model, result)
        if plan is not None:
            result = {**result, "items": await self.view.expand(principal, model, plan, result["items"])}
        return result

    async def page(self, conn: asyncpg.Connection, principal: Principal, model: Model, found: BoundFilter | None,
                   fields: tuple[str, ...], sort: str | None, per_page: int) -> dict[str, Any]:
        """The first page records.list answers, read on `conn` (a subscription's snapshot), never from the cache."""
        return await self._list(principal, model, found, fields, sort, 1, per_page, None, False, conn)

    async def _list(self, principal: Principal, model: Model, found: BoundFilter | None, fields: tuple[str, ...],
                    sort: str | None, page: int, per_page: int, after: str | None, count: bool,
                    conn: asyncpg.Connection | None = None) -> dict[str, Any]:
        sql = self.sql(principal, model)
        terms = sort_terms(model, sort)
        search = ranked_search(terms, found)
        where = [sql.rule(rule_for(model, "list", principal)), sql.filter(found.node if found else None)]
        count_params = len(sql.params)
        count_where = " AND ".join(where)
        if after is not None:
            if page != 1:
                raise HaptaError(BAD_REQUEST, "use either page or after, not both")
            if search is not None:
                raise HaptaError(BAD_REQUEST, f"after cannot continue a sort by {RANK}; page through it with page")
            if not keyset_ready(model, terms):
                raise HaptaError(BAD_REQUEST, "after needs a sort over fields that are never null")
            where.append(after_condition(sql, terms, decode_cursor(model, terms, after)))
        order = _order_by(sql, terms, search)
        # the cursor's values (a sort by @rank has no cursor: keyset_ready)
        sort_keys = "".join(f', "{model.name}"."{n}" AS "__k{i}"' for i, (n, _) in enumerate(terms) if n != RANK)
        limit = sql.param(per_page + 1)
        offset = sql.param((page - 1) * per_page)
        statement = (f'SELECT {sql.select_list(fields)}{sort_keys} FROM "{model.name}" '
                     f'WHERE {" AND ".join(where)} ORDER BY {order} LIMIT {limit} OFFSET {offset}')

        async def run(conn: asyncpg.Connection) -> tuple[list[asyncpg.Record], int | None]:
            rows = await conn.fetch(statement, *sql.params)
            if not count:
                return rows, None
            return rows, await conn.fetchval(f'SELECT count(*) FROM "{model.name}" WHERE {count_where}',
                                             *sql.params[:count_params])

        rows, total = await (run(conn) if conn is not None else self.reads(lambda db: _on(db, run)))
        more = len(rows) > per_page
        rows = rows[:per_page]
        result: dict[str, Any] = {"items": [model.public(row_fields(r, fields)) for r in rows], "page": page,
                                  "per_page": per_page}
        if more and keyset_ready(model, terms):
            result["next"] = encode_cursor([rows[-1][f"__k{i}"] for i in range(len(terms))])
        if total is not None:
            result["total"] = total
        return result

    async def window(self, conn: asyncpg.Connection | None, principal: Principal, model: Model,
                     found: BoundFilter | None, fields: tuple[str, ...], terms: list[tuple[str, bool]],
                     size: int) -> list[asyncpg.Record]:
        """The first `size` records records.list lists (its rule, filter and order), never from the cache: a live
        query's window (live/window.py). Each row has `fields` as records.list gives them, its sort values as the
        order reads them (`__k<i>`: a guarded field as this reader's guard leaves it) and its version (`__v`)."""
        sql = self.sql(principal, model)
        where = [sql.rule(rule_for(model, "list", principal)), sql.filter(found.node if found else None)]
        keys = "".join(f', {sql.column(name)} AS "__k{i}"' for i, (name, _) in enumerate(terms))
        version = f'"{model.name}"."version"' if "version" in model.info.columns else "0"
        limit = sql.param(size)
        statement = (f'SELECT {sql.select_list(fields)}{keys}, {version} AS "__v" FROM "{model.name}" '
                     f'WHERE {" AND ".join(where)} ORDER BY {_order_by(sql, terms, None)} LIMIT {limit}')
        if conn is not None:
            return await conn.fetch(statement, *sql.params)
        return await self.db.fetch(statement, *sql.params)

    async def aggregate(self, principal: Principal, collection: str, *, filter: str | None,
                        request: aggregates.Aggregate) -> dict[str, Any]:
        """Counts, sums, averages, minima and maxima over what records.list would list (its rule, the filter bound
        as it binds it), through the read cache under the same kind of key. A collection whose before_send hook
        decides per record what a reader sees is for admins only here: an aggregate cannot honour it."""
        model = self.model(collection)
        rule = rule_for(model, "list", principal)
        aggregates.check(model, principal, request)
        if self.view.sends(model.name) and not principal.is_admin:
            raise HaptaError(FORBIDDEN, f"records.aggregate on {model.name} is for admins only: its before_send hook "
                             f"decides record by record what a reader sees")
        found = self.filter(principal, model, filter)
        key, tables = query_key(model, "list", principal, found, request.fields, ("aggregate", request))
        return await self.read(key, tables, lambda: self._aggregate(principal, model, rule, found, request))

    async def _aggregate(self, principal: Principal, model: Model, rule: Rule, found: BoundFilter | None,
                         request: aggregates.Aggregate) -> dict[str, Any]:
        sql = self.sql(principal, model)
        statement = aggregates.statement(sql, rule, found, request)
        return aggregates.groups(await self.reads(lambda db: db.fetch(statement, *sql.params)), request)

    async def get(self, principal: Principal, collection: str, record_id: str,
                  fields: list[str] | None, expand: list[str] | None = None) -> dict[str, Any]:
        """Through the read cache, like list: first under the key every non-admin shares (a record the rule shows
        to anyone, or to no one, is one entry for all readers), else under the reader's own; then before_send and
        `expand`, as list does."""
        model = self.model(collection)
        shown = self.fields(model, fields)
        plan = self.expansion(model, expand, shown)
        key_value = record_key(model, record_id)
        rest = ("get", str(key_value), shown)
        shared = anyone_key(model, principal, shown, rest)
        record = None
        if shared is not None:
            seen = await self.read(shared, (model.name,), lambda: self._get_for_anyone(model, key_value, shown))
            if seen["anyone"] is False:
                raise HaptaError(NOT_FOUND, f"no record {record_id} in {model.name}")
            record = seen.get("record")
        if record is None:
            key, tables = query_key(model, "view", principal, None, shown, rest)
            record = await self.read(key, tables, lambda: self._get(principal, model, key_value, shown))
        if self.view.sends(model.name):
            [record] = await self.view.sent(principal, model, [record]) or [None]
            if record is None:   # left out by before_send: as absent as a record the rules hide
                raise HaptaError(NOT_FOUND, f"no record {record_id} in {model.name}")
        if plan is not None:
            [record] = await self.view.expand(principal, model, plan, [record])
        return record

    async def _get_for_anyone(self, model: Model, record_id: Any, fields: tuple[str, ...]) -> dict[str, Any]:
        """A record read without its rule, and what the rule says of it for anyone (access.anyone_sees). Only a
        record every non-admin may see is kept with it: of the others nothing but the verdict."""
        columns = ", ".join(f'"{name}"' for name in sorted(set(fields) | rule_fields(model)))
        row = await self.reads(lambda db: db.fetchrow(f'SELECT {columns} FROM "{model.name}" WHERE "id" = $1',
                                                      record_id))
        record = None if row is None else dict(row)
        anyone = anyone_sees(model, record)
        if anyone is not True:
            return {"anyone": anyone}
        return {"anyone": True, "record": model.public({name: record[name] for name in fields})}

    async def _get(self, principal: Principal, model: Model, record_id: Any, fields: tuple[str, ...]) -> dict:
        sql = self.sql(principal, model)
        rule = sql.rule(rule_for(model, "view", principal))
        key = sql.param(record_id)
        statement = (f'SELECT {sql.select_list(fields)} FROM "{model.name}" WHERE "{model.name}"."id" = {key} '
                     f'AND {rule}')
        row = await self.reads(lambda db: db.fetchrow(statement, *sql.params))
        if row is None:   # absent or not viewable: the same answer, so that existence does not leak
            raise HaptaError(NOT_FOUND, f"no record {record_id} in {model.name}")
        return model.public(row_fields(row, fields))

    async def readable_field(self, principal: Principal, model: Model, record_id: str, field: str) -> Any:
        """One field of a record the principal may view (else NOT_FOUND, as get answers): a file field, for
        downloads and URLs."""
        sql = self.sql(principal, model)
        rule = sql.rule(rule_for(model, "view", principal))
        key = sql.param(record_key(model, record_id))
        row = await self.db.fetchrow(
            f'SELECT {sql.column(field)} AS "f" FROM "{model.name}" WHERE "{model.name}"."id" = {key} AND {rule}',
            *sql.params)
        if row is None:
            raise HaptaError(NOT_FOUND, f"no record {record_id} in {model.name}")
        return row["f"]


async def _on(db: Database, run: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    async with db.acquire() as conn:
        return await run(conn)
