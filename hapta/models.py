"""A collection as the gateway serves it: the app's declaration joined with what the catalog says, and its rules
parsed and bound once at start. Mistakes in config.py stop the start with a message that names them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from .catalog import TableInfo
from .config import SYSTEM_FIELDS, App, Collection, ConfigError
from .query import FilterError, bind, fields_used, parse
from .query import schema as kinds
from .query.ast import And, Node, searches
from .query.schema import Field, Schema, Table

RULE_OPS = ("list", "view", "create", "update", "delete")

# The auth collection's columns that belong to the gateway, whatever config.py says: the password hash never leaves
# it, and the email, whether it is verified and whether it is a guest change only through auth ops.
AUTH_COLLECTION = "users"
AUTH_HIDDEN = ("password_hash",)
AUTH_READONLY = ("email", "verified", "anonymous")


class Everyone:
    """The rule "": no condition beyond being past the guest stage."""


EVERYONE = Everyone()
Rule = Node | Everyone | None   # None: admin only


@dataclass(frozen=True)
class Model:
    collection: Collection
    table: Table
    info: TableInfo
    rules: dict[str, Rule]
    visible: tuple[str, ...]        # fields a reader may receive, in column order
    writable: frozenset[str]        # fields a client may set
    moved: Rule = None              # what an update that moves the record must leave true (update and create)
    create_reads: frozenset[str] = frozenset()   # the columns the create rule reads: changing one moves the record

    @property
    def name(self) -> str:
        return self.collection.name

    @property
    def file_fields(self) -> tuple[str, ...]:
        return tuple(self.collection.files)

    def public(self, record: dict[str, Any]) -> dict[str, Any]:
        """The record as it leaves the gateway: its files without their storage keys, which are the gateway's
        (files.download and files.url reach a file by its name, through the rules)."""
        if not self.collection.files:
            return record
        shown = dict(record)
        for name in self.collection.files:
            value = shown.get(name)
            if isinstance(value, list):
                shown[name] = [{k: v for k, v in entry.items() if k != "key"} if isinstance(entry, dict) else entry
                               for entry in value]
        return shown

    def update_rule(self, changed: list[str]) -> Rule:
        """What the record must satisfy once updated: the update rule, and the create rule too when the update
        changes a column the create rule reads."""
        return self.moved if self.create_reads.intersection(changed) else self.rules["update"]

    def required(self) -> list[str]:
        """Writable fields a create must give: NOT NULL and no default."""
        return [n for n in self.writable
                if not self.info.columns[n].nullable and not self.info.columns[n].has_default]


# A text-search configuration's name as Collection.search may give it: it becomes an SQL constant.
_CONFIG_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _compile(text: str, what: str, table: Table, schema: Schema) -> Node:
    try:
        node = bind(parse(text), table, schema)
    except FilterError as exc:
        raise ConfigError(f"{what}: {exc}") from None
    # Rules and guards are also evaluated in Python (realtime, the read cache), which cannot answer a search.
    if searches(node):
        raise ConfigError(f"{what}: '@@' (full-text search) is for clients' filters; a rule cannot use it")
    return node


def _search_configs(collection: Collection, info: TableInfo) -> dict[str, str]:
    """Collection.search, checked: visible text columns, each with a configuration name fit to be an SQL constant
    (whether PostgreSQL knows it is checked at start: store.postgres.check_search_configs)."""
    for name, config in collection.search.items():
        column = info.columns.get(name)
        if column is None or name in collection.hidden:
            raise ConfigError(f"{collection.name}.search names {name!r}, which is not a visible column")
        if column.kind != kinds.TEXT:
            raise ConfigError(f"{collection.name}.search names {name!r}, a {column.kind} column; only text is searched")
        if not isinstance(config, str) or not _CONFIG_NAME.fullmatch(config):
            raise ConfigError(f"{collection.name}.search[{name!r}] must name a text-search configuration such as "
                              f"'english' or 'simple' (lowercase letters, digits, _)")
    return dict(collection.search)


def _owned(collection: Collection, info: TableInfo) -> Collection:
    """The auth collection as the gateway serves it: its own columns hidden or read-only (AUTH_*)."""
    if collection.name != AUTH_COLLECTION:
        return collection
    hidden = (*collection.hidden, *(c for c in AUTH_HIDDEN if c in info.columns and c not in collection.hidden))
    readonly = (*collection.readonly,
                *(c for c in AUTH_READONLY if c in info.columns and c not in collection.readonly))
    return replace(collection, hidden=hidden, readonly=readonly)


def build_models(app: App, infos: dict[str, TableInfo]) -> tuple[Schema, dict[str, Model]]:
    """The models, and the schema clients' filters are bound against (reader_schema)."""
    declared = {c.name for c in app.collections}
    app = replace(app, collections=[_owned(c, infos[c.name]) if c.name in infos else c for c in app.collections])
    plain: dict[str, Table] = {}
    for c in app.collections:
        info = infos.get(c.name)
        if info is None:
            raise ConfigError(f"collection {c.name!r} has no table; add it in migrations/")
        missing = [f for f in SYSTEM_FIELDS if f not in info.columns]
        if missing:
            raise ConfigError(f"table {c.name!r} lacks the system column(s) {', '.join(missing)}")
        for attr in ("hidden", "readonly"):
            for name in getattr(c, attr):
                if name not in info.columns:
                    raise ConfigError(f"{c.name}.{attr} names {name!r}, which is not a column")
        for name in c.guarded:
            if name not in info.columns or name in c.hidden:
                raise ConfigError(f"{c.name}.guarded names {name!r}, which is not a visible column")
        search = _search_configs(c, info)
        fields = {
            name: Field(name, col.kind, col.nullable,
                        relation=info.relations.get(name) if info.relations.get(name) in declared else None,
                        search=search.get(name))
            for name, col in info.columns.items() if name not in c.hidden
        }
        plain[c.name] = Table(c.name, fields)

    # Guards are rules over the record itself; bind them against the unguarded tables, then attach them.
    plain_schema = Schema(plain)
    tables: dict[str, Table] = {}
    for c in app.collections:
        table = plain[c.name]
        fields = dict(table.fields)
        for name, text in c.guarded.items():
            fields[name] = replace(fields[name], guard=_compile(text, f"{c.name}.guarded[{name}]", table, plain_schema))
        tables[c.name] = Table(c.name, fields)
    schema = Schema(tables)

    models: dict[str, Model] = {}
    for c in app.collections:
        table = tables[c.name]
        rules: dict[str, Rule] = {}
        for rule_op in RULE_OPS:
            text = c.rule(rule_op)
            if text is None:
                rules[rule_op] = None
            elif text.strip() == "":
                rules[rule_op] = EVERYONE
            else:
                rules[rule_op] = _compile(text, f"{c.name}.{rule_op} rule", table, schema)
        visible = tuple(table.fields)
        writable = frozenset(n for n in visible if n not in SYSTEM_FIELDS and n not in c.readonly
                             and n not in c.files)   # file fields change only through files.* ops
        models[c.name] = Model(c, table, infos[c.name], rules, visible, writable, *_moved(c, rules))
    return reader_schema(schema, models), models


def _moved(collection: Collection, rules: dict[str, Rule]) -> tuple[Rule, frozenset[str]]:
    """(rule, columns): an update that changes one of `columns` must satisfy `rule`, the update rule joined with
    the create rule, so that nobody moves a record where they could not have created it (Collection docs). An
    update that changes none of them leaves the record where the create rule last saw it."""
    update, create = rules["update"], rules["create"]
    if update is None or not isinstance(create, Node) or not collection.update_checks_create:
        return update, frozenset()
    reads = frozenset(path[0] for path in fields_used(create))
    return (create if update is EVERYONE else And((update, create))), reads


def reader_schema(schema: Schema, models: dict[str, Model]) -> Schema:
    """The schema clients' filters are bound against: the same tables, and through a relation only what the
    related collection's view rule lets a (non-admin) reader see. Rules, bound before, keep reading relations
    as the app wrote them."""
    views = {name: None if model.rules["view"] is EVERYONE else model.rules["view"]
             for name, model in models.items() if model.rules["view"] is not None}
    return Schema(schema.tables, views)
