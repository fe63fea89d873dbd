"""The kinds table (hapta/query/kinds.py): each kind's row agrees with PostgreSQL and with itself. A new kind is a
new row; these tests hold it to what the rest of the code expects of one."""
from __future__ import annotations

import math
import uuid
from datetime import datetime, timezone

import pytest

from hapta.protocol.codec import MAX_NESTING
from hapta.query.kinds import FROM_CATALOG, INT64, KINDS, Refused
from hapta.store.postgres import create_pool
from hapta.store.introspection import introspect

def deeply_nested() -> list:
    nested: list = []
    for _ in range(MAX_NESTING + 1):
        nested = [nested]
    return nested


GOOD = {"text": "hello", "int": INT64[1], "float": 1.5, "bool": True, "timestamp": "2026-12-07T10:00:00Z",
        "uuid": str(uuid.uuid4()), "json": {"a": [1, 2, {"b": None}]}}
BAD = {"text": [5, "\x00"], "int": [True, 1.5, INT64[1] + 1, "3"], "float": [math.inf, "1", False],
       "bool": [0, "true"], "timestamp": ["yesterday", 5, "0001-01-01T00:00:00+14:00"], "uuid": ["x", 5],
       "json": [{"a": object()}, deeply_nested()]}


def test_every_kind_has_a_row_that_accepts_its_values_and_refuses_others():
    assert set(KINDS) == set(GOOD) == set(BAD)
    for name, kind in KINDS.items():
        kind.accept(GOOD[name])
        for value in BAD[name]:
            with pytest.raises(Refused):
                kind.accept(value)


def test_a_refusal_completes_a_sentence_about_the_field():
    with pytest.raises(Refused) as refused:
        KINDS["int"].accept("3")
    assert f"likes {refused.value}" == "likes must be an integer"


def test_values_that_came_through_json_come_back_as_asyncpg_gives_them():
    assert KINDS["timestamp"].from_json("2026-12-07T10:00:00+00:00") == datetime(2026, 12, 7, 10, tzinfo=timezone.utc)
    assert isinstance(KINDS["uuid"].from_json(GOOD["uuid"]), uuid.UUID)
    assert KINDS["float"].from_json(3) == 3.0 and isinstance(KINDS["float"].from_json(3), float)
    assert KINDS["int"].from_json("42") == 42 and KINDS["text"].from_json(42) == "42"


async def test_each_row_agrees_with_postgresql(database):
    """Every catalog type of a row reads back as that kind, and every kind's SQL type casts a value of it."""
    pool = await create_pool(database, min_size=1, max_size=1)   # the gateway's own (its json codec)
    conn = await pool.acquire()
    try:
        table = "kinds_" + uuid.uuid4().hex[:8]
        columns = {f"c{n}": data_type for n, data_type in enumerate(FROM_CATALOG)}
        await conn.execute(f'CREATE TABLE "{table}" ({", ".join(f"{c} {t}" for c, t in columns.items())})')
        try:
            found = (await introspect(conn, [table]))[table].columns
            assert {c: found[c].kind for c in columns} == {c: FROM_CATALOG[t] for c, t in columns.items()}
        finally:
            await conn.execute(f'DROP TABLE "{table}"')
        for name, kind in KINDS.items():
            value = kind.accept(GOOD[name])
            back = await conn.fetchval(f"SELECT $1::{kind.pg}", value)
            assert back == value, name
    finally:
        await pool.release(conn)
        await pool.close()
