"""How several changes of one record in a batch become one event (hapta/live/realtime.py _coalesce). Pure."""
from __future__ import annotations

from hapta.live.feed import Change
from hapta.live.realtime import _coalesce


def _change(position: int, action: str, record: str, old: dict | None = None) -> Change:
    return Change("posts", action, record, position, old=old, position=position, place=position)


def test_a_record_changed_twice_becomes_one_event_at_its_last_position():
    merged = _coalesce([_change(1, "create", "a"), _change(2, "create", "b"),
                        _change(3, "update", "a", {"public": True}), _change(4, "update", "b", {"text": "x"})])
    assert [(c.id, c.action, c.position) for c in merged] == [("a", "create", 3), ("b", "create", 4)]


def test_positions_rise_from_one_event_to_the_next():
    merged = _coalesce([_change(1, "update", "a", {"public": True}), _change(2, "update", "b"),
                        _change(3, "update", "a", {"public": False, "text": "x"}), _change(4, "delete", "c")])
    positions = [c.position for c in merged]
    assert positions == sorted(positions) == [2, 3, 4]


def test_the_oldest_old_values_are_kept():
    """Who could see the record before the batch is what its first change's old values say."""
    [merged] = _coalesce([_change(1, "update", "a", {"public": True}),
                          _change(2, "update", "a", {"public": False, "text": "old"})])
    assert merged.action == "update" and merged.old == {"public": True, "text": "old"}


def test_deletes_are_kept_as_they_come():
    merged = _coalesce([_change(1, "update", "a"), _change(2, "delete", "a"), _change(3, "create", "a")])
    assert [(c.action, c.position) for c in merged] == [("delete", 2), ("update", 3)]
