"""records.* writes: create, update, delete and batch, each authorized by the collection's rules (access/).

A write checks the rule on the row as it stands before (update, delete) and as it is stored (create, update), with
the collection's hooks around them, so that nobody can write a record into a state they could not have created: a create
in one statement that judges itself and undoes itself when refused (access.Sql.judged: one round trip), an update
or delete in a transaction. Every identifier in the SQL comes from the catalog (models), every value is a
parameter.

Each write has one path, `create_in` / `update_in` / `delete_in` on a transaction's connection, that the single
ops and records.batch (many of them in one transaction, records/batch.py) share; `transact` holds the transaction,
the idempotency key's claim and answer (records/idempotency.py), and what must wait for COMMIT (after_* hooks).
The file ops use the same pieces (inspect_for_update, write_field): a file field is a field.
"""
from __future__ import annotations

from contextlib import nullcontext
from functools import partial
from typing import Any, Awaitable, Callable

import asyncpg

from ..access import JUDGED, Sql, refuse_judged, refuse_unless_allowed, rule_for
from ..hooks.api import Context
from ..hooks.service import Hooks
from ..models import AUTH_COLLECTION, Model, Rule
from ..principal import Peer, Principal
from ..protocol.errors import CONFLICT, FORBIDDEN, NOT_FOUND, HaptaError
from ..query.sql import PG_TYPES
from ..store.postgres import Database
from ..store.failures import failure
from .batch import failed_at, resolve_data, resolve_id
from .combine import Combiner
from .idempotency import Idempotency, Once
from .service import Records, row_fields
from .values import database_refusals, invalid, record_key, writable_data

# announce(session ids, reason): tell the sockets of sessions already revoked (auth/hub.py)
Announce = Callable[[list[str], str], Awaitable[None]]
# What a write leaves for after its COMMIT (after_* hooks, telling sockets): callbacks, awaited when coroutines
AfterCommit = list[Callable[[], Awaitable[None] | None]]


class Writes:
    def __init__(self, records: Records, db: Database, hooks: Hooks, announce: Announce,
                 uploads: Callable[..., Awaitable[tuple[dict[str, Any], dict[str, Any]]]] | None = None):
        self.records = records   # what a request names (models, fields, the principal's SQL, hooks' context)
        self.db = db
        self.hooks = hooks
        self.announce = announce
        self.idempotency = Idempotency()
        self.combiner = Combiner(db, records.schemas)
        # In a create's transaction: (data without its file fields, file field -> the uploaded files its
        # `{"upload": token}` items name), those uploads taken (files/streams.py, Streams.claim_uploads)
        # (an update passes the record as it stands: its files may be kept by `{"name": ...}`)
        self.uploads = uploads

    async def close(self) -> None:
        await self.combiner.close()

    async def create(self, peer: Peer, collection: str, data: dict[str, Any], once: Once | None = None
                     ) -> dict[str, Any]:
        model = self.records.model(collection)
        # One statement that judges itself and commits by itself (one round trip), unless it takes uploads
        if once is None and not names_uploads(data):
            later: AfterCommit = []
            record = await self.create_in(None, peer, model, data, later)
            await after_commit(later)
            return record
        return await self.transact(once, lambda conn, later: self.create_in(conn, peer, model, data, later))

    async def update(self, peer: Peer, collection: str, record_id: str, data: dict[str, Any],
                     version: int | None, once: Once | None = None) -> dict[str, Any]:
        model = self.records.model(collection)
        if once is None and not self.hooks.has(model.name, "before_update") and not names_uploads(data):
            return await self._update_combined(peer, model, record_id, data, version)
        return await self.transact(once, lambda conn, later: self.update_in(conn, peer, model, record_id, data,
                                                                            version, later), model)

    async def delete(self, peer: Peer, collection: str, record_id: str, once: Once | None = None) -> dict[str, Any]:
        model = self.records.model(collection)
        if once is None and not self.hooks.has(model.name, "before_delete") and model.name != AUTH_COLLECTION:
            return await self._delete_combined(peer, model, record_id)
        return await self.transact(once, lambda conn, later: self.delete_in(conn, peer, model, record_id, later),
                                   model, deleting=True)

    async def _update_combined(self, peer: Peer, model: Model, record_id: str, data: dict[str, Any],
                               version: int | None) -> dict[str, Any]:
        """An update with no hook before it and no key: with whatever other writes of the collection wait
        (combine.py), one statement that checks, writes and judges. What it cannot answer (its record not there
        for it as it stands, a refusal) it answers as update_in does, by running alone. An update that changes
        nothing, or expects a version a reader may not see plainly, runs as update_in runs it."""
        principal = peer.principal
        may = rule_for(model, "update", principal)
        key_value = record_key(model, record_id)
        changes = writable_data(model, data)
        if not changes or (version is not None and not _plain_version(model)):
            return await self.transact(None, lambda conn, later: self.update_in(conn, peer, model, record_id, data,
                                                                                version, later), model)
        rule = rule_for(model, "update", principal, changed=[*changes])

        async def alone() -> asyncpg.Record:
            with database_refusals(model):
                async with self.db.transaction() as conn:
                    current = await self.lock_for_write(conn, principal, model, key_value, "update")
                    check_version(model, record_id, current, version)
                    return await self._set(conn, principal, model, key_value, changes)
        row = await self.combiner.update(peer, principal, model, key_value, changes, version, may, rule, alone)
        record = row_fields(row, model.visible)
        if self.hooks.has(model.name, "after_update"):
            self.hooks.after(model.name, "after_update", self.records.context(peer, "records.update", model), record)
        return model.public(record)

    async def _delete_combined(self, peer: Peer, model: Model, record_id: str) -> dict[str, Any]:
        """A delete with no hook before it and no key, not of a user: as _update_combined."""
        principal = peer.principal
        may = rule_for(model, "delete", principal)
        key_value = record_key(model, record_id)

        async def alone() -> dict[str, Any]:
            with database_refusals(model, deleting=True):
                async with self.db.transaction() as conn:
                    current = await self.lock_for_write(conn, principal, model, key_value, "delete")
                    await conn.execute(f'DELETE FROM "{model.name}" WHERE "id" = $1', key_value)
            return current
        row = await self.combiner.delete(peer, principal, model, key_value, may, alone)
        if self.hooks.has(model.name, "after_delete"):
            self.hooks.after(model.name, "after_delete", self.records.context(peer, "records.delete", model),
                             row_fields(row, model.visible))
        return {"id": record_id}

    async def batch(self, peer: Peer, ops: list[Any], once: Once | None = None,
                    then: Callable[[asyncpg.Connection], Awaitable[None]] | None = None) -> dict[str, Any]:
        """Every op of a batch (records/batch.py: shapes and references already checked) in one transaction, each
        exactly as its single op runs it; the first failure rolls back all of them and is answered as that op's
        own error, naming its index. `then(conn)` runs last in the same transaction (what the batch publishes:
        live.channels.Held.write, after its changes). After-commit work (after_* hooks) runs once everything
        committed. A key already answered runs none of it."""
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
            if then is not None:
                await then(conn)
            return {"results": results}
        return await self.transact(once, run)

    async def _step(self, conn: asyncpg.Connection, peer: Peer, step: Any, results: list[dict[str, Any]],
                    later: AfterCommit) -> dict[str, Any]:
        model = self.records.model(step.collection)
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
        files: dict[str, Any] = {}
        if conn is not None and self.uploads is not None and names_uploads(data):
            data, files = await self.uploads(conn, principal, model, data)
        values = writable_data(model, data)
        hooked = self.hooks.has(model.name, "before_create"), self.hooks.has(model.name, "after_create")
        ctx = self.records.context(peer, "records.create", model, conn) if any(hooked) else None
        if hooked[0]:
            changed = await self.hooks.before(model.name, "before_create", ctx, dict(values))
            if changed is not None:
                values = writable_data(model, changed)
        values.update(files)   # the uploads it named: judged with the record, stored with it or not at all
        missing = [n for n in model.required() if n not in values]
        if missing:
            raise invalid(missing[0], f"{missing[0]} is required")
        if conn is None:   # by itself: with whatever other creates of this collection wait (combine.py)
            row = await self.combiner.create(peer, principal, model, rule, values,
                                             partial(self.insert, None, principal, model, rule))
        else:
            row = await self.insert(conn, principal, model, rule, values)
        record = row_fields(row, model.visible)
        if hooked[1]:
            later.append(partial(self.hooks.after, model.name, "after_create", ctx, record))
        return model.public(record)

    async def insert(self, conn: asyncpg.Connection | None, principal: Principal, model: Model, rule: Rule,
                     values: dict[str, Any]) -> asyncpg.Record:
        """One create's INSERT, judged in the statement (on `conn`, in its transaction; None: by itself)."""
        sql = self.records.sql(principal, model)
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
                        return await self.db.write(statement, *sql.params)
                    if savepoint:
                        async with conn.transaction():
                            return await conn.fetchrow(statement, *sql.params)
                    return await conn.fetchrow(statement, *sql.params)
                except asyncpg.PostgresError as exc:
                    if exc.sqlstate not in JUDGED:
                        raise
                    raise refuse_judged(exc, model, relations, "create") from None
        except HaptaError as error:
            if error.code == CONFLICT and not principal.is_admin:
                await self._refuse_rather_than_conflict(conn, principal, model, rule, values)
            raise

    async def _refuse_rather_than_conflict(self, conn: asyncpg.Connection | None, principal: Principal,
                                           model: Model, rule: Rule, data: dict[str, Any]) -> None:
        """A unique value is "taken" only for someone who could have written the record: otherwise the conflict
        itself is the oracle (a like by alice on a post bob may not see). The insert failed before its checks
        ran, so they run here on the record as given (columns it leaves out read as null, which can only refuse
        more); the refusal they make is raised, and if there is none the conflict stands."""
        sql = self.records.sql(principal, model)
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
        sql = self.records.sql(principal, model)
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
        return row_fields(row, model.visible)

    async def inspect_for_update(self, peer: Peer, op: str, model: Model, record_id: str,
                                 inspect: Callable[[dict[str, Any], Context], Awaitable[None]]) -> None:
        """Lock the record as an update would (the principal must see it and may update it) and run
        inspect(record, ctx) in that transaction, its hooks' ctx.sql too: what a file upload checks before it
        starts. `inspect` raises to refuse."""
        rule_for(model, "update", peer.principal)
        key_value = record_key(model, record_id)
        async with self.db.transaction() as conn:
            current = await self.lock_for_write(conn, peer.principal, model, key_value, "update")
            await inspect(current, self.records.context(peer, op, model, conn))

    async def update_in(self, conn: asyncpg.Connection, peer: Peer, model: Model, record_id: str,
                        data: dict[str, Any], version: int | None, later: AfterCommit) -> dict[str, Any]:
        """An update on `conn`, in its transaction."""
        principal = peer.principal
        rule_for(model, "update", principal)
        key_value = record_key(model, record_id)
        uploading = self.uploads is not None and names_uploads(data)
        changes = writable_data(model, {k: v for k, v in data.items() if k not in model.file_fields} if uploading
                                else data)
        with database_refusals(model):
            ctx = self.records.context(peer, "records.update", model, conn)
            current = await self.lock_for_write(conn, principal, model, key_value, "update")
            check_version(model, record_id, current, version)
            files: dict[str, Any] = {}
            if uploading:
                assert self.uploads is not None
                _, files = await self.uploads(conn, principal, model, data, current)
            if self.hooks.has(model.name, "before_update"):
                changed = await self.hooks.before(model.name, "before_update", ctx, dict(current), dict(changes))
                if changed is not None:
                    changes = writable_data(model, changed)
            changes.update(files)   # the field as named: kept files and uploads, judged and stored together
            if not changes:
                return model.public(current)
            row = await self._set(conn, principal, model, key_value, changes)
        record = row_fields(row, model.visible)
        later.append(partial(self.hooks.after, model.name, "after_update", ctx, record))
        return model.public(record)

    async def _set(self, conn: asyncpg.Connection, principal: Principal, model: Model, key_value: Any,
                   changes: dict[str, Any]) -> asyncpg.Record:
        """An update's UPDATE of a record locked and checked as it stood, judged as it is stored."""
        sql = self.records.sql(principal, model)
        assignments = ", ".join(f'"{n}" = {sql.param(v)}' for n, v in changes.items())
        update = f'UPDATE "{model.name}" SET {assignments} WHERE "{model.name}"."id" = {sql.param(key_value)}'
        return await self.checked_write(conn, principal, model, sql, update,
                                        rule_for(model, "update", principal, changed=[*changes]),
                                        list(changes), "update")

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
                sql = self.records.sql(principal, model)
                assignment, key = sql.param(files), sql.param(record_id)
                row = await self.checked_write(
                    conn, principal, model, sql,
                    f'UPDATE "{model.name}" SET "{field}" = {assignment} WHERE "{model.name}"."id" = {key}',
                    rule, [field], "update")
        record = row_fields(row, model.visible)
        self.hooks.after(model.name, "after_update", self.records.context(peer, op, model), record)
        return model.public(record)

    async def delete_in(self, conn: asyncpg.Connection, peer: Peer, model: Model, record_id: str,
                        later: AfterCommit, version: int | None = None) -> dict[str, Any]:
        """A delete on `conn`, in its transaction (`version`: only a batch may say which it expects)."""
        principal = peer.principal
        rule_for(model, "delete", principal)
        key_value = record_key(model, record_id)
        with database_refusals(model, deleting=True):
            ctx = self.records.context(peer, "records.delete", model, conn)
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


def names_uploads(data: Any) -> bool:
    """Whether a create names finished uploads (`{"field": [{"upload": token}, ...]}`): it then runs in a
    transaction that takes them (Writes.uploads)."""
    return isinstance(data, dict) and any(
        isinstance(v, list) and any(isinstance(f, dict) and "upload" in f for f in v) for v in data.values())


def _plain_version(model: Model) -> bool:
    """Whether a record's version reads the same to every writer (visible, unguarded), as the combined statement
    compares it: otherwise check_version compares what the writer reads (NULL through a guard)."""
    return "version" in model.visible and model.table.fields["version"].guard is None


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
