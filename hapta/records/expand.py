"""expand: the records a page's relations point at, embedded under `expand`, each one shown to the reader only as its
own collection's view rule, guards and before_send hook allow.

    records.list {collection: "comments", expand: ["author", "post.author"]}
    -> {items: [{..., "post": "p1", "expand": {"author": {...}, "post": {..., "expand": {"author": {...}}}}}]}

A related record the reader may not view is left out, exactly as if the relation pointed nowhere: its existence
does not leak. The expansion starts from the records as the reader receives them (after guards and before_send), so
a relation the reader cannot see is not followed either. One query per relation step and page (no N+1): the ids of
the whole page at once, with the target's view rule in the WHERE clause and its guards in the select list.

What a step found is kept in the read cache apart from the page, under the ids it looked up and what the targets'
rules and guards read of the reader (access.filters.variable_key): a cached page, a fresh one and a realtime event
for the same records share it, and a change to a target table makes it stale.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from cachetools import LRUCache

from ..access import Schemas, Sql, reads, variable_key
from ..models import EVERYONE, Model
from ..principal import Principal
from ..protocol.errors import BAD_REQUEST, HaptaError
from ..query.sql import PG_TYPES
from ..store.postgres import Database

MAX_PATHS = 8    # relation paths one request may expand
MAX_DEPTH = 2    # "post.author": a relation of a relation, and no further
EXPAND = "expand"

# read(key, tables, load): an answer through the read cache (live/cache.py), or load()'s; and
# sent(principal, model, records), as records/view.py shows records to a reader
ReadThrough = Callable[[tuple | None, tuple[str, ...], Callable[[], Awaitable[Any]]], Awaitable[Any]]
Sent = Callable[[Principal, Model, list[dict[str, Any]]], Awaitable[list[dict[str, Any]]]]


@dataclass(frozen=True)
class Step:
    field: str                       # the relation field followed
    path: str                        # from the top record: "post" or "post.author"
    target: str                      # the collection it points into
    steps: tuple["Step", ...] = ()   # what is expanded in turn on the records found


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]
    paths: tuple[str, ...]           # normalised: each path and its prefixes, sorted (part of the cache key)
    targets: tuple[str, ...]         # the collections it reads

    def fields(self) -> tuple[str, ...]:
        """The top record's relation fields the plan follows (they must be among the fields returned)."""
        return tuple(step.field for step in self.steps)


def plan_of(models: dict[str, Model], model: Model, paths: list[str] | None) -> Plan | None:
    """The plan for `paths` on `model`, or None for no expansion; BAD_REQUEST with the reason when a path is not a
    chain of relations. Worked out once per collection and list of paths."""
    if not paths:
        return None
    key = (model.name, tuple(paths))
    plan = _plans.get(key)
    if plan is None:
        plan = _plans[key] = _plan(models, model, paths)
    return plan


_plans: LRUCache = LRUCache(1024)


def _plan(models: dict[str, Model], model: Model, paths: list[str]) -> Plan:
    if len(paths) > MAX_PATHS:
        raise HaptaError(BAD_REQUEST, f"expand names at most {MAX_PATHS} relations")
    wanted: set[str] = set()
    for path in paths:
        parts = path.split(".")
        if len(parts) > MAX_DEPTH or not all(parts):
            raise HaptaError(BAD_REQUEST, f"expand: {path[:64]!r} must be a relation or a relation's relation "
                             "(\"author\", \"post.author\")")
        wanted.update(".".join(parts[:n]) for n in range(1, len(parts) + 1))
    targets: set[str] = set()

    def steps_of(current: Model, prefix: str) -> tuple[Step, ...]:
        found = []
        for path in sorted(p for p in wanted if p.rpartition(".")[0] == prefix):
            name = path.rpartition(".")[2]
            field = current.table.fields.get(name)
            if field is None or name not in current.visible:
                raise HaptaError(BAD_REQUEST, f"expand: {current.name} has no field {name[:64]!r}")
            if field.relation is None or field.relation not in models:
                raise HaptaError(BAD_REQUEST, f"expand: {current.name}.{name} is not a relation")
            target = models[field.relation]
            if EXPAND in target.table.fields:
                raise HaptaError(BAD_REQUEST, f"expand: {target.name} has a field named {EXPAND!r} of its own")
            targets.add(target.name)
            found.append(Step(name, path, target.name, steps_of(target, path)))
        return tuple(found)

    if EXPAND in model.table.fields:
        raise HaptaError(BAD_REQUEST, f"expand: {model.name} has a field named {EXPAND!r} of its own")
    return Plan(steps_of(model, ""), tuple(sorted(wanted)), tuple(sorted(targets)))


class Expander:
    def __init__(self, db: Database, models: dict[str, Model], schemas: Schemas, read: ReadThrough, sent: Sent):
        self.db = db
        self.models = models
        self.schemas = schemas
        self.read = read
        self.sent = sent

    async def expand(self, principal: Principal, model: Model, plan: Plan | None,
                     records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`records` (as this principal receives them) with what `plan` reaches embedded under `expand`: new dicts,
        the given ones (perhaps cached and shared) are left as they are."""
        if plan is None or not records:
            return records
        related = await self._related(principal, plan, records)
        return [_attach(record, plan.steps, related) for record in records]

    async def _related(self, principal: Principal, plan: Plan,
                       records: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
        """path -> {id: the related record as this principal may see it}."""
        first = {step.path: _ids(records, step.field) for step in plan.steps}
        names, tables = self._reads(principal, plan)
        key = None if "now" in names else \
            ("expand", plan.paths, tuple(sorted((path, tuple(sorted(map(str, ids)))) for path, ids in first.items())),
             variable_key(names, principal))
        found = await self.read(key, tables, lambda: self._load(principal, plan.steps, first))
        if principal.is_admin:
            return found
        shown: dict[str, dict[str, dict[str, Any]]] = {}
        for path, by_id in found.items():   # each through its own collection's before_send, for this reader
            target = self.models[_target(plan.steps, path)]
            kept = await self.sent(principal, target, list(by_id.values()))
            shown[path] = {str(record["id"]): record for record in kept}
        return shown

    def _reads(self, principal: Principal, plan: Plan) -> tuple[frozenset[str], tuple[str, ...]]:
        """What the targets' view rules and guards read of the principal, and every table the expansion's answer
        depends on (the targets, and what their rules reach through relations)."""
        tables = set(plan.targets)
        nodes = []
        for name in plan.targets:
            target = self.models[name]
            rule = target.rules["view"]
            if rule is not None and rule is not EVERYONE:
                nodes.append(rule)
            nodes += [target.table.fields[f].guard for f in target.visible if target.table.fields[f].guard is not None]
        names, relations = reads(tuple(nodes))
        for name in plan.targets:
            target = self.models[name]
            tables |= {target.table.fields[r].relation for r in relations if r in target.table.fields}
        return (frozenset() if principal.is_admin else names), tuple(sorted(t for t in tables if t))

    async def _load(self, principal: Principal, steps: tuple[Step, ...],
                    ids: dict[str, list[Any]]) -> dict[str, dict[str, dict[str, Any]]]:
        found: dict[str, dict[str, dict[str, Any]]] = {}
        for step in steps:
            rows = await self._fetch(principal, self.models[step.target], ids[step.path])
            found[step.path] = rows
            if step.steps:
                found.update(await self._load(principal, step.steps,
                                              {child.path: _ids(list(rows.values()), child.field)
                                               for child in step.steps}))
        return found

    async def _fetch(self, principal: Principal, target: Model, ids: list[Any]) -> dict[str, dict[str, Any]]:
        """The records of `target` with these ids that the principal may view, guards applied: one query."""
        rule = EVERYONE if principal.is_admin else target.rules["view"]
        if not ids or rule is None:   # admin-only: nothing there this reader may see
            return {}
        sql = Sql(target, principal, self.schemas)
        where = sql.rule(rule)
        wanted = sql.param(ids)
        id_type = PG_TYPES[target.info.columns["id"].kind]
        rows = await self.db.fetch(
            f'SELECT {sql.select_list(target.visible)} FROM "{target.name}" '
            f'WHERE "{target.name}"."id" = ANY({wanted}::{id_type}[]) AND {where}', *sql.params)
        return {str(row["id"]): target.public(dict(row)) for row in rows}


def _ids(records: list[dict[str, Any]], field: str) -> list[Any]:
    return list(dict.fromkeys(r[field] for r in records if r.get(field) is not None))


def _target(steps: tuple[Step, ...], path: str) -> str:
    for step in steps:
        if step.path == path:
            return step.target
        if path.startswith(step.path + "."):
            return _target(step.steps, path)
    raise KeyError(path)


def _attach(record: dict[str, Any], steps: tuple[Step, ...], related: dict[str, dict[str, dict[str, Any]]]) -> dict:
    expanded = {}
    for step in steps:
        value = record.get(step.field)
        found = related.get(step.path, {}).get(str(value)) if value is not None else None
        if found is not None:
            expanded[step.field] = _attach(found, step.steps, related) if step.steps else found
    return {**record, EXPAND: expanded}
