"""pgoutput's messages (hapta/live/pgoutput.py), without a server: each built by hand from "Logical Replication
Message Formats" in the PostgreSQL documentation (protocol version 1), then decoded, and folded into transactions."""
from __future__ import annotations

import struct

import pytest

from hapta.live.pgoutput import (UNCHANGED, Begin, Column, Commit, DecodeError, Delete, Insert, Message, Origin,
                                 Relation, Transactions, Truncate, Type, Update, decode, lsn_text, parse_lsn,
                                 widen_xid)

POSTS = 16_390


def string(text: str) -> bytes:
    return text.encode() + b"\0"


def tuple_data(*values) -> bytes:
    """TupleData: Int16 columns, then per column 'n' (NULL), 'u' (unchanged TOAST) or 't' Int32 length + text."""
    out = struct.pack(">h", len(values))
    for value in values:
        if value is None:
            out += b"n"
        elif value is UNCHANGED:
            out += b"u"
        elif isinstance(value, bytes):
            out += b"b" + struct.pack(">i", len(value)) + value
        else:
            raw = value.encode()
            out += b"t" + struct.pack(">i", len(raw)) + raw
    return out


def begin(final_lsn: int, xid: int, when: int = 812_345_678_901_234) -> bytes:
    return b"B" + struct.pack(">QqI", final_lsn, when, xid)


def commit(commit_lsn: int, end_lsn: int, when: int = 812_345_678_901_234) -> bytes:
    return b"C" + struct.pack(">BQQq", 0, commit_lsn, end_lsn, when)


def relation(oid: int = POSTS, identity: bytes = b"f") -> bytes:
    columns = [(1, "id", 25, -1), (0, "author", 25, -1), (0, "public", 16, -1), (0, "text", 25, -1),
               (0, "version", 20, -1)]
    out = b"R" + struct.pack(">I", oid) + string("public") + string("posts") + identity
    out += struct.pack(">h", len(columns))
    for flags, name, type_oid, modifier in columns:
        out += struct.pack(">b", flags) + string(name) + struct.pack(">Ii", type_oid, modifier)
    return out


def insert(*values, oid: int = POSTS) -> bytes:
    return b"I" + struct.pack(">I", oid) + b"N" + tuple_data(*values)


def update(new, old=None, kind: bytes = b"O", oid: int = POSTS) -> bytes:
    out = b"U" + struct.pack(">I", oid)
    if old is not None:
        out += kind + tuple_data(*old)
    return out + b"N" + tuple_data(*new)


def delete(old, kind: bytes = b"O", oid: int = POSTS) -> bytes:
    return b"D" + struct.pack(">I", oid) + kind + tuple_data(*old)


def test_begin_and_commit():
    assert decode(begin(0x16_B374D848, 4_000_000_123)) == Begin(0x16_B374D848, 812_345_678_901_234, 4_000_000_123)
    assert decode(commit(0x10, 0x48)) == Commit(0, 0x10, 0x48, 812_345_678_901_234)


def test_relation_names_its_columns_and_key():
    message = decode(relation())
    assert message == Relation(POSTS, "public", "posts", "f", (
        Column("id", 25, -1, True), Column("author", 25, -1, False), Column("public", 16, -1, False),
        Column("text", 25, -1, False), Column("version", 20, -1, False)))


def test_relation_in_pg_catalog_has_an_empty_namespace():
    data = b"R" + struct.pack(">I", 7) + string("") + string("t") + b"d" + struct.pack(">h", 0)
    assert decode(data) == Relation(7, "", "t", "d", ())


def test_insert_values_text_null_and_utf8():
    assert decode(insert("abc", "ü✓", "t", None, "1")) == Insert(POSTS, ("abc", "ü✓", "t", None, "1"))


def test_binary_values_are_bytes():
    assert decode(insert(b"\x00\x01", None)).new == (b"\x00\x01", None)


def test_update_with_the_old_row_the_old_key_or_neither():
    new = ("a", "u1", "f", UNCHANGED, "2")
    full = decode(update(new, ("a", "u1", "t", "old text", "1"), b"O"))
    assert full == Update(POSTS, new, ("a", "u1", "t", "old text", "1"), "O")
    assert full.new[3] is UNCHANGED
    key = decode(update(new, ("a", None, None, None, None), b"K"))
    assert key.old_kind == "K" and key.old == ("a", None, None, None, None)
    assert decode(update(new)) == Update(POSTS, new, None, None)


def test_delete_with_the_old_row_or_key():
    assert decode(delete(("a", "u1", "t", "x", "3"))) == Delete(POSTS, ("a", "u1", "t", "x", "3"), "O")
    assert decode(delete(("a", None, None, None, None), b"K")).old_kind == "K"


def test_truncate_type_origin_and_message():
    assert decode(b"T" + struct.pack(">IB", 2, 1) + struct.pack(">II", POSTS, 99)) == Truncate((POSTS, 99), 1)
    assert decode(b"Y" + struct.pack(">I", 70_000) + string("public") + string("mood")) == \
        Type(70_000, "public", "mood")
    assert decode(b"O" + struct.pack(">Q", 0x55) + string("node_a")) == Origin(0x55, "node_a")
    assert decode(b"M" + struct.pack(">BQ", 1, 0x66) + string("hapta") + struct.pack(">i", 3) + b"hey") == \
        Message(True, 0x66, "hapta", b"hey")


@pytest.mark.parametrize("data", [
    b"",                                                    # nothing
    b"Z\0\0",                                               # an unknown type
    begin(1, 2)[:-1],                                       # cut short
    insert("a")[:-1],                                       # a value cut short
    b"I" + struct.pack(">I", POSTS) + b"X" + tuple_data("a"),   # no 'N' before the new row
    b"I" + struct.pack(">I", POSTS) + b"N" + struct.pack(">h", 1) + b"q",   # an unknown column kind
    b"D" + struct.pack(">I", POSTS) + b"N" + tuple_data("a"),   # a delete with neither 'K' nor 'O'
    b"R" + struct.pack(">I", 1) + b"public",                # a string without its end
])
def test_malformed_messages_are_refused(data):
    with pytest.raises(DecodeError):
        decode(data)


def test_transactions_fold_messages_into_named_row_changes():
    folder = Transactions()
    messages = [
        begin(0x200, 741), relation(),
        insert("p1", "u1", "t", "hello", "1"),
        update(("p1", "u1", "f", UNCHANGED, "2"), ("p1", "u1", "t", "hello", "1")),
        delete(("p1", "u1", "f", "hello", "2")),
        commit(0x200, 0x230),
        begin(0x300, 742), insert("p2", "u2", "f", "x", "1"), commit(0x300, 0x330),
    ]
    first, second = folder.feed_all(messages)
    assert (first.xid, first.commit_lsn, first.end_lsn) == (741, 0x200, 0x230)
    created, updated, deleted = first.changes
    assert created.action == "insert" and created.old is None
    assert created.new == {"id": "p1", "author": "u1", "public": "t", "text": "hello", "version": "1"}
    assert updated.action == "update" and updated.old_is_row
    assert updated.old["public"] == "t" and updated.new["public"] == "f" and updated.new["text"] is UNCHANGED
    assert deleted.action == "delete" and deleted.new is None and deleted.old["version"] == "2"
    assert created.relation.name == "posts"
    # the relation learned in the first transaction serves the second (a replication connection sends it once)
    assert second.changes[0].new["id"] == "p2"


def test_a_key_only_old_tuple_is_not_the_row():
    folder = Transactions()
    [done] = folder.feed_all([begin(1, 1), relation(identity=b"d"),
                              delete(("p1", None, None, None, None), b"K"), commit(1, 2)])
    assert done.changes[0].old_is_row is False and done.changes[0].old["id"] == "p1"


def test_truncate_is_reported_with_the_transaction():
    folder = Transactions()
    [done] = folder.feed_all([begin(1, 1), relation(), b"T" + struct.pack(">IB", 1, 0) + struct.pack(">I", POSTS),
                              commit(1, 2)])
    assert [r.name for r in done.truncated] == ["posts"] and done.changes == []


def test_out_of_order_messages_are_refused():
    with pytest.raises(DecodeError):   # a change before its relation
        Transactions().feed_all([begin(1, 1), insert("a", "b", "t", "c", "1")])
    with pytest.raises(DecodeError):   # a change outside a transaction
        Transactions().feed_all([relation(), insert("a", "b", "t", "c", "1")])
    with pytest.raises(DecodeError):   # a commit without its begin
        Transactions().feed(commit(1, 2))


def test_widen_xid_across_the_epoch():
    assert widen_xid(5, 5) == 5
    assert widen_xid(100, (3 << 32) + 90) == (3 << 32) + 100              # a little after
    assert widen_xid(80, (3 << 32) + 90) == (3 << 32) + 80                # a little before
    assert widen_xid(0xFFFFFFF0, (3 << 32) + 5) == (2 << 32) + 0xFFFFFFF0    # before the wrap
    assert widen_xid(3, (2 << 32) + 0xFFFFFFF0) == (3 << 32) + 3          # after the wrap


def test_lsn_text_round_trip():
    assert lsn_text(0x16_B374D848) == "16/B374D848"
    assert parse_lsn("16/B374D848") == 0x16_B374D848
    assert parse_lsn(lsn_text(0)) == 0
