"""The change trigger runs once per statement (hapta/store/sql/0015_statement_changes.sql), in-process on real
PostgreSQL: one SQL statement that writes many rows gives each row its own change, in the order the statement
wrote them, with the old values the rules need (an update that hides rows from a reader reaches them as deletes)."""
from __future__ import annotations


async def _changes(device, count: int) -> list[dict]:
    return [(await device.event("records.change"))["data"] for _ in range(count)]


async def test_one_statement_of_many_rows_gives_each_row_its_change(harness):
    alice, bob = await harness.user(), await harness.user()
    mine = {"collection": "posts", "filter": f'author = "{alice.user["id"]}"'}
    await alice.call("realtime.subscribe", mine)
    await bob.call("realtime.subscribe", mine)
    db = harness.gateway.db
    texts = [f"in one statement {n}" for n in range(5)]
    ids = [row["id"] for row in await db.fetch(
        "INSERT INTO posts (author, text, public) SELECT $1, t, true FROM unnest($2::text[]) AS t RETURNING id",
        alice.user["id"], texts)]
    for device in (alice, bob):
        created = await _changes(device, 5)
        assert [c["action"] for c in created] == ["create"] * 5
        assert [c["record"]["text"] for c in created] == texts   # in the order the statement wrote them
        assert [c["pos"] for c in created] == sorted(c["pos"] for c in created)

    # private now: who could see them before is told by the old values the trigger kept
    await db.execute("UPDATE posts SET public = false WHERE id = ANY($1::text[])", ids[:3])
    hidden = await _changes(bob, 3)
    assert [(c["action"], c["record"]) for c in hidden] == [("delete", {"id": i}) for i in ids[:3]]
    updated = await _changes(alice, 3)
    assert [(c["action"], c["record"]["id"], c["record"]["public"]) for c in updated] == \
        [("update", i, False) for i in ids[:3]]

    await db.execute("DELETE FROM posts WHERE id = ANY($1::text[])", ids)
    for device, seen in ((alice, ids), (bob, ids[3:])):   # bob no longer sees the private ones: nothing to delete
        gone = await _changes(device, len(seen))
        assert sorted(c["record"]["id"] for c in gone) == sorted(seen) and {c["action"] for c in gone} == {"delete"}

