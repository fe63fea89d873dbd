"""What the gateway learns from the database's catalog at start: the exposed tables' columns, their kinds, their
relations and unique constraints. The catalog is the only source of identifiers that reach SQL text: they come
from here, never from a client."""
from __future__ import annotations

import asyncpg

from ..catalog import Column, TableInfo, check_choices
from ..query.kinds import FROM_CATALOG


async def known_search_configs(conn: asyncpg.Connection, names: list[str]) -> set[str]:
    """Which of these text-search configurations (Collection.search) the database has."""
    rows = await conn.fetch("SELECT cfgname FROM pg_ts_config WHERE cfgname = ANY($1::text[])", names)
    return {row["cfgname"] for row in rows}


async def introspect(conn: asyncpg.Connection, names: list[str]) -> dict[str, TableInfo]:
    """Describe the tables named (in the current schema) that exist."""
    tables: dict[str, TableInfo] = {}
    for r in await conn.fetch("""
            SELECT table_name, column_name, data_type, is_nullable = 'YES' AS nullable,
                   column_default IS NOT NULL OR is_identity = 'YES' AS has_default, column_default
            FROM information_schema.columns
            WHERE table_schema = current_schema() AND table_name = ANY($1::text[])
            ORDER BY table_name, ordinal_position""", names):
        kind = FROM_CATALOG.get(r["data_type"])   # columns of other types are not exposed
        if kind is None:
            continue
        info = tables.setdefault(r["table_name"], TableInfo(r["table_name"]))
        info.columns[r["column_name"]] = Column(r["column_name"], kind, r["nullable"], r["has_default"],
                                                   r["column_default"])
    for r in await conn.fetch("""
            SELECT rel.relname AS tbl, con.conname, con.contype::text AS contype,
                   array_agg(att.attname ORDER BY att.attnum) AS cols, frel.relname AS target,
                   pg_get_constraintdef(con.oid) AS definition
            FROM pg_constraint con
            JOIN pg_class rel ON rel.oid = con.conrelid
            LEFT JOIN pg_class frel ON frel.oid = con.confrelid
            JOIN pg_attribute att ON att.attrelid = con.conrelid AND att.attnum = ANY(con.conkey)
            WHERE rel.relnamespace = current_schema()::regnamespace AND rel.relname = ANY($1::text[])
              AND con.contype IN ('f', 'c')
            GROUP BY rel.relname, con.conname, con.contype, frel.relname, con.oid""", names):
        info = tables.get(r["tbl"])
        if info is None:
            continue
        cols = tuple(r["cols"])
        if r["contype"] == "f" and len(cols) == 1:
            info.foreign_keys[r["conname"]] = cols[0]
            info.relations[cols[0]] = r["target"]
        elif r["contype"] == "c":
            info.checks[r["conname"]] = cols
            choices = check_choices(r["definition"]) if len(cols) == 1 else None
            if choices is not None and choices[0] == cols[0]:   # a form offers these values as a select
                info.choices[cols[0]] = choices[1]
    for r in await conn.fetch("""
            SELECT t.relname AS tbl, i.relname AS idx, array_agg(a.attname ORDER BY a.attnum) AS cols
            FROM pg_index x
            JOIN pg_class i ON i.oid = x.indexrelid
            JOIN pg_class t ON t.oid = x.indrelid
            JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY(x.indkey)
            WHERE x.indisunique AND t.relnamespace = current_schema()::regnamespace
              AND t.relname = ANY($1::text[])
            GROUP BY t.relname, i.relname""", names):
        info = tables.get(r["tbl"])
        if info is not None:
            info.uniques[r["idx"]] = tuple(r["cols"])
    return tables
