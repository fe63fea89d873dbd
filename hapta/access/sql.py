"""The rules' SQL form: a statement's text and parameters for one collection and one principal, and the checks
that judge a written row. Pure: it builds text, the records service runs it.

Rules become conditions in WHERE clauses (what they hide is absent); guarded fields become CASE expressions that
read as NULL where their guard does not hold; a written row is judged in the statement that writes it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..models import EVERYONE, Model, Rule
from ..principal import Principal
from ..protocol.errors import FORBIDDEN, VALIDATION_FAILED, HaptaError
from ..query import FilterError, bind, to_sql
from ..query.ast import Compare, Field, Literal, Node
from ..query.sql import rank_sql
from ..query.schema import Schema


@dataclass(frozen=True)
class Schemas:
    """The two ways to read the collections: a reader's (guards, relations through view rules) and an admin's
    (every column plainly, every relation open)."""
    reader: Schema
    admin: Schema

    def of(self, principal: Principal) -> Schema:
        return self.admin if principal.is_admin else self.reader


class Sql:
    """Builds one statement's text and parameters for one model and principal."""

    def __init__(self, model: Model, principal: Principal, schemas: Schemas, params: list[Any] | None = None,
                 vars: Mapping[str, Any] | None = None):
        self.model = model
        self.admin = principal.is_admin
        # Admins filter on guarded columns as they are; everyone else through the guards.
        self.schema = schemas.of(principal)
        self.table = self.schema.tables[model.name]
        # The principal's values, or VarSlots: parameters filled per execution (a text kept for many).
        self.vars = principal.rule_vars() if vars is None else vars
        # Several principals' parts of one statement (records/combine.py) number their parameters in one list.
        self.params: list[Any] = [] if params is None else params

    def param(self, value: Any) -> str:
        self.params.append(value)
        return f"${len(self.params)}"

    def rule(self, rule: Rule | Any) -> str:
        if rule is EVERYONE:
            return "true"
        return f"({to_sql(rule, self.model.table, self.schema, self.vars, self.params)})"

    def filter(self, node: Node | None) -> str:
        """A client's bound filter (access.filters.bound_filter), bound against this principal's schema."""
        if node is None:
            return "true"
        return f"({to_sql(node, self.table, self.schema, self.vars, self.params)})"

    def rank(self, search: Compare) -> str:
        """How well a row matches one of the client's bound `@@` (ts_rank), for a sort by @rank."""
        return rank_sql(search, self.table, self.schema, self.vars, self.params)

    def column(self, name: str, table: str | None = None) -> str:
        """A readable column: guarded fields read as NULL where their guard does not hold."""
        ref = f'"{table or self.model.name}"."{name}"'
        guard = self.model.table.fields[name].guard
        if guard is None or self.admin:
            return ref
        return f"(CASE WHEN {self.rule(guard)} THEN {ref} END)"

    def select_list(self, fields: list[str] | tuple[str, ...]) -> str:
        return ", ".join(f'{self.column(name)} AS "{name}"' for name in fields)

    def write_checks(self, rule: Rule, written: list[str]) -> tuple[str, list[str]]:
        """The columns that judge a written row: `__allowed` (the rule) and `__rel<i>` for each relation written
        (see relation_visible; admins point wherever the database lets them); and those relations, in order."""
        relations = [] if self.admin else \
            [name for name in written if self.model.table.fields[name].relation is not None]
        checks = "".join(f', {self.relation_visible(name)} AS "__rel{i}"' for i, name in enumerate(relations))
        return f'{self.rule(rule)} AS "__allowed"{checks}', relations

    def relation_visible(self, name: str) -> str:
        """True when relation `name` of the written row is null or points at a record the principal may view:
        the reader's own relation step (`name.id != null`, through the related view rule)."""
        points = _points_at_visible(self.schema, self.model, name)
        if points is None:   # a collection this principal may not view at all: nothing there to point at
            return f'("{self.model.name}"."{name}" IS NULL)'
        return f'("{self.model.name}"."{name}" IS NULL OR {self.rule(points)})'


    def judged(self, write: str, rule: Rule, written: list[str]) -> tuple[str, list[str]]:
        """`write` (an INSERT, its parameters in this Sql) as one statement that judges the row it stored and, when
        it may not stand, raises from within (hapta.judge, HA001/HA002: see refuse_judged), so that the statement
        undoes itself: no transaction of our own, no BEGIN or COMMIT round trip. Returns the statement and the
        relations it checks, in order."""
        checks, relations = self.write_checks(rule, written)
        return (f'WITH "__w" AS ({write} RETURNING *), '
                f'"__j" AS (SELECT {self.select_list(self.model.visible)}, {checks} FROM "__w" AS "{self.model.name}") '
                f'SELECT *, hapta.judge({_marks(relations)}, "__allowed") AS "__judged" FROM "__j"'), relations


def judged_together(model: Model, write: str, rows: list[tuple[Sql, Rule | None, list[str], str]]) -> str:
    """Sql.judged for a statement that writes several rows (records/combine.py: an INSERT, an UPDATE, a DELETE),
    each for its own principal: `rows` holds each one's Sql (all sharing one parameter list, the statement's), its
    rule (a create's, or what an update must leave true; None: a deleted row, read back and not judged), the
    columns it wrote, and the condition that picks its row out of what `write` returned. Each row is read back as
    its writer would see it alone, marked "__n" with its place in `rows`; any refusal raises and undoes the whole
    statement (the caller then runs each row alone, so that only the refused one is refused)."""
    name = model.name
    columns = ", ".join(f'"{column}"' for column in model.visible)
    parts, reads = [], []
    for n, (sql, rule, written, which) in enumerate(rows):
        if rule is None:
            parts.append(f'"__j{n}" AS (SELECT {sql.select_list(model.visible)} FROM "__w" AS "{name}" '
                         f'WHERE {which})')
            reads.append(f'SELECT {n} AS "__n", {columns} FROM "__j{n}"')
            continue
        checks, relations = sql.write_checks(rule, written)
        parts.append(f'"__j{n}" AS (SELECT {sql.select_list(model.visible)}, {checks} FROM "__w" AS "{name}" '
                     f'WHERE {which})')
        reads.append(f'SELECT {n} AS "__n", {columns}, hapta.judge({_marks(relations)}, "__allowed") AS "__judged" '
                     f'FROM "__j{n}"')
    return f'WITH "__w" AS ({write} RETURNING *), {", ".join(parts)} {" UNION ALL ".join(reads)}'


def _marks(relations: list[str]) -> str:
    """The relation checks' columns as the array hapta.judge takes."""
    if not relations:
        return "'{}'::boolean[]"
    return "ARRAY[" + ", ".join(f'"__rel{i}"' for i in range(len(relations))) + "]::boolean[]"


JUDGED = ("HA001", "HA002")


def refuse_judged(error: Any, model: Model, relations: list[str], op: str) -> HaptaError:
    """What a statement made by Sql.judged raised, as the refusal refuse_unless_allowed would have made."""
    if error.sqlstate == "HA001":
        return missing_related(relations[int(error.message)])
    return HaptaError(FORBIDDEN, f"the {op} rule of {model.name} does not allow this record")


def refuse_unless_allowed(row: Any, model: Model, relations: list[str], op: str) -> None:
    """Raise what a row judged by Sql.write_checks earned. A relation to a record one may not view answers exactly
    as one to a record that does not exist, so that a write is no oracle for what the rules hide; it is judged
    first, before the rule (which might itself read what lies behind it)."""
    for i, name in enumerate(relations):
        if row[f"__rel{i}"] is not True:
            raise missing_related(name)
    if row["__allowed"] is not True:
        raise HaptaError(FORBIDDEN, f"the {op} rule of {model.name} does not allow this record")


def missing_related(field: str) -> HaptaError:
    return HaptaError(VALIDATION_FAILED, f"{field or 'a field'} refers to a record that does not exist",
                      details={"field": field})


def _points_at_visible(schema: Schema, model: Model, name: str) -> Node | None:
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
