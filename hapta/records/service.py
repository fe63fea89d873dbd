"""records.*: reads and writes on the app's collections, each authorized by the collection's rules (access/).

Reads put the rule into the query's WHERE clause and go through the read cache. Writes check the rule on the row as
it stands before (update, delete) and as it is stored (create, update), with the rules' hooks around them, so that
nobody can write a record into a state they could not have created: a create in one statement that judges itself
and undoes itself when refused (access.Sql.judged: one round trip), an update or delete in a transaction. Every
identifier in the SQL comes from the catalog (models), every value is a parameter.

Each write has one path, `create_in` / `update_in` / `delete_in` on a transaction's connection, that the single
ops and records.batch (many of them in one transaction, records/batch.py) share; `transact` holds the transaction,
the idempotency key's claim and answer (records/idempotency.py), and what must wait for COMMIT (after_* hooks).

The file ops use the same pieces (lock_for_write, the checked write, readable_field): a file field is a field.
"""
from __future__ import annotations

from contextlib import nullcontext
from functools import partial
from typing import Any, Awaitable, Callable

import asyncpg

from ..access import (JUDGED, BoundFilter, Schemas, Sql, anyone_key, anyone_sees, client_filter, query_key,
                      refuse_judged, refuse_unless_allowed, rule_for, rule_fields)
from ..hooks.api import Context
from ..hooks.service import Hooks
from ..models import Model, Rule
from ..principal import Peer, Principal
from ..protocol.errors import BAD_REQUEST, CONFLICT, FORBIDDEN, NOT_FOUND, HaptaError
from ..query.sql import PG_TYPES
from ..store.postgres import Database, failure
from . import aggregate as aggregates
from .batch import failed_at, resolve_data, resolve_id
from .cursors import RANK, after_condition, decode_cursor, encode_cursor, keyset_ready, ranked_search, sort_terms
from .expand import Plan, ReadThrough, plan_of
from .view import RecordView
from .idempotency import Idempotency, Once
from .values import database_refusals, invalid, record_key, writable_data

# announce(session ids, reason): tell the sockets of sessions already revoked (auth/hub.py)
Announce = Callable[[list[str], str], Awaitable[None]]
# What a write leaves for after its COMMIT (after_* hooks, telling sockets): callbacks, awaited when coroutines
AfterCommit = list[Callable[[], Awaitable[None] | None]]


def _record(row: asyncpg.Record, fields: tuple[str, ...]) -> dict[str, Any]:
    return {name: row[name] for name in fields}


class Records:
    def __init__(self, db: Database, models: dict[str, Model], schemas: Schemas, hooks: Hooks, view: RecordView,
                 read: ReadThrough, announce: Announce, max_filter_cost: int):
        self.db = db
        self.models = models
        self.schemas = schemas
        self.hooks = hooks
        self.view = view         # before_send and expand: how records leave for one reader (records/view.py)
        self.read = read
        self.announce = announce
        self.max_filter_cost = max_filter_cost
        self.idempotency = Idempotency()

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
        order = ", ".join(f'{sql.rank(search) if n == RANK else sql.column(n)} {"DESC" if d else "ASC"}'
                          for n, d in terms)
        # the cursor's values (a sort by @rank has no cursor: keyset_ready)
        sort_keys = "".join(f', "{model.name}"."{n}" AS "__k{i}"' for i, (n, _) in enumerate(terms) if n != RANK)
        limit = sql.param(per_page + 1)
        offset = sql.param((page - 1) * per_page)
        statement = (f'SELECT {sql.select_list(fields)}{sort_keys} FROM "{model.name}" '
                     f'WHERE {" AND ".join(where)} ORDER BY {order} LIMIT {limit} OFFSET {offset}')
        async with nullcontext(conn) if conn is not None else self.db.acquire() as conn:
            rows = await conn.fetch(statement, *sql.params)
            total = None
            if count:
                total = await conn.fetchval(f'SELECT count(*) FROM "{model.name}" WHERE {count_where}',
                                            *sql.params[:count_params])
        more = len(rows) > per_page
        rows = rows[:per_page]
        result: dict[str, Any] = {"items": [model.public(_record(r, fields)) for r in rows], "page": page,
                                  "per_page": per_page}
        if more and keyset_ready(model, terms):
            result["next"] = encode_cursor([rows[-1][f"__k{i}"] for i in range(len(terms))])
        if total is not None:
            result["total"] = total
        return result

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
        return aggregates.groups(await self.db.fetch(statement, *sql.params), request)

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
        row = await self.db.fetchrow(f'SELECT {columns} FROM "{model.name}" WHERE "id" = $1', record_id)
        record = None if row is None else dict(row)
        anyone = anyone_sees(model, record)
        if anyone is not True:
            return {"anyone": anyone}
        return {"anyone": True, "record": model.public({name: record[name] for name in fields})}

    async def _get(self, principal: Principal, model: Model, record_id: Any, fields: tuple[str, ...]) -> dict:
        sql = self.sql(principal, model)
        rule = sql.rule(rule_for(model, "view", principal))
        key = sql.param(record_id)
        row = await self.db.fetchrow(
            f'SELECT {sql.select_list(fields)} FROM "{model.name}" WHERE "{model.name}"."id" = {key} AND {rule}',
            *sql.params)
        if row is None:   # absent or not viewable: the same answer, so that existence does not leak
            raise HaptaError(NOT_FOUND, f"no record {record_id} in {model.name}")
        return model.public(_record(row, fields))

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

    # ---- writes ----

    async def create(self, peer: Peer, collection: str, data: dict[str, Any], once: Once | None = None
                     ) -> dict[str, Any]:
        model = self.model(collection)
        if once is None:   # one statement that judges itself and commits by itself: one round trip
            later: AfterCommit = []
            record = await self.create_in(None, peer, model, data, later)
            await after_commit(later)
            return record
        return await self.transact(once, lambda conn, later: self.create_in(conn, peer, model, data, later))

    async def update(self, peer: Peer, collection: str, record_id: str, data: dict[str, Any],
                     version: int | None, once: Once | None = None) -> dict[str, Any]:
        model = self.model(collection)
        return await self.transact(once, lambda conn, later: self.update_in(conn, peer, model, record_id, data,
                                                                            version, later), model)

    async def delete(self, peer: Peer, collection: str, record_id: str, once: Once | None = None) -> dict[str, Any]:
        model = self.model(collection)
        return await self.transact(once, lambda conn, later: self.delete_in(conn, peer, model, record_id, later),
                                   model, deleting=True)

    async def batch(self, peer: Peer, ops: list[Any], once: Once | None = None) -> dict[str, Any]:
        """Every op of a batch (records/batch.py: shapes and references already checked) in one transaction, each
        exactly as its single op runs it; the first failure rolls back all of them and is answered as that op's
        own error, naming its index. After-commit work (after_* hooks) runs once everything committed."""
        async def run(conn: asyncpg.Connection, later: AfterCommit) -> dict[str, Any]:
            results: list[dict[str, Any]] = []
            for index, step in enumerate(ops):
                try:
                    results.append(await self._step(conn, peer, step, results, later))
                except Exception as exc:
                    mapped = failure(exc)
                    if mapped is None:
                        raise   # a bug of ours: INTERNAL, as for a single op
                    raise failed_at(index, step, mapped) from None
            return {"results": results}
        return await self.transact(once, run)

    async def _step(self, conn: asyncpg.Connection, peer: Peer, step: Any, results: list[dict[str, Any]],
                    later: AfterCommit) -> dict[str, Any]:
        model = self.model(step.collection)
        if step.op == "create":
            return await self.create_in(conn, peer, model, resolve_data(step.data, results), later)
        record_id = resolve_id(step.id, results)
        if step.op == "update":
            return await self.update_in(conn, peer, model, record_id, resolve_data(step.data, results),
                                        step.version, later)
        return await self.delete_in(conn, peer, model, record_id, later, step.version)

    async def transact(self, once: Once | None, steps: Callable[[asyncpg.Connection, AfterCommit], Awaitable[Any]],
                       model: Model | None = None, deleting: bool = False) -> Any:
        """steps(conn, later) in one transaction, with the idempotency key's claim and answer in it when there is
        one (a key already answered: that answer, and nothing runs); then what `later` holds, after COMMIT.
        `model`: whose constraints name the fields of what fails at COMMIT (a single op's)."""
        later: AfterCommit = []
        with database_refusals(model, deleting=deleting) if model is not None else nullcontext():
            async with self.db.transaction() as conn:
                if once is not None:
                    stored = await self.idempotency.claim(conn, once)
                    if stored is not None:
                        return stored[0]
                reply = await steps(conn, later)
                if once is not None:
                    await self.idempotency.keep(conn, once, reply)
        await after_commit(later)
        return reply

    async def create_in(self, conn: asyncpg.Connection | None, peer: Peer, model: Model, data: dict[str, Any],
                        later: AfterCommit) -> dict[str, Any]:
        """A create on `conn`, in its transaction (None: the one statement commits by itself)."""
        principal = peer.principal
        rule = rule_for(model, "create", principal)
        values = writable_data(model, data)
        ctx = self.context(peer, "records.create", model, conn)
        if self.hooks.has(model.name, "before_create"):
            changed = await self.hooks.before(model.name, "before_create", ctx, dict(values))
            if changed is not None:
                values = writable_data(model, changed)
        missing = [n for n in model.required() if n not in values]
        if missing:
            raise invalid(missing[0], f"{missing[0]} is required")
        sql = self.sql(principal, model)
        columns = ", ".join(f'"{n}"' for n in values)
        params = ", ".join(sql.param(v) for v in values.values())
        insert = (f'INSERT INTO "{model.name}" ({columns}) VALUES ({params})' if values
                  else f'INSERT INTO "{model.name}" DEFAULT VALUES')
        statement, relations = sql.judged(insert, rule, list(values))
        # In a transaction a conflict aborts it, and its checks (below) could not run: a savepoint keeps it usable.
        savepoint = conn is not None and not principal.is_admin and bool(model.info.uniques)
        try:
            with database_refusals(model):
                try:
                    if conn is None:
                        row = await self.db.write(statement, *sql.params)
                    elif savepoint:
                        async with conn.transaction():
                            row = await conn.fetchrow(statement, *sql.params)
                    else:
                        row = await conn.fetchrow(statement, *sql.params)
                except asyncpg.PostgresError as exc:
                    if exc.sqlstate not in JUDGED:
                        raise
                    raise refuse_judged(exc, model, relations, "create") from None
        except HaptaError as error:
            if error.code == CONFLICT and not principal.is_admin:
                await self._refuse_rather_than_conflict(conn, principal, model, rule, values)
            raise
        record = _record(row, model.visible)
        later.append(partial(self.hooks.after, model.name, "after_create", ctx, record))
        return model.public(record)

    async def _refuse_rather_than_conflict(self, conn: asyncpg.Connection | None, principal: Principal,
                                           model: Model, rule: Rule, data: dict[str, Any]) -> None:
        """A unique value is "taken" only for someone who could have written the record: otherwise the conflict
        itself is the oracle (a like by alice on a post bob may not see). The insert failed before its checks
        ran, so they run here on the record as given (columns it leaves out read as null, which can only refuse
        more); the refusal they make is raised, and if there is none the conflict stands."""
        sql = self.sql(principal, model)
        columns = ", ".join(f'{sql.param(data[n]) if n in data else "NULL"}::{PG_TYPES[model.info.columns[n].kind]} '
                            f'AS "{n}"' for n in model.visible)
        checks, relations = sql.write_checks(rule, list(data))
        check = f'SELECT {checks} FROM (SELECT {columns}) AS "{model.name}"'
        row = await (conn.fetchrow(check, *sql.params) if conn is not None else self.db.fetchrow(check, *sql.params))
        refuse_unless_allowed(row, model, relations, "create")

    @staticmethod
    async def checked_write(conn: asyncpg.Connection, principal: Principal, model: Model, sql: Sql, write: str,
                            rule: Rule, written: list[str], op: str) -> asyncpg.Record:
        """Run an INSERT or UPDATE (`write`, its parameters in `sql`) and judge the row as stored (defaults and
        triggers included) by access.Sql.write_checks: the rule, and every relation written pointing at a record
        the principal may view. A refusal raises, and the caller's transaction rolls the write back."""
        checks, relations = sql.write_checks(rule, written)
        row = await conn.fetchrow(f'WITH "__w" AS ({write} RETURNING *) SELECT {sql.select_list(model.visible)}, '
                                  f'{checks} FROM "__w" AS "{model.name}"', *sql.params)
        refuse_unless_allowed(row, model, relations, op)
        return row

    async def lock_for_write(self, conn: asyncpg.Connection, principal: Principal, model: Model, record_id: Any,
                             op: str) -> dict[str, Any]:
        """Lock the row and check that the principal may see it and may `op` it; return the record."""
        sql = self.sql(principal, model)
        view = sql.rule(rule_for(model, "view", principal)) \
            if model.rules["view"] is not None or principal.is_admin else "false"
        may = sql.rule(rule_for(model, op, principal))
        key = sql.param(record_id)
        row = await conn.fetchrow(
            f'SELECT {sql.select_list(model.visible)}, {view} AS "__view", {may} AS "__may" '
            f'FROM "{model.name}" WHERE "{model.name}"."id" = {key} FOR UPDATE', *sql.params)
        if row is None or (row["__view"] is not True and row["__may"] is not True):
            raise HaptaError(NOT_FOUND, f"no record {record_id} in {model.name}")
        if row["__may"] is not True:
            raise HaptaError(FORBIDDEN, f"the {op} rule of {model.name} does not allow this")
        return _record(row, model.visible)

    async def inspect_for_update(self, peer: Peer, op: str, model: Model, record_id: str,
                                 inspect: Callable[[dict[str, Any], Context], Awaitable[None]]) -> None:
        """Lock the record as an update would (the principal must see it and may update it) and run
        inspect(record, ctx) in that transaction, its hooks' ctx.sql too: what a file upload checks before it
        starts. `inspect` raises to refuse."""
        rule_for(model, "update", peer.principal)
        key_value = record_key(model, record_id)
        async with self.db.transaction() as conn:
            current = await self.lock_for_write(conn, peer.principal, model, key_value, "update")
            await inspect(current, self.context(peer, op, model, conn))

    async def update_in(self, conn: asyncpg.Connection, peer: Peer, model: Model, record_id: str,
                        data: dict[str, Any], version: int | None, later: AfterCommit) -> dict[str, Any]:
        """An update on `conn`, in its transaction."""
        principal = peer.principal
        rule_for(model, "update", principal)
        key_value = record_key(model, record_id)
        changes = writable_data(model, data)
        with database_refusals(model):
            ctx = self.context(peer, "records.update", model, conn)
            current = await self.lock_for_write(conn, principal, model, key_value, "update")
            check_version(model, record_id, current, version)
            if self.hooks.has(model.name, "before_update"):
                changed = await self.hooks.before(model.name, "before_update", ctx, dict(current), dict(changes))
                if changed is not None:
                    changes = writable_data(model, changed)
            if not changes:
                return model.public(current)
            sql = self.sql(principal, model)
            assignments = ", ".join(f'"{n}" = {sql.param(v)}' for n, v in changes.items())
            update = f'UPDATE "{model.name}" SET {assignments} WHERE "{model.name}"."id" = {sql.param(key_value)}'
            row = await self.checked_write(conn, principal, model, sql, update,
                                           rule_for(model, "update", principal, changed=[*changes]),
                                           list(changes), "update")
        record = _record(row, model.visible)
        later.append(partial(self.hooks.after, model.name, "after_update", ctx, record))
        return model.public(record)

    async def write_field(self, peer: Peer, op: str, model: Model, record_id: Any, field: str,
                          change: Callable[[asyncpg.Connection, list[dict[str, Any]]], Awaitable[list]]) -> dict:
        """Lock the record under its update rule, set `field` to change(conn, its files) in one transaction (the
        version goes up, the release trigger frees what was dropped), judge the result; return it. `change` may
        raise to refuse; it runs inside the transaction, with the lock held."""
        principal = peer.principal
        rule = rule_for(model, "update", principal, changed=[field])
        with database_refusals(model):
            async with self.db.transaction() as conn:
                current = await self.lock_for_write(conn, principal, model, record_id, "update")
                value = current.get(field)
                files = await change(conn, [f for f in value if isinstance(f, dict)] if isinstance(value, list)
                                     else [])
                sql = self.sql(principal, model)
                assignment, key = sql.param(files), sql.param(record_id)
                row = await self.checked_write(
                    conn, principal, model, sql,
                    f'UPDATE "{model.name}" SET "{field}" = {assignment} WHERE "{model.name}"."id" = {key}',
                    rule, [field], "update")
        record = _record(row, model.visible)
        self.hooks.after(model.name, "after_update", self.context(peer, op, model), record)
        return model.public(record)

    async def delete_in(self, conn: asyncpg.Connection, peer: Peer, model: Model, record_id: str,
                        later: AfterCommit, version: int | None = None) -> dict[str, Any]:
        """A delete on `conn`, in its transaction (`version`: only a batch may say which it expects)."""
        principal = peer.principal
        rule_for(model, "delete", principal)
        key_value = record_key(model, record_id)
        with database_refusals(model, deleting=True):
            ctx = self.context(peer, "records.delete", model, conn)
            current = await self.lock_for_write(conn, principal, model, key_value, "delete")
            check_version(model, record_id, current, version)
            await self.hooks.before(model.name, "before_delete", ctx, dict(current))
            # A deleted user's sessions go with the row (ON DELETE CASCADE); their sockets must hear of it.
            ended = await conn.fetch("SELECT id FROM hapta.sessions WHERE user_id = $1 AND revoked_at IS NULL",
                                     key_value) if model.name == "users" else []
            await conn.execute(f'DELETE FROM "{model.name}" WHERE "id" = $1', key_value)
        if ended:
            later.append(partial(self.announce, [row["id"] for row in ended], "user deleted"))
        later.append(partial(self.hooks.after, model.name, "after_delete", ctx, current))
        return {"id": record_id}


def check_version(model: Model, record_id: str, current: dict[str, Any], version: int | None) -> None:
    """A write that names the version it expects finds the record there, or CONFLICT (the version it is at)."""
    if version is not None and current.get("version") != version:
        raise HaptaError(CONFLICT, f"{model.name} {record_id} is at version {current.get('version')}",
                         details={"version": current.get("version")})


async def after_commit(later: AfterCommit) -> None:
    """What had to wait for COMMIT, in the order the writes asked for it."""
    for callback in later:
        pending = callback()
        if pending is not None:
            await pending
