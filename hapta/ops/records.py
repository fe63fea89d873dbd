"""records.*: reads and writes on the app's collections, each one authorized by the collection's rule.

Reads put the rule into the query's WHERE clause. Writes happen in a transaction that checks the rule on the row
as it stands before (update, delete) and as it would be stored (create, update), so that nobody can write a
record into a state they could not have created. Every identifier in the SQL comes from the catalog (models),
every value is a parameter.
"""
from __future__ import annotations

import base64
import binascii
import math
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Annotated, Any, Iterator

import asyncpg
import msgspec

from ..cache import BoundFilter, bound_filter, query_key
from ..auth.accounts import InvalidIdentity, normalize_username
from ..models import AUTH_COLLECTION, EVERYONE, Model, Rule
from ..protocol.codec import MAX_NESTING, nesting
from ..protocol.errors import (BAD_REQUEST, CONFLICT, FORBIDDEN, NOT_FOUND, TOO_LARGE, VALIDATION_FAILED,
                               HaptaError)
from ..query import FilterError, bind, to_sql
from ..query.ast import CONTAINS_COST, RELATION_COST, Compare, Field, Literal, Node
from ..query.sql import PG_TYPES
from ..query.values import in_utc
from ..query import schema as kinds
from ..rules import Context
from .base import Args, Call, op

Name = Annotated[str, msgspec.Meta(max_length=63)]
RecordId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
MAX_SORT_TERMS = 8
INT64 = (-(2**63), 2**63 - 1)


class ListArgs(Args):
    collection: Name
    filter: Annotated[str, msgspec.Meta(max_length=4096)] | None = None
    sort: Annotated[str, msgspec.Meta(max_length=512)] | None = None
    page: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1
    per_page: Annotated[int, msgspec.Meta(ge=1, le=500)] = 30
    after: Annotated[str, msgspec.Meta(max_length=4096)] | None = None
    fields: Annotated[list[Name], msgspec.Meta(max_length=100)] | None = None
    count: bool = False


class GetArgs(Args):
    collection: Name
    id: RecordId
    fields: Annotated[list[Name], msgspec.Meta(max_length=100)] | None = None


class CreateArgs(Args):
    collection: Name
    data: dict[str, Any]


class UpdateArgs(Args):
    collection: Name
    id: RecordId
    data: dict[str, Any]
    version: Annotated[int, msgspec.Meta(ge=0, le=INT64[1])] | None = None


class DeleteArgs(Args):
    collection: Name
    id: RecordId


# ---- authorization and SQL pieces -------------------------------------------------------------------------

def _model(call: Call, name: str) -> Model:
    model = call.gateway.models.get(name)
    if model is None:
        raise HaptaError(NOT_FOUND, f"no collection {name}")
    return model


def _rule(call: Call, model: Model, rule_op: str, *, changed: list[str] | None = None) -> Rule:
    """The condition this principal's `rule_op` must meet; EVERYONE when none. Admins bypass rules. `changed`: for
    "update", the fields it writes, and the rule is what the record must satisfy once updated (Model.update_rule)."""
    if call.principal.is_admin:
        return EVERYONE
    rule = model.rules[rule_op]
    if rule is None:
        raise HaptaError(FORBIDDEN, f"{rule_op} on {model.name} is for admins only")
    return model.update_rule(changed) if changed is not None else rule


class Sql:
    """Builds one statement's text and parameters for one model and principal."""

    def __init__(self, call: Call, model: Model):
        self.model = model
        self.admin = call.principal.is_admin
        # Admins filter on guarded columns as they are; everyone else through the guards.
        self.schema = call.gateway.admin_schema if self.admin else call.gateway.schema
        self.table = self.schema.tables[model.name]
        self.vars = call.principal.rule_vars()
        self.params: list[Any] = []

    def param(self, value: Any) -> str:
        self.params.append(value)
        return f"${len(self.params)}"

    def rule(self, rule: Rule | Any) -> str:
        if rule is EVERYONE:
            return "true"
        return f"({to_sql(rule, self.model.table, self.schema, self.vars, self.params)})"

    def column(self, name: str, table: str | None = None) -> str:
        """A readable column: guarded fields read as NULL where their guard does not hold."""
        ref = f'"{table or self.model.name}"."{name}"'
        guard = self.model.table.fields[name].guard
        if guard is None or self.admin:
            return ref
        return f"(CASE WHEN {self.rule(guard)} THEN {ref} END)"

    def select_list(self, fields: list[str] | tuple[str, ...]) -> str:
        return ", ".join(f'{self.column(name)} AS "{name}"' for name in fields)


def _fields(model: Model, requested: list[str] | None) -> tuple[str, ...]:
    if requested is None:
        return model.visible
    unknown = [f for f in requested if f not in model.table.fields]
    if unknown:
        raise HaptaError(BAD_REQUEST, f"unknown field {unknown[0]!r} in fields")
    return tuple(dict.fromkeys(requested))


def client_filter(call: Call, model: Model, text: str | None) -> BoundFilter | None:
    """A client's filter on `model`, bound once (for admins against the schema as they see it: no guards, every
    relation open), and held to App.max_filter_cost before it can reach SQL."""
    schema = call.gateway.admin_schema if call.principal.is_admin else call.gateway.schema
    try:
        found = bound_filter(model, schema, text)
    except FilterError as exc:
        raise HaptaError(BAD_REQUEST, f"filter: {exc}") from None
    limit = call.gateway.app.max_filter_cost
    if found is not None and found.cost > limit:
        raise HaptaError(TOO_LARGE, f"filter costs {found.cost} units, more than the {limit} allowed (a comparison "
                         f"is 1, a relation step {RELATION_COST} more, '~' {CONTAINS_COST} more)",
                         details={"cost": found.cost, "limit": limit})
    return found


def _filter(sql: Sql, found: BoundFilter | None) -> str:
    if found is None:
        return "true"
    return f"({to_sql(found.node, sql.table, sql.schema, sql.vars, sql.params)})"


def _sort_terms(model: Model, text: str | None) -> list[tuple[str, bool]]:
    """[(field, descending)], always ending with id so that the order is total (keyset needs that)."""
    terms: list[tuple[str, bool]] = []
    for part in (text or "-created").split(","):
        part = part.strip()
        if not part:
            continue
        descending = part.startswith("-")
        name = part.lstrip("+-")
        field = model.table.fields.get(name)
        if field is None or field.kind == kinds.JSON:
            raise HaptaError(BAD_REQUEST, f"cannot sort by {name!r}")
        if name in (t[0] for t in terms):
            raise HaptaError(BAD_REQUEST, f"{name!r} appears twice in sort")
        terms.append((name, descending))
    if len(terms) > MAX_SORT_TERMS:
        raise HaptaError(BAD_REQUEST, f"sort takes at most {MAX_SORT_TERMS} fields")
    if "id" not in (t[0] for t in terms):
        terms.append(("id", False))
    return terms


def _keyset_ready(model: Model, terms: list[tuple[str, bool]]) -> bool:
    """Keyset paging compares tuples; it is exact only over columns that are never NULL."""
    return all(not model.info.columns[n].nullable and model.table.fields[n].guard is None for n, _ in terms)


def _encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(values)).decode().rstrip("=")


def _decode_cursor(model: Model, terms: list[tuple[str, bool]], cursor: str) -> list[Any]:
    try:
        values = msgspec.json.decode(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise HaptaError(BAD_REQUEST, "after is not a cursor from this query") from None
    if not isinstance(values, list) or len(values) != len(terms):
        raise HaptaError(BAD_REQUEST, "after is not a cursor from this query")
    try:
        return [_coerce(model, name, value) for (name, _), value in zip(terms, values)]
    except HaptaError:
        raise HaptaError(BAD_REQUEST, "after is not a cursor from this query") from None


def _after_condition(sql: Sql, terms: list[tuple[str, bool]], values: list[Any]) -> str:
    """(a, b, id) strictly after the cursor, each column in its own direction: an OR of prefixes."""
    alternatives = []
    for i, (name, descending) in enumerate(terms):
        parts = [f'"{sql.model.name}"."{n}" = {sql.param(v)}' for (n, _), v in zip(terms[:i], values[:i])]
        parts.append(f'"{sql.model.name}"."{name}" {"<" if descending else ">"} {sql.param(values[i])}')
        alternatives.append("(" + " AND ".join(parts) + ")")
    return "(" + " OR ".join(alternatives) + ")"


# ---- values from clients ------------------------------------------------------------------------------------

def _invalid(field: str, message: str) -> HaptaError:
    return HaptaError(VALIDATION_FAILED, message, details={"field": field})


def _coerce(model: Model, name: str, value: Any) -> Any:
    """Check a client's value against the column and convert it to what asyncpg expects."""
    column = model.info.columns[name]
    if value is None:
        if not column.nullable:
            raise _invalid(name, f"{name} may not be null")
        return None
    kind = column.kind
    if kind == kinds.TEXT:
        if not isinstance(value, str):
            raise _invalid(name, f"{name} must be a string")
        if "\x00" in value:
            raise _invalid(name, f"{name} may not contain NUL characters")
        return value
    if kind == kinds.INT:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _invalid(name, f"{name} must be an integer")
        if not INT64[0] <= value <= INT64[1]:
            raise _invalid(name, f"{name} is out of range")
        return value
    if kind == kinds.FLOAT:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _invalid(name, f"{name} must be a finite number")
        return float(value)
    if kind == kinds.BOOL:
        if not isinstance(value, bool):
            raise _invalid(name, f"{name} must be true or false")
        return value
    if kind == kinds.TIMESTAMP:
        try:   # a datetime: a MessagePack timestamp, or a value a rule hook passed back
            moment = value if isinstance(value, datetime) else \
                msgspec.convert(value, datetime) if isinstance(value, str) else None
        except msgspec.ValidationError:
            moment = None
        if moment is None:
            raise _invalid(name, f"{name} must be an ISO 8601 timestamp")
        moment = in_utc(moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc))
        if moment is None:
            raise _invalid(name, f"{name} is out of range (years 1 to 9999, in UTC)")
        return moment
    if kind == kinds.UUID:
        try:
            return uuid.UUID(value) if isinstance(value, str) else uuid.UUID(int=-1)
        except ValueError:
            raise _invalid(name, f"{name} must be a UUID") from None
    if kind == kinds.JSON:
        if nesting(value) > MAX_NESTING:
            raise _invalid(name, f"{name} is nested more than {MAX_NESTING} levels deep")
        try:
            msgspec.json.encode(value)
        except (TypeError, ValueError):
            raise _invalid(name, f"{name} must be JSON data") from None
        return value
    raise _invalid(name, f"{name} cannot be written")


def _key(model: Model, record_id: str) -> Any:
    """An id from the args (not from data): a malformed one is a bad request, not bad data."""
    try:
        return _coerce(model, "id", record_id)
    except HaptaError:
        raise HaptaError(BAD_REQUEST, f"{record_id[:64]!r} is not a valid id for {model.name}") from None


def _writable_data(model: Model, data: dict[str, Any]) -> dict[str, Any]:
    clean = {}
    for name, value in data.items():
        if name not in model.writable:
            reason = "is unknown" if name not in model.table.fields else "cannot be written"
            raise _invalid(str(name)[:63], f"{str(name)[:63]} {reason} in {model.name}")
        clean[name] = _coerce(model, name, value)
    if model.name == AUTH_COLLECTION and clean.get("username") is not None:
        try:   # held to the same rule as at auth.register
            clean["username"] = normalize_username(clean["username"])
        except InvalidIdentity as exc:
            raise _invalid("username", str(exc)) from None
    return clean


@contextmanager
def _database_refusals(model: Model, deleting: bool = False) -> Iterator[None]:
    """Constraint violations are the client's data not fitting: say which field, never the SQL."""
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        fields = list(model.info.uniques.get(exc.constraint_name or "", ()))
        what = ", ".join(fields) or "a unique field"
        raise HaptaError(CONFLICT, f"a record with this {what} already exists in {model.name}",
                         details={"fields": fields}) from None
    except asyncpg.ForeignKeyViolationError as exc:
        if deleting:
            raise HaptaError(CONFLICT, "other records still refer to this one") from None
        raise _missing_related(model.info.foreign_keys.get(exc.constraint_name or "", "")) from None
    except asyncpg.NotNullViolationError as exc:
        raise _invalid(exc.column_name or "", f"{exc.column_name} may not be null") from None
    except asyncpg.CheckViolationError as exc:
        fields = model.info.checks.get(exc.constraint_name or "", ())
        field = fields[0] if fields else ""
        raise _invalid(field, f"{field or 'the record'} does not satisfy the collection's checks") from None
    except asyncpg.DataError as exc:
        field = getattr(exc, "column_name", None) or ""
        raise _invalid(field, "a value does not fit its column") from None


def _hook_context(call: Call, model: Model, conn: asyncpg.Connection | None = None) -> Context:
    """What hooks learn of the call. Their ctx.sql runs on `conn` (the write's transaction) when given."""
    principal = call.principal
    return Context(principal.user_id, principal.role, call.op, model.name, call.peer.address,
                   _sql=(conn or call.gateway.db).fetch)


def _record(row: asyncpg.Record, fields: tuple[str, ...]) -> dict[str, Any]:
    return {name: row[name] for name in fields}


# ---- the ops ------------------------------------------------------------------------------------------------

@op("records.list", ListArgs)
async def list_records(call: Call, args: ListArgs) -> dict[str, Any]:
    """Through the read cache (hapta/cache.py): keyed by the query and what the rules read of the principal."""
    model = _model(call, args.collection)
    found = client_filter(call, model, args.filter)
    fields = _fields(model, args.fields)
    sorted_fields = [part.strip().lstrip("+-") for part in (args.sort or "").split(",")]
    key, tables = query_key(model, "list", call.principal, found, [*fields, *sorted_fields],
                            (fields, args.sort, args.page, args.per_page, args.after, args.count))
    return await call.gateway.live.read(key, tables, lambda: _list_from_db(call, args, model, found, fields))


async def _list_from_db(call: Call, args: ListArgs, model: Model, found: BoundFilter | None,
                        fields: tuple[str, ...]) -> dict[str, Any]:
    sql = Sql(call, model)
    terms = _sort_terms(model, args.sort)
    where = [sql.rule(_rule(call, model, "list")), _filter(sql, found)]
    count_params = len(sql.params)
    count_where = " AND ".join(where)
    if args.after is not None:
        if args.page != 1:
            raise HaptaError(BAD_REQUEST, "use either page or after, not both")
        if not _keyset_ready(model, terms):
            raise HaptaError(BAD_REQUEST, "after needs a sort over fields that are never null")
        where.append(_after_condition(sql, terms, _decode_cursor(model, terms, args.after)))
    order = ", ".join(f'{sql.column(n)} {"DESC" if d else "ASC"}' for n, d in terms)
    sort_keys = ", ".join(f'"{model.name}"."{n}" AS "__k{i}"' for i, (n, _) in enumerate(terms))
    limit = sql.param(args.per_page + 1)
    offset = sql.param((args.page - 1) * args.per_page)
    statement = (f'SELECT {sql.select_list(fields)}, {sort_keys} FROM "{model.name}" '
                 f'WHERE {" AND ".join(where)} ORDER BY {order} LIMIT {limit} OFFSET {offset}')
    async with call.gateway.db.acquire() as conn:
        rows = await conn.fetch(statement, *sql.params)
        total = None
        if args.count:
            total = await conn.fetchval(f'SELECT count(*) FROM "{model.name}" WHERE {count_where}',
                                        *sql.params[:count_params])
    more = len(rows) > args.per_page
    rows = rows[:args.per_page]
    result: dict[str, Any] = {"items": [model.public(_record(r, fields)) for r in rows], "page": args.page,
                              "per_page": args.per_page}
    if more and _keyset_ready(model, terms):
        result["next"] = _encode_cursor([rows[-1][f"__k{i}"] for i in range(len(terms))])
    if total is not None:
        result["total"] = total
    return result


@op("records.get", GetArgs)
async def get_record(call: Call, args: GetArgs) -> dict[str, Any]:
    """Through the read cache, like records.list."""
    model = _model(call, args.collection)
    fields = _fields(model, args.fields)
    record_id = _key(model, args.id)
    key, tables = query_key(model, "view", call.principal, None, fields, ("get", str(record_id), fields))
    return await call.gateway.live.read(key, tables, lambda: _get_from_db(call, model, record_id, fields))


async def _get_from_db(call: Call, model: Model, record_id: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    sql = Sql(call, model)
    rule = sql.rule(_rule(call, model, "view"))
    key = sql.param(record_id)
    row = await call.gateway.db.fetchrow(
        f'SELECT {sql.select_list(fields)} FROM "{model.name}" WHERE "{model.name}"."id" = {key} AND {rule}',
        *sql.params)
    if row is None:   # absent or not viewable: the same answer, so that existence does not leak
        raise HaptaError(NOT_FOUND, f"no record {record_id} in {model.name}")
    return model.public(_record(row, fields))


@op("records.create", CreateArgs)
async def create_record(call: Call, args: CreateArgs) -> dict[str, Any]:
    model = _model(call, args.collection)
    rule = _rule(call, model, "create")
    hooks = call.gateway.hooks
    data = _writable_data(model, args.data)
    ctx = _hook_context(call, model)
    if hooks.has(model.name, "before_create"):
        changed = await hooks.before(model.name, "before_create", ctx, dict(data))
        if changed is not None:
            data = _writable_data(model, changed)
    missing = [n for n in model.required() if n not in data]
    if missing:
        raise _invalid(missing[0], f"{missing[0]} is required")
    sql = Sql(call, model)
    columns = ", ".join(f'"{n}"' for n in data)
    values = ", ".join(sql.param(v) for v in data.values())
    insert = (f'INSERT INTO "{model.name}" ({columns}) VALUES ({values})' if data
              else f'INSERT INTO "{model.name}" DEFAULT VALUES')
    try:
        with _database_refusals(model):
            async with call.gateway.db.transaction() as conn:
                row = await checked_write(conn, call, model, sql, insert, rule, list(data), "create")
    except HaptaError as error:
        if error.code == CONFLICT and not call.principal.is_admin:
            await _refuse_rather_than_conflict(call, model, rule, data)
        raise
    record = _record(row, model.visible)
    hooks.after(model.name, "after_create", ctx, record)
    return model.public(record)


async def _refuse_rather_than_conflict(call: Call, model: Model, rule: Rule, data: dict[str, Any]) -> None:
    """A unique value is "taken" only for someone who could have written the record: otherwise the conflict itself
    is the oracle (a like by alice on a post bob may not see). The insert failed before its checks ran, so they
    run here on the record as given (columns it leaves out read as null, which can only refuse more); the refusal
    they make is raised, and if there is none the conflict stands."""
    sql = Sql(call, model)
    columns = ", ".join(f'{sql.param(data[n]) if n in data else "NULL"}::{PG_TYPES[model.info.columns[n].kind]} '
                        f'AS "{n}"' for n in model.visible)
    checks, relations = _write_checks(sql, model, rule, list(data))
    row = await call.gateway.db.fetchrow(f'SELECT {checks} FROM (SELECT {columns}) AS "{model.name}"', *sql.params)
    _refuse_unless_allowed(row, model, relations, "create")


async def checked_write(conn: asyncpg.Connection, call: Call, model: Model, sql: Sql, write: str, rule: Rule,
                        written: list[str], rule_op: str) -> asyncpg.Record:
    """Run an INSERT or UPDATE (`write`, its parameters in `sql`) and check, on the row as stored (defaults and
    triggers included), that the principal's `rule` holds and that every relation it wrote points at a record the
    principal may view; a refusal raises, and the caller's transaction rolls the write back.

    A relation to a record one may not view answers exactly as one to a record that does not exist, so that a
    write is no oracle for what the rules hide (a comment on a private post, on a missing one)."""
    checks, relations = _write_checks(sql, model, rule, [] if call.principal.is_admin else written)
    row = await conn.fetchrow(f'WITH "__w" AS ({write} RETURNING *) SELECT {sql.select_list(model.visible)}, '
                              f'{checks} FROM "__w" AS "{model.name}"', *sql.params)
    _refuse_unless_allowed(row, model, relations, rule_op)
    return row


def _write_checks(sql: Sql, model: Model, rule: Rule, written: list[str]) -> tuple[str, list[str]]:
    """The columns that judge a written row: `__allowed` (the rule) and `__rel<i>` for each relation written (see
    _relation_visible); and those relations, in order."""
    relations = [name for name in written if model.table.fields[name].relation is not None]
    checks = "".join(f', {_relation_visible(sql, model, name)} AS "__rel{i}"' for i, name in enumerate(relations))
    return f'{sql.rule(rule)} AS "__allowed"{checks}', relations


def _refuse_unless_allowed(row: asyncpg.Record, model: Model, relations: list[str], rule_op: str) -> None:
    for i, name in enumerate(relations):   # first: a relation to what one may not see is not there at all
        if row[f"__rel{i}"] is not True:
            raise _missing_related(name)
    if row["__allowed"] is not True:
        raise HaptaError(FORBIDDEN, f"the {rule_op} rule of {model.name} does not allow this record")


def _relation_visible(sql: Sql, model: Model, name: str) -> str:
    """SQL that is true when relation `name` of the written row is null or points at a record the principal may
    view: the reader's own relation step (`name.id != null`, through the related view rule)."""
    points = _points_at_visible(sql.schema, model, name)
    if points is None:   # a collection this principal may not view at all: nothing there to point at
        return f'("{model.name}"."{name}" IS NULL)'
    return f'("{model.name}"."{name}" IS NULL OR {sql.rule(points)})'


def _points_at_visible(schema: Any, model: Model, name: str) -> Node | None:
    """The bound check `name.id != null` (None: the related collection is not viewable here), made once per schema,
    collection and relation: a handful, for as long as the gateway lives."""
    key = (id(schema), model.name, name)
    if key not in _pointing:
        try:
            _pointing[key] = bind(Compare(Field((name, "id")), "!=", Literal(None)), model.table, schema)
        except FilterError:
            _pointing[key] = None
    return _pointing[key]


_pointing: dict[tuple[int, str, str], Node | None] = {}


def _missing_related(field: str) -> HaptaError:
    return _invalid(field, f"{field or 'a field'} refers to a record that does not exist")


async def _lock_for_write(conn: asyncpg.Connection, call: Call, model: Model, record_id: Any,
                          rule_op: str) -> dict[str, Any]:
    """Lock the row and check that the principal may see it and may `rule_op` it; return the record."""
    sql = Sql(call, model)
    view = sql.rule(_rule(call, model, "view")) if model.rules["view"] is not None or call.principal.is_admin \
        else "false"
    may = sql.rule(_rule(call, model, rule_op))
    key = sql.param(record_id)
    row = await conn.fetchrow(
        f'SELECT {sql.select_list(model.visible)}, {view} AS "__view", {may} AS "__may" '
        f'FROM "{model.name}" WHERE "{model.name}"."id" = {key} FOR UPDATE', *sql.params)
    if row is None or (row["__view"] is not True and row["__may"] is not True):
        raise HaptaError(NOT_FOUND, f"no record {record_id} in {model.name}")
    if row["__may"] is not True:
        raise HaptaError(FORBIDDEN, f"the {rule_op} rule of {model.name} does not allow this")
    return _record(row, model.visible)


@op("records.update", UpdateArgs)
async def update_record(call: Call, args: UpdateArgs) -> dict[str, Any]:
    model = _model(call, args.collection)
    _rule(call, model, "update")
    record_id = _key(model, args.id)
    changes = _writable_data(model, args.data)
    hooks = call.gateway.hooks
    with _database_refusals(model):
        async with call.gateway.db.transaction() as conn:
            ctx = _hook_context(call, model, conn)
            current = await _lock_for_write(conn, call, model, record_id, "update")
            if args.version is not None and current["version"] != args.version:
                raise HaptaError(CONFLICT, f"{model.name} {args.id} is at version {current['version']}",
                                 details={"version": current["version"]})
            if hooks.has(model.name, "before_update"):
                changed = await hooks.before(model.name, "before_update", ctx, dict(current), dict(changes))
                if changed is not None:
                    changes = _writable_data(model, changed)
            if not changes:
                return model.public(current)
            sql = Sql(call, model)
            assignments = ", ".join(f'"{n}" = {sql.param(v)}' for n, v in changes.items())
            update = f'UPDATE "{model.name}" SET {assignments} WHERE "{model.name}"."id" = {sql.param(record_id)}'
            row = await checked_write(conn, call, model, sql, update, _rule(call, model, "update", changed=[*changes]),
                                      list(changes), "update")
    record = _record(row, model.visible)
    hooks.after(model.name, "after_update", ctx, record)
    return model.public(record)


@op("records.delete", DeleteArgs)
async def delete_record(call: Call, args: DeleteArgs) -> dict[str, Any]:
    model = _model(call, args.collection)
    _rule(call, model, "delete")
    record_id = _key(model, args.id)
    hooks = call.gateway.hooks
    with _database_refusals(model, deleting=True):
        async with call.gateway.db.transaction() as conn:
            ctx = _hook_context(call, model, conn)
            current = await _lock_for_write(conn, call, model, record_id, "delete")
            await hooks.before(model.name, "before_delete", ctx, dict(current))
            # A deleted user's sessions go with the row (ON DELETE CASCADE); their sockets must hear of it.
            ended = await conn.fetch("SELECT id FROM hapta.sessions WHERE user_id = $1 AND revoked_at IS NULL",
                                     record_id) if model.name == "users" else []
            await conn.execute(f'DELETE FROM "{model.name}" WHERE "id" = $1', record_id)
    if ended:
        await call.gateway.hub.announce([row["id"] for row in ended], "user deleted")
    hooks.after(model.name, "after_delete", ctx, current)
    return {"id": args.id}
