"""A CHECK constraint that is a plain IN list becomes the column's choices (TableInfo.choices, admin.schema's
`choices`: a select in the dashboard's forms): read from what PostgreSQL itself prints back, for each way it prints
one; anything else is no list."""
from __future__ import annotations

import uuid

from hapta.catalog import check_choices
from hapta.store.introspection import introspect
from hapta.store.postgres import create_pool


def test_the_shapes_postgresql_prints_an_in_list_in():
    assert check_choices("CHECK ((status = ANY (ARRAY['draft'::text, 'it''s'::text])))") == ("status", ("draft", "it's"))
    assert check_choices("CHECK ((n = ANY (ARRAY[1, 2, '-3'::integer])))") == ("n", (1, 2, -3))
    assert check_choices("""CHECK (("User" = 'a'::text))""") == ("User", ("a",))
    assert check_choices("CHECK (((v)::text = ANY ((ARRAY['x'::character varying, 'y'::character varying])"
                         "::text[])))") == ("v", ("x", "y"))
    assert check_choices("CHECK ((s = ANY (ARRAY['a, b'::text, 'c'::text])))") == ("s", ("a, b", "c"))


def test_other_checks_are_no_list():
    assert check_choices("CHECK (((o = 'a'::text) OR (o IS NULL)))") is None
    assert check_choices("CHECK ((length(text) <= 10000))") is None
    assert check_choices("CHECK ((n > 0))") is None


async def test_introspection_finds_them(database):
    pool = await create_pool(database, min_size=1, max_size=1)
    conn = await pool.acquire()
    table = "choices_" + uuid.uuid4().hex[:8]
    try:
        await conn.execute(f"""CREATE TABLE "{table}" (
            status text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'live', 'gone')),
            size int CHECK (size IN (1, 2, 3)),
            "user" varchar(20) CHECK ("user" IN ('x', 'y')),
            body text CHECK (length(body) < 10),
            CHECK (size < 3 OR status = 'live'))""")
        info = (await introspect(conn, [table]))[table]
        assert info.choices == {"status": ("draft", "live", "gone"), "size": (1, 2, 3), "user": ("x", "y")}
        assert info.columns["status"].default == "'draft'::text" and not info.columns["status"].nullable
    finally:
        await conn.execute(f'DROP TABLE IF EXISTS "{table}"')
        await pool.release(conn)
        await pool.close()
