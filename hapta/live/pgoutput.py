"""pgoutput's logical replication messages, decoded (pure: bytes in, values out; no I/O).

PostgreSQL's built-in output plugin `pgoutput` (what `CREATE PUBLICATION` subscribers read) turns the WAL of a
logical replication slot into the messages of "Logical Replication Message Formats" in the PostgreSQL
documentation (protocol version 1, tuple values as text). Read over a replication connection (inside XLogData) or
with `pg_logical_slot_peek_binary_changes(slot, NULL, n, 'proto_version', '1', 'publication_names', 'pub')` (one
message a row, in `data`), they come as:

    B  Begin     final LSN (of the commit record), commit time, xid
    R  Relation  before the first change of a table in a session (and again when it changed): its columns
    I  Insert    the new row
    U  Update    the old key ('K') or the old row ('O', REPLICA IDENTITY FULL) if any, then the new row ('N')
    D  Delete    the old key ('K') or the old row ('O')
    T  Truncate  the tables truncated
    C  Commit    commit LSN, end LSN, commit time

plus Origin (O), Type (Y) and logical decoding messages (M), decoded but of no use to a feed. A tuple's values are
`None` (NULL), `UNCHANGED` (a TOASTed value the update did not touch: not sent) or the value's text (bytes with
the `binary` option). `Transactions` folds a stream of messages into committed transactions, one row change each
with its columns named. bench/feeds.py's design (a) reads the feed this way; tests/live/test_pgoutput.py builds
every message by hand from the documented formats.
"""
from __future__ import annotations

import struct
from typing import Any, Iterator

import msgspec

# Timestamps in the messages: microseconds since 2000-01-01 00:00 UTC (PostgreSQL's epoch).
POSTGRES_EPOCH_UNIX = 946_684_800


class _Unchanged:
    """An unchanged TOASTed value of an update's new row ('u'): PostgreSQL did not send it."""
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Any = _Unchanged()


class Begin(msgspec.Struct, frozen=True):
    final_lsn: int        # the LSN of the transaction's commit record
    commit_time: int      # microseconds since 2000-01-01 UTC
    xid: int              # 32 bits, as the WAL has it (no epoch)


class Commit(msgspec.Struct, frozen=True):
    flags: int
    commit_lsn: int       # the commit record's LSN (= Begin.final_lsn): the transaction's place in commit order
    end_lsn: int          # just after it: where a slot is advanced to once the transaction is kept
    commit_time: int


class Origin(msgspec.Struct, frozen=True):
    lsn: int
    name: str


class Column(msgspec.Struct, frozen=True):
    name: str
    type_oid: int
    type_modifier: int
    key: bool             # part of the replica identity


class Relation(msgspec.Struct, frozen=True):
    oid: int
    namespace: str        # "" for pg_catalog
    name: str
    replica_identity: str   # 'd' default (primary key), 'n' nothing, 'f' full, 'i' index
    columns: tuple[Column, ...]


class Type(msgspec.Struct, frozen=True):
    oid: int
    namespace: str
    name: str


class Insert(msgspec.Struct, frozen=True):
    relation: int
    new: tuple


class Update(msgspec.Struct, frozen=True):
    relation: int
    new: tuple
    old: tuple | None = None      # the old key (old_kind 'K') or row ('O'); None when the key did not change
    old_kind: str | None = None


class Delete(msgspec.Struct, frozen=True):
    relation: int
    old: tuple
    old_kind: str                 # 'K' the old key only, 'O' the whole old row (REPLICA IDENTITY FULL)


class Truncate(msgspec.Struct, frozen=True):
    relations: tuple[int, ...]
    options: int                  # 1: CASCADE, 2: RESTART IDENTITY


class Message(msgspec.Struct, frozen=True):
    transactional: bool
    lsn: int
    prefix: str
    content: bytes


class DecodeError(ValueError):
    """Not a pgoutput message of protocol version 1 (or cut short)."""


_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_U32 = struct.Struct(">I")
_Q = struct.Struct(">Q")
_BEGIN = struct.Struct(">QqI")
_COMMIT = struct.Struct(">BQQq")


def _string(data: bytes, at: int) -> tuple[str, int]:
    end = data.index(b"\0", at)
    return data[at:end].decode(), end + 1


def _tuple(data: bytes, at: int) -> tuple[tuple, int]:
    (count,) = _I16.unpack_from(data, at)
    at += 2
    values: list[Any] = []
    append = values.append
    for _ in range(count):
        kind = data[at]
        at += 1
        if kind == 0x74 or kind == 0x62:            # 't' text, 'b' binary: Int32 length, then the bytes
            (length,) = _I32.unpack_from(data, at)
            at += 4
            raw = data[at:at + length]
            if len(raw) != length:
                raise DecodeError("a column value is cut short")
            append(raw.decode() if kind == 0x74 else bytes(raw))
            at += length
        elif kind == 0x6E:                          # 'n' NULL
            append(None)
        elif kind == 0x75:                          # 'u' unchanged TOASTed value
            append(UNCHANGED)
        else:
            raise DecodeError(f"unknown column kind {chr(kind)!r}")
    return tuple(values), at


def decode(data: bytes | bytearray | memoryview) -> Any:
    """One message (what one row of pg_logical_slot_*_binary_changes holds in `data`)."""
    data = bytes(data)
    if not data:
        raise DecodeError("an empty message")
    kind = data[0]
    try:
        if kind == 0x42:                                         # B
            final_lsn, commit_time, xid = _BEGIN.unpack_from(data, 1)
            return Begin(final_lsn, commit_time, xid)
        if kind == 0x43:                                         # C
            return Commit(*_COMMIT.unpack_from(data, 1))
        if kind == 0x49:                                         # I
            relation, = _U32.unpack_from(data, 1)
            if data[5] != 0x4E:
                raise DecodeError("an insert without its new row")
            new, _ = _tuple(data, 6)
            return Insert(relation, new)
        if kind == 0x55:                                         # U
            relation, = _U32.unpack_from(data, 1)
            at = 5
            old = old_kind = None
            if data[at] in (0x4B, 0x4F):                         # 'K' old key, 'O' old row
                old_kind = chr(data[at])
                old, at = _tuple(data, at + 1)
            if data[at] != 0x4E:
                raise DecodeError("an update without its new row")
            new, _ = _tuple(data, at + 1)
            return Update(relation, new, old, old_kind)
        if kind == 0x44:                                         # D
            relation, = _U32.unpack_from(data, 1)
            if data[5] not in (0x4B, 0x4F):
                raise DecodeError("a delete without its old key or row")
            old, _ = _tuple(data, 6)
            return Delete(relation, old, chr(data[5]))
        if kind == 0x52:                                         # R
            oid, = _U32.unpack_from(data, 1)
            namespace, at = _string(data, 5)
            name, at = _string(data, at)
            identity = chr(data[at])
            (count,) = _I16.unpack_from(data, at + 1)
            at += 3
            columns = []
            for _ in range(count):
                flags = data[at]
                column, at = _string(data, at + 1)
                type_oid, = _U32.unpack_from(data, at)
                modifier, = _I32.unpack_from(data, at + 4)
                at += 8
                columns.append(Column(column, type_oid, modifier, bool(flags & 1)))
            return Relation(oid, namespace, name, identity, tuple(columns))
        if kind == 0x54:                                         # T
            (count,) = _U32.unpack_from(data, 1)
            options = data[5]
            oids = struct.unpack_from(f">{count}I", data, 6)
            return Truncate(tuple(oids), options)
        if kind == 0x59:                                         # Y
            oid, = _U32.unpack_from(data, 1)
            namespace, at = _string(data, 5)
            name, _ = _string(data, at)
            return Type(oid, namespace, name)
        if kind == 0x4F:                                         # O
            lsn, = _Q.unpack_from(data, 1)
            name, _ = _string(data, 9)
            return Origin(lsn, name)
        if kind == 0x4D:                                         # M
            flags = data[1]
            lsn, = _Q.unpack_from(data, 2)
            prefix, at = _string(data, 10)
            (length,) = _I32.unpack_from(data, at)
            content = data[at + 4:at + 4 + length]
            if len(content) != length:
                raise DecodeError("a message's content is cut short")
            return Message(bool(flags & 1), lsn, prefix, content)
    except (struct.error, IndexError, ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, DecodeError):
            raise
        raise DecodeError(f"a {chr(kind)!r} message is malformed: {exc}") from None
    raise DecodeError(f"unknown message type {chr(kind)!r}")


class RowChange(msgspec.Struct, frozen=True):
    """One row's change in a committed transaction, its values by column name (text, None or UNCHANGED)."""
    relation: Relation
    action: str                           # "insert" | "update" | "delete"
    new: dict[str, Any] | None            # insert, update
    old: dict[str, Any] | None            # update: the old row or key if sent; delete: the old row or key
    old_is_row: bool = False              # old holds every column (REPLICA IDENTITY FULL), not just the key


class Transaction(msgspec.Struct, frozen=True):
    xid: int                              # 32 bits (see widen_xid)
    commit_lsn: int
    end_lsn: int
    commit_time: int
    changes: list[RowChange]
    truncated: tuple[Relation, ...] = ()  # tables emptied by TRUNCATE in it (their rows' changes are not sent)


class Transactions:
    """Folds messages, in the order a slot gives them, into committed transactions. The relations it learned
    last time are kept (over a replication connection each is sent once a session; the SQL functions send them
    again at every call)."""

    def __init__(self) -> None:
        self.relations: dict[int, Relation] = {}
        self._begin: Begin | None = None
        self._changes: list[RowChange] = []
        self._truncated: list[Relation] = []

    def _relation(self, oid: int) -> Relation:
        try:
            return self.relations[oid]
        except KeyError:
            raise DecodeError(f"a change of relation {oid} before its Relation message") from None

    def feed(self, data: bytes | bytearray | memoryview) -> Transaction | None:
        """Take one message; the transaction it completes, if it is a Commit."""
        message = decode(data)
        if isinstance(message, (Insert, Update, Delete)):
            if self._begin is None:
                raise DecodeError("a row change outside a transaction")
            relation = self._relation(message.relation)
            names = [column.name for column in relation.columns]
            if isinstance(message, Insert):
                self._changes.append(RowChange(relation, "insert", dict(zip(names, message.new)), None))
            elif isinstance(message, Update):
                old = None if message.old is None else dict(zip(names, message.old))
                self._changes.append(RowChange(relation, "update", dict(zip(names, message.new)), old,
                                               message.old_kind == "O"))
            else:
                self._changes.append(RowChange(relation, "delete", None, dict(zip(names, message.old)),
                                               message.old_kind == "O"))
            return None
        if isinstance(message, Begin):
            self._begin, self._changes, self._truncated = message, [], []
            return None
        if isinstance(message, Commit):
            begin = self._begin
            if begin is None:
                raise DecodeError("a Commit without its Begin")
            done = Transaction(begin.xid, message.commit_lsn, message.end_lsn, message.commit_time, self._changes,
                               tuple(self._truncated))
            self._begin, self._changes, self._truncated = None, [], []
            return done
        if isinstance(message, Relation):
            self.relations[message.oid] = message
        elif isinstance(message, Truncate):
            self._truncated.extend(self._relation(oid) for oid in message.relations)
        return None   # Origin, Type, Message: nothing a feed needs

    def feed_all(self, messages: Iterator[bytes] | list[bytes]) -> list[Transaction]:
        done = []
        for data in messages:
            transaction = self.feed(data)
            if transaction is not None:
                done.append(transaction)
        return done


def widen_xid(xid: int, near: int) -> int:
    """A 32-bit xid (what the WAL and pgoutput carry) as the 64-bit one (xid8, pg_current_xact_id) it is, given
    a 64-bit xid `near` it (within 2^31: e.g. the xmax of a recent pg_current_snapshot())."""
    delta = (xid - near) & 0xFFFFFFFF
    if delta >= 0x80000000:
        delta -= 0x100000000
    return near + delta


def lsn_text(lsn: int) -> str:
    """An LSN as PostgreSQL writes it (pg_lsn): 16/B374D848."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)
