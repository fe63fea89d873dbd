"""records.aggregate: counts, sums, averages, minima and maxima over the records a principal may list, grouped by up
to MAX_GROUP_BY fields. Pure: it checks the request and builds the statement; the records service runs it (through
the read cache, as records.list).

What is aggregated is exactly what records.list would list: the list rule for this principal and the client's filter
(bound and cost-checked as records.list binds it) are the WHERE clause, so rows the principal may not list count
nothing. A guarded field (its value shown only where its guard holds) is refused to non-admins altogether: a sum or a
group over it would tell about values the guard hides, or, read through the guard, about where it holds.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg

from ..access import BoundFilter, Sql
from ..models import Model, Rule
from ..principal import Principal
from ..protocol.errors import BAD_REQUEST, FORBIDDEN, HaptaError
from ..query import schema as kinds
from ..query.kinds import INT64, KINDS

MAX_GROUP_BY = 3
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
# What each function takes and what may be grouped by, as kinds.py says of each kind: sums and averages numbers;
# minima and maxima text (in byte order, as `<` compares it), numbers and timestamps; groups any plain value (not
# json: a file field's storage keys).
FUNCTIONS = {function: tuple(name for name, kind in KINDS.items() if function in kind.aggregates)
             for function in ("sum", "avg", "min", "max")}
GROUPABLE = tuple(name for name, kind in KINDS.items() if kind.groupable)


@dataclass(frozen=True)
class Aggregate:
    """One request, normalised (duplicates dropped, order kept): also the read cache's key for it."""
    group_by: tuple[str, ...]
    count: bool
    measures: tuple[tuple[str, tuple[str, ...]], ...]   # (function, fields) for each function asked for
    limit: int

    @classmethod
    def of(cls, group_by: list[str] | None, count: bool, measures: dict[str, list[str] | None],
           limit: int) -> "Aggregate":
        asked = tuple((function, tuple(dict.fromkeys(fields))) for function, fields in measures.items() if fields)
        return cls(tuple(dict.fromkeys(group_by or ())), count, asked, limit)

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([*self.group_by, *(f for _, fields in self.measures for f in fields)]))


def check(model: Model, principal: Principal, request: Aggregate) -> None:
    """Refuse what cannot be asked: too many groups, nothing at all, unknown (or hidden) fields, a function on a field
    of a kind it does not take, guarded fields for non-admins."""
    if len(request.group_by) > MAX_GROUP_BY:
        raise HaptaError(BAD_REQUEST, f"group_by takes at most {MAX_GROUP_BY} fields")
    if not (request.count or request.measures or request.group_by):
        raise HaptaError(BAD_REQUEST, "ask for count, group_by or one of sum, avg, min, max")
    uses = [("group_by", name, GROUPABLE) for name in request.group_by]
    uses += [(function, name, FUNCTIONS[function]) for function, fields in request.measures for name in fields]
    for where, name, accepted in uses:
        field = model.table.fields.get(name)   # hidden fields are not there: unknown
        if field is None:
            raise HaptaError(BAD_REQUEST, f"unknown field {name!r} in {where}")
        if field.kind not in accepted:
            raise HaptaError(BAD_REQUEST, f"{where} cannot take {name!r}, a {field.kind} field "
                             f"(it takes {', '.join(accepted)})")
        if field.guard is not None and not principal.is_admin:
            raise HaptaError(FORBIDDEN, f"{name!r} is guarded: only admins may aggregate it")


def statement(sql: Sql, rule: Rule, found: BoundFilter | None, request: Aggregate) -> str:
    """The SELECT, its parameters in `sql`: one row per group (one row in all without group_by), at most limit + 1
    of them, so that the caller can tell there were more."""
    model = sql.model
    columns = [f'{_column(model, name)} AS "__g{i}"' for i, name in enumerate(request.group_by)]
    if request.count:
        columns.append('count(*) AS "__count"')
    for function, fields in request.measures:
        columns += [f'{_measure(model, function, name)} AS "__{function}{i}"' for i, name in enumerate(fields)]
    where = f'{sql.rule(rule)} AND {sql.filter(found.node if found else None)}'
    text = f'SELECT {", ".join(columns)} FROM "{model.name}" WHERE {where}'
    if request.group_by:
        positions = ", ".join(str(i + 1) for i in range(len(request.group_by)))
        text += f" GROUP BY {positions} ORDER BY {positions} LIMIT {sql.param(request.limit + 1)}"
    return text


def groups(rows: list[asyncpg.Record], request: Aggregate) -> dict[str, Any]:
    """The answer: {groups: [{key, count?, sum?, avg?, min?, max?}], more}."""
    found = []
    for row in rows[:request.limit]:
        group: dict[str, Any] = {"key": {name: row[f"__g{i}"] for i, name in enumerate(request.group_by)}}
        if request.count:
            group["count"] = row["__count"]
        for function, fields in request.measures:
            group[function] = {name: _number(row[f"__{function}{i}"]) for i, name in enumerate(fields)}
        found.append(group)
    return {"groups": found, "more": len(rows) > request.limit}


def _column(model: Model, name: str) -> str:
    return f'"{model.name}"."{name}"'   # names come from the catalog (check() found each in model.table)


def _measure(model: Model, function: str, name: str) -> str:
    column = _column(model, name)
    if function == "avg":
        return f"avg({column})::float8"
    if function in ("min", "max") and model.table.fields[name].kind == kinds.TEXT:
        return f'{function}({column} COLLATE "C")'   # byte order, as the filter language's `<` compares text
    return f"{function}({column})"


def _number(value: Any) -> Any:
    """A sum of integers comes back as numeric: an integer while it fits in 64 bits (what clients can hold), else
    the nearest float."""
    if isinstance(value, Decimal):
        exact = int(value)
        return exact if INT64[0] <= exact <= INT64[1] else float(value)
    return value
