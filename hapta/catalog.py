"""What the database catalog says about an exposed table (store/postgres.py reads it at start). Pure data: the
only source of identifiers that reach SQL text."""
from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass
class Column:
    name: str
    kind: str          # a value kind of the filter language (query/schema.py)
    nullable: bool
    has_default: bool
    default: str | None = None   # the default's SQL text, as the catalog gives it ("hapta.new_id()")


@dataclass
class TableInfo:
    name: str
    columns: dict[str, Column] = field(default_factory=dict)
    relations: dict[str, str] = field(default_factory=dict)         # column -> referenced table
    uniques: dict[str, tuple[str, ...]] = field(default_factory=dict)  # constraint/index name -> columns
    foreign_keys: dict[str, str] = field(default_factory=dict)       # constraint name -> column
    checks: dict[str, tuple[str, ...]] = field(default_factory=dict)  # constraint name -> columns
    choices: dict[str, tuple[str | int, ...]] = field(default_factory=dict)  # column -> its CHECK (col IN (...))

    @property
    def gateway_ids(self) -> bool:
        """Whether the gateway may name a new row's id itself: the column's default is hapta.new_id(), whose ids
        (15 characters of [a-z0-9]) records/combine.py new_id makes the same way, without a call per row."""
        column = self.columns.get("id")
        return column is not None and column.kind == "text" and column.default == "hapta.new_id()"


# How PostgreSQL prints `CHECK (status IN ('draft', 'live'))` back (pg_get_constraintdef):
#   CHECK ((status = ANY (ARRAY['draft'::text, 'live'::text])))
# (a varchar column: `((v)::text = ANY ((ARRAY['x'::character varying])::text[]))`, one value: `((s = 'x'::text))`).
# Only that plain shape is read: a list a form can offer as a select. Anything else (OR NULL, functions, ranges) is
# no list of choices, and the form offers a free input.
_COLUMN = r"\(?(?P<column>\"(?:[^\"]|\"\")+\"|[a-z_][a-z0-9_$]*)\)?(?:::text)?"
_IN_LIST = re.compile(r"CHECK \(\(" + _COLUMN + r" = (?:ANY \(\(?ARRAY\[(?P<items>.*?)\]\)?(?:::text\[\])?\)"
                      r"|(?P<one>'(?:[^']|'')*'::text|-?\d+))\)\)")
_ITEM = re.compile(r"\s*(?:'(?P<text>(?:[^']|'')*)'::(?P<type>text|character varying|integer|bigint|smallint)"
                   r"|(?P<int>-?\d+))\s*(?:,|$)")


def check_choices(definition: str) -> tuple[str, tuple[str | int, ...]] | None:
    """(column, values) of a CHECK constraint that is a plain IN list (or `= value`), else None."""
    found = _IN_LIST.fullmatch(definition.strip())
    if found is None:
        return None
    column = found["column"]
    if column.startswith('"'):
        column = column[1:-1].replace('""', '"')
    items = found["items"] if found["one"] is None else found["one"]
    values: list[str | int] = []
    at = 0
    while at < len(items):
        item = _ITEM.match(items, at)
        if item is None or item.end() == at:
            return None
        if item["int"] is not None:
            values.append(int(item["int"]))
        elif item["type"] in ("integer", "bigint", "smallint"):
            values.append(int(item["text"]))
        else:
            values.append(item["text"].replace("''", "'"))
        at = item.end()
    return (column, tuple(values)) if values else None
