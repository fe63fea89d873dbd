"""What the database catalog says about an exposed table (store/postgres.py reads it at start). Pure data: the
only source of identifiers that reach SQL text."""
from __future__ import annotations

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

    @property
    def gateway_ids(self) -> bool:
        """Whether the gateway may name a new row's id itself: the column's default is hapta.new_id(), whose ids
        (15 characters of [a-z0-9]) records/combine.py new_id makes the same way, without a call per row."""
        column = self.columns.get("id")
        return column is not None and column.kind == "text" and column.default == "hapta.new_id()"
