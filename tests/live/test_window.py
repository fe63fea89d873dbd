"""A live query's window and its diffs (hapta/live/window.py), without any server: the window holds the first
records of the result in PostgreSQL's order, and applying a diff to the items a client holds gives the new items."""
from __future__ import annotations

import math
import random
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings, strategies as st

from hapta.live.window import Entry, Order, Window, apply, collation_key, diff
from hapta.query import schema as kinds


def records(n: int) -> list[dict]:
    return [{"id": f"r{i:03d}", "version": 1, "n": i} for i in range(n)]


def items(entries: list[Entry]) -> list[tuple[str, int, dict]]:
    return [(e.id, e.version, e.record) for e in entries]


ORDER = Order([("n", False), ("id", False)], {"n": kinds.INT, "id": kinds.TEXT})


def entry(record: dict, order: Order = ORDER) -> Entry:
    return Entry(order.key(record), record["id"], record["version"], record)


def test_nulls_sort_last_ascending_and_first_descending_as_postgresql_does():
    rows = [{"id": "a", "n": 2}, {"id": "b", "n": None}, {"id": "c", "n": 1}]
    up = Order([("n", False), ("id", False)], {"n": kinds.INT, "id": kinds.TEXT})
    down = Order([("n", True), ("id", False)], {"n": kinds.INT, "id": kinds.TEXT})
    assert [r["id"] for r in sorted(rows, key=up.key)] == ["c", "a", "b"]
    assert [r["id"] for r in sorted(rows, key=down.key)] == ["b", "a", "c"]


def test_nan_sorts_above_every_number_and_ties_go_by_id():
    rows = [{"id": "b", "x": math.nan}, {"id": "a", "x": math.inf}, {"id": "c", "x": -1.5}, {"id": "d", "x": -1.5}]
    order = Order([("x", False), ("id", True)], {"x": kinds.FLOAT, "id": kinds.TEXT})
    assert [r["id"] for r in sorted(rows, key=order.key)] == ["d", "c", "a", "b"]


def test_times_and_booleans_compare_as_values():
    now = datetime(2026, 12, 7, tzinfo=timezone.utc)
    rows = [{"id": "a", "at": now, "ok": True}, {"id": "b", "at": now - timedelta(seconds=1), "ok": False}]
    order = Order([("ok", True), ("at", False), ("id", False)],
                  {"ok": kinds.BOOL, "at": kinds.TIMESTAMP, "id": kinds.TEXT})
    assert [r["id"] for r in sorted(rows, key=order.key)] == ["a", "b"]


def test_text_under_a_c_collation_is_code_point_order():
    assert collation_key("C.UTF-8") is str and collation_key("C") is str and collation_key("POSIX") is str
    assert collation_key("und-x-icu", provider="i") is None


def test_a_window_holds_the_first_records_and_drops_the_tail_past_its_margin():
    window = Window(limit=3, margin=2)
    window.fill([entry(r) for r in records(5)], complete=False)
    window.put(entry({"id": "new", "version": 1, "n": -1}))
    assert [e.id for e in window.items()] == ["new", "r000", "r001"]
    assert len(window.entries) == 5 and not window.holds("r004") and not window.complete


def test_a_record_beyond_an_incomplete_window_is_not_held_and_a_complete_one_takes_it():
    window = Window(limit=3, margin=1)
    window.fill([entry(r) for r in records(4)], complete=False)
    window.put(entry({"id": "far", "version": 1, "n": 99}))
    assert not window.holds("far")
    window.fill([entry(r) for r in records(2)], complete=True)
    window.put(entry({"id": "far", "version": 1, "n": 99}))
    assert [e.id for e in window.items()] == ["r000", "r001", "far"]


def test_a_window_takes_what_it_holds_and_what_enters_at_or_before_its_frontier():
    window = Window(limit=2, margin=1)
    window.fill([entry(r) for r in records(3)], complete=False)
    assert window.takes("r001", None) and window.takes("r002", entry({"id": "r002", "version": 2, "n": 50}))
    assert not window.takes("other", None)
    assert window.takes("new", entry({"id": "new", "version": 1, "n": 2}))       # ties go by id: before r002
    assert not window.takes("new", entry({"id": "new", "version": 1, "n": 3}))   # beyond: not known there
    window.fill([entry(r) for r in records(1)], complete=True)
    assert window.takes("far", entry({"id": "far", "version": 1, "n": 99}))    # the whole result: anything enters


def test_a_window_is_short_once_drops_eat_its_margin_of_a_longer_result():
    window = Window(limit=2, margin=1)
    window.fill([entry(r) for r in records(3)], complete=False)
    window.drop("r000")
    assert not window.short
    window.drop("r001")
    assert window.short
    window.fill([entry(r) for r in records(1)], complete=True)
    assert not window.short   # the whole result is one record


def test_an_entry_at_the_top_is_one_insert_and_a_record_that_moves_is_one_move():
    before = items([entry(r) for r in records(5)])
    top = {"id": "top", "version": 1, "n": -1}
    assert diff(before, [("top", 1, top)] + before[:4]) == [
        {"op": "delete", "id": "r004"}, {"op": "insert", "index": 0, "record": top}]
    last_first = [before[4]] + before[:4]
    assert diff(before, last_first) == [{"op": "move", "id": "r004", "index": 0, "record": before[4][2]}]
    first_last = before[1:] + [before[0]]
    assert diff(before, first_last) == [{"op": "move", "id": "r000", "index": 4, "record": before[0][2]}]


def test_a_changed_record_in_place_is_an_update_and_nothing_changed_is_no_op():
    before = items([entry(r) for r in records(3)])
    changed = {"id": "r001", "version": 2, "n": 1, "text": "edited"}
    assert diff(before, [before[0], ("r001", 2, changed), before[2]]) == [
        {"op": "update", "id": "r001", "record": changed}]
    assert diff(before, before) == []


def test_a_resume_from_ids_and_versions_alone_sends_what_changed():
    now = items([entry(r) for r in records(4)])
    have = [("r003", 1, None), ("r000", 1, None), ("gone", 1, None), ("r001", 0, None)]
    ops = diff(have, now)
    # r000 and r001 keep their relative order and stay (r001 at another version); r002 goes in after r001 (r003 is
    # still first), then r003 moves to the end
    assert ops == [{"op": "delete", "id": "gone"}, {"op": "insert", "index": 3, "record": now[2][2]},
                   {"op": "move", "id": "r003", "index": 3, "record": now[3][2]},
                   {"op": "update", "id": "r001", "record": now[1][2]}]
    held = {i: {"id": i, "version": 1, "n": int(i[1:])} for i, _, _ in have if i != "gone"}
    assert apply([held.get(i, {"id": i}) for i, _, _ in have], ops) == [record for _, _, record in now]


def _model_run(seed: int, limit: int, margin: int, steps: int) -> None:
    """A window kept by puts and drops against the whole result sorted afresh, and a client kept by diffs."""
    rng = random.Random(seed)
    order = Order([("n", rng.random() < 0.5), ("id", False)], {"n": kinds.INT, "id": kinds.TEXT})
    table: dict[str, dict] = {}
    for i in range(rng.randrange(0, 3 * (limit + margin))):
        table[f"r{i}"] = {"id": f"r{i}", "version": 1, "n": rng.choice([None, *range(20)])}

    def truth() -> list[Entry]:
        return sorted((entry(r, order) for r in table.values()), key=lambda e: e.key)

    window = Window(limit, margin)
    full = truth()
    window.fill(full[:limit + margin], complete=len(full) <= limit + margin)
    client = [e.record for e in window.items()]
    sent = items(window.items())

    def change(record_id: str, now: Entry | None) -> None:
        """A put or drop, as realtime makes it: one the window would not take is left out (queries.effects)."""
        was = (list(window.entries), window.frontier)
        taken = window.takes(record_id, now)
        window.put(now) if now is not None else window.drop(record_id)
        if not taken:
            assert (window.entries, window.frontier) == was

    for step in range(steps):
        roll = rng.random()
        if roll < 0.35 or not table:
            record = {"id": f"n{seed}x{step}", "version": 1, "n": rng.choice([None, *range(20)])}
            table[record["id"]] = record
            change(record["id"], entry(record, order))
        elif roll < 0.7:
            record = table[rng.choice(sorted(table))]
            record = {**record, "version": record["version"] + 1, "n": rng.choice([None, *range(20)])}
            table[record["id"]] = record
            change(record["id"], entry(record, order))
        elif roll < 0.8:   # a record that does not match (another filter's): dropped if held
            change(f"elsewhere{rng.randrange(5)}", None)
        else:
            gone = table.pop(rng.choice(sorted(table)))
            change(gone["id"], None)
        full = truth()
        if window.short:   # read again, as the gateway does
            window.fill(full[:limit + margin], complete=len(full) <= limit + margin)
        assert [e.id for e in window.entries] == [e.id for e in full[:len(window.entries)]]
        now = items(window.items())
        client = apply(client, diff(sent, now))
        sent = now
        assert client == [e.record for e in full[:limit]]


def test_a_window_kept_by_puts_and_drops_matches_the_result_sorted_afresh():
    for seed in range(300):
        _model_run(seed, limit=1 + seed % 7, margin=seed % 4, steps=60)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 30), unique=True, max_size=25), st.lists(st.integers(0, 30), unique=True,
                                                                        max_size=25), st.randoms())
def test_applying_a_diff_gives_the_new_items(old_ids, new_ids, rng):
    def item(i: int, version: int) -> tuple[str, int, dict]:
        return (f"i{i}", version, {"id": f"i{i}", "version": version})
    before = [item(i, 1) for i in old_ids]
    after = [item(i, rng.choice([1, 2])) for i in new_ids]
    ops = diff(before, after)
    assert apply([record for _, _, record in before], ops) == [record for _, _, record in after]
    moved_or_new = [op for op in ops if op["op"] in ("insert", "move")]
    # never more inserts and moves than records that are new or out of their relative order
    assert len(moved_or_new) <= len(after)
