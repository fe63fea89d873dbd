"""Change-feed designs from outside (issue 28): `python -m bench.feeds [--rounds 2] [--duration 6]`.

A throwaway PostgreSQL cluster of its own (initdb with /usr/lib/postgresql/15/bin, else pgserver's binaries; on
127.0.0.1, a free port, wal_level=logical, fsync and synchronous_commit as default), one database per design, each
with the demo app's `posts` table (migrations/0001_social.sql and 0002_search.sql: its foreign key to users, its
B-tree and GIN indexes), hapta.touch, and the change log of hapta/store/sql/0006_change_log.sql. Bare asyncpg writer
loops (1 and 50 connections; INSERTs of 1 row, and of 10 rows at 50; UPDATEs of 1 row at 50) run against each
design in turn, in alternating rounds, while that design's consumer runs in a process of its own as it would in the
gateway. The PostgreSQL CPU of each role is read per process from /proc (schedstat's nanoseconds on a CPU; the
processes found with psutil, backends' pids from pg_backend_pid()) and divided by the rows: writer backends, the consumer (numbering or decoding) backend, the
listener backend, walsenders, and the cluster's other processes (background workers, autovacuum; reaped children
through the postmaster's own counters). The consumer process's own CPU (the gateway-side Python) is given beside.

Designs:
    none      no feed at all (the floor)
    today     the row trigger of 0006 (an inbox row and a NOTIFY per row) + a listener + a numbering loop calling
              hapta.position_changes() on doorbells as ChangeFeed does (an Event per doorbell, one call in flight)
    batched   (b) the same trigger; numbering at most once per WINDOW (calls start >= WINDOW apart)
    stmt      (c1) statement-level AFTER triggers with transition tables (one per INSERT / UPDATE / DELETE): the
              statement's changes go in the inbox in one INSERT ... SELECT, one NOTIFY per statement; numbering as (b)
    quiet     (c2) as (c1) without any NOTIFY: the writer's process rings the numbering process after commit (a UDP
              datagram, at most one per event-loop tick), which also polls every POLL for writes made in plain SQL
    logical   (a) no trigger; REPLICA IDENTITY FULL; a publication and a pgoutput slot; the consumer peeks the slot
              (pg_logical_slot_peek_binary_changes), decodes pgoutput in Python (hapta/live/pgoutput.py), writes the
              changes into hapta.change_log with the next positions (one INSERT, guarded: only once every decoded
              transaction is visible), NOTIFYs the head, then advances the slot; woken as `quiet` is
    stream    (a2) as (a), but the slot is streamed by a walsender over a replication connection (asyncpg opens it,
              then its transport is taken over: asyncpg has no COPY BOTH); no polling and no ring: the walsender
              sends each transaction once its commit is flushed; the log is written as in (a) and the slot's
              position confirmed with a standby status update once it is
    stream_default    the same with REPLICA IDENTITY DEFAULT (no old row for updates: measured on UPDATEs only)

Then, per design: the latency from a write's commit (as its writer saw it) to the change being in change_log
(p50/p99, 10 connections writing 200 rows/s; for the polling designs also without the writer's ring, as a write
made in plain SQL would be), the CPU an idle consumer burns per second, and a check of the snapshot rule: under 50
writers, REPEATABLE READ snapshots read every post, the log's head H and what the design says to leave out (today:
the inbox seqs; logical: the snapshot's xids, and for comparison the commit-LSN rule); once the feed has caught up,
each change after H must be in the page exactly when the rule says so, and each one at or before H must be.

Writes bench/results/feeds.md (git-ignored) and prints it.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import psutil

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "feeds.md"
SQL = ROOT / "hapta" / "store" / "sql"
MIGRATIONS = ROOT / "migrations"

RULE_COLUMNS = ["author", "public"]     # what config.py's posts rules read (hapta.live.feed.rule_columns)
HIDDEN_COLUMNS: list[str] = []
NUMBER_BATCH = 5000                     # as hapta/live/feed.py
WINDOW = 0.005                          # (b), (c1), (c2), (a): numbering calls start at least this far apart
POLL = 0.05                             # (c2), (a): an idle consumer looks this often (writes made in plain SQL)
DECODE_BATCH = 10_000                   # (a): changes one peek returns at most (it ends at a transaction's end)
SLOT = "hapta_feed"
PUBLICATION = "hapta_feed"
USERS = 100

DESIGNS = ["none", "today", "batched", "stmt", "quiet", "logical", "stream"]
RINGING = {"today", "batched", "stmt"}              # a NOTIFY from the writing transaction
POLLING = {"quiet", "logical"}                      # woken by the writer's process, or by a timer
LOGICAL = {"logical"}                               # a slot read with the SQL functions
STREAMING = {"stream", "stream_default"}            # a slot streamed over a replication connection
SLOTTED = LOGICAL | STREAMING
DATABASE = {"stream": "logical", "stream_default": "logical"}   # designs that share a database

# workload: (connections, rows a statement, statement kind)
WORKLOADS = {
    "insert 1 row, 1 conn": (1, 1, "insert"),
    "insert 1 row, 50 conns": (50, 1, "insert"),
    "insert 10 rows, 50 conns": (50, 10, "insert"),
    "update 1 row, 50 conns": (50, 1, "update"),
}
UPDATE_DESIGNS = ["none", "today", "stmt", "stream", "stream_default"]


# ---------------------------------------------------------------------------------------------------- the cluster

def postgres_bin() -> Path:
    system = Path("/usr/lib/postgresql/15/bin")
    if (system / "initdb").exists():
        return system
    from pgserver._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """initdb, start, stop and remove a PostgreSQL of our own (as `postgres`, or pgserver's user, under root)."""

    def __init__(self) -> None:
        self.bin = postgres_bin()
        self.folder = Path(tempfile.mkdtemp(prefix="hapta-feeds-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.user: str | None = None
        if os.geteuid() == 0:
            import pwd
            try:
                pwd.getpwnam("postgres")
                self.user = "postgres"
            except KeyError:
                from pgserver.utils import ensure_user_exists
                self.user = "pgserver"
                ensure_user_exists(self.user)
            shutil.chown(self.folder, self.user)
        self.started = False

    def _run(self, *args: str, timeout: float = 120) -> None:
        done = subprocess.run([str(self.bin / args[0]), *args[1:]], user=self.user, timeout=timeout,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stderr.strip() or done.stdout.strip()}")

    def start(self) -> "Cluster":
        self._run("initdb", "-D", str(self.data), "--auth=trust", "-U", "postgres", "--encoding=utf8",
                  "--no-sync", "--locale=C")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"""
# bench/feeds.py
listen_addresses = '127.0.0.1'
port = {self.port}
unix_socket_directories = '{self.folder}'
wal_level = logical
max_wal_senders = 10
max_replication_slots = 10
max_slot_wal_keep_size = '4GB'     # a slot further behind than this is invalidated (its WAL is not kept)
max_connections = 200
max_wal_size = '4GB'
checkpoint_timeout = '30min'
""")
        self._run("pg_ctl", "-D", str(self.data), "-w", "-l", str(self.folder / "log"), "start")
        self.started = True
        return self

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def postmaster(self) -> psutil.Process:
        return psutil.Process(int((self.data / "postmaster.pid").read_text().split()[0]))

    def version(self) -> str:
        return subprocess.run([str(self.bin / "postgres"), "--version"], capture_output=True, text=True).stdout.strip()

    def remove(self) -> None:
        if self.started:
            try:
                self._run("pg_ctl", "-D", str(self.data), "-w", "-m", "fast", "stop", timeout=60)
            except Exception:
                with contextlib.suppress(Exception):
                    self._run("pg_ctl", "-D", str(self.data), "-w", "-m", "immediate", "stop", timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------- the schema

def _extract(path: Path, pattern: str) -> str:
    found = re.search(pattern, path.read_text(), re.S)
    assert found, f"{pattern} not in {path}"
    return found.group(0)


# (c1) and (c2): one statement's changes into the inbox in one INSERT ... SELECT, then (c1) one NOTIFY. The same
# change JSON as the row trigger of 0006 ({t, a, id, v, x, o}); TG_ARGV[2]: whether to NOTIFY.
STATEMENT_TRIGGER = r"""
CREATE OR REPLACE FUNCTION hapta.notify_changes() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  rule_columns text[] := TG_ARGV[0]::text[];
  hidden_columns text[] := TG_ARGV[1]::text[];
  ring boolean := TG_ARGV[2]::boolean;
  xact text := pg_current_xact_id()::text;
  n bigint;
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO hapta.change_inbox (change)
    SELECT jsonb_build_object('t', TG_TABLE_NAME, 'a', 'create', 'id', r.id, 'v', r.version, 'x', xact)
      FROM hapta_new r;
  ELSIF TG_OP = 'UPDATE' THEN   -- only the rule columns that changed: who could see the row before this update
    INSERT INTO hapta.change_inbox (change)
    SELECT CASE WHEN d.old_values IS NULL THEN d.head ELSE d.head || jsonb_build_object('o', d.old_values) END
      FROM (SELECT jsonb_build_object('t', TG_TABLE_NAME, 'a', 'update', 'id', r.id, 'v', r.version, 'x', xact) AS head,
                   (SELECT jsonb_object_agg(o.key, o.value)
                      FROM jsonb_each(to_jsonb(b)) o JOIN jsonb_each(to_jsonb(r)) w USING (key)
                     WHERE o.key = ANY(rule_columns) AND o.value IS DISTINCT FROM w.value) AS old_values
              FROM hapta_new r JOIN hapta_old b ON b.id = r.id) d;
  ELSE
    INSERT INTO hapta.change_inbox (change)
    SELECT jsonb_build_object('t', TG_TABLE_NAME, 'a', 'delete', 'id', b.id, 'v', b.version, 'x', xact, 'o',
             CASE WHEN octet_length((to_jsonb(b) - hidden_columns)::text) > 7000   -- a big row: what the rules read
                  THEN (SELECT jsonb_object_agg(key, value) FROM jsonb_each(to_jsonb(b)) WHERE key = ANY(rule_columns))
                  ELSE to_jsonb(b) - hidden_columns END)
      FROM hapta_old b;
  END IF;
  GET DIAGNOSTICS n = ROW_COUNT;
  IF n > 0 AND ring THEN
    PERFORM pg_notify('hapta_changes', json_build_object('t', TG_TABLE_NAME, 'x', xact)::text);
  END IF;
  RETURN NULL;
END
$$;
"""


def _literal(names: list[str]) -> str:
    return "'{" + ",".join(names) + "}'"


async def make_database(cluster: Cluster, design: str) -> None:
    admin = await asyncpg.connect(cluster.dsn())
    try:
        await admin.execute(f"CREATE DATABASE feed_{design}")
    finally:
        await admin.close()
    conn = await asyncpg.connect(cluster.dsn(f"feed_{design}"))
    try:
        core = SQL / "0001_core.sql"
        await conn.execute("CREATE SCHEMA hapta")
        await conn.execute(_extract(core, r"CREATE OR REPLACE FUNCTION hapta\.new_id\(\).*?\n\$\$;"))
        await conn.execute(_extract(core, r"CREATE OR REPLACE FUNCTION hapta\.touch\(\).*?\n\$\$;"))
        await conn.execute(_extract(core, r"CREATE TABLE users \(.*?\n\);"))
        await conn.execute((MIGRATIONS / "0001_social.sql").read_text())
        await conn.execute((MIGRATIONS / "0002_search.sql").read_text())
        await conn.execute("CREATE TRIGGER hapta_touch BEFORE UPDATE ON posts FOR EACH ROW "
                           "EXECUTE FUNCTION hapta.touch()")
        await conn.execute((SQL / "0006_change_log.sql").read_text())
        args = f"{_literal(RULE_COLUMNS)}, {_literal(HIDDEN_COLUMNS)}"
        if design in ("today", "batched"):
            await conn.execute(f"CREATE TRIGGER hapta_changes AFTER INSERT OR UPDATE OR DELETE ON posts "
                               f"FOR EACH ROW EXECUTE FUNCTION hapta.notify_change({args})")
        elif design in ("stmt", "quiet"):
            ring = "'true'" if design == "stmt" else "'false'"
            await conn.execute(STATEMENT_TRIGGER)
            for event, referencing in (("INSERT", "NEW TABLE AS hapta_new"),
                                       ("UPDATE", "OLD TABLE AS hapta_old NEW TABLE AS hapta_new"),
                                       ("DELETE", "OLD TABLE AS hapta_old")):
                await conn.execute(f"CREATE TRIGGER hapta_changes_{event.lower()} AFTER {event} ON posts "
                                   f"REFERENCING {referencing} FOR EACH STATEMENT "
                                   f"EXECUTE FUNCTION hapta.notify_changes({args}, {ring})")
        elif design == "logical":
            await conn.execute("ALTER TABLE posts REPLICA IDENTITY FULL")
            await conn.execute(f"CREATE PUBLICATION {PUBLICATION} FOR TABLE posts")
        await conn.execute("INSERT INTO users (email, username) SELECT 'u' || g || '@example.com', 'u' || g "
                           "FROM generate_series(1, $1) g", USERS)
    finally:
        await conn.close()


def database_of(design: str) -> str:
    return f"feed_{DATABASE.get(design, design)}"


async def reset(conn: asyncpg.Connection, design: str, seed: int) -> None:
    """Every cell starts from empty tables (and `seed` posts to update, their changes not in the feed)."""
    if design in SLOTTED:
        await conn.execute(f"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                           f"WHERE slot_name = '{SLOT}'")
        await conn.execute(f"ALTER TABLE posts REPLICA IDENTITY {'DEFAULT' if design.endswith('_default') else 'FULL'}")
    await conn.execute("TRUNCATE posts CASCADE")
    if seed:
        await conn.execute("INSERT INTO posts (author, text, public) SELECT (SELECT id FROM users ORDER BY id "
                           "OFFSET g % $2 LIMIT 1), 'seeded post ' || g, g % 2 = 0 FROM generate_series(1, $1) g",
                           seed, USERS)
    await conn.execute("TRUNCATE hapta.change_inbox, hapta.change_log")
    await conn.execute("UPDATE hapta.change_horizon SET pruned = 0")
    await conn.execute("VACUUM ANALYZE posts")
    await conn.execute("CHECKPOINT")


# ---------------------------------------------------------------------------------------------------- the consumer
# Runs in a process of its own (`python -m bench.feeds --consume DESIGN --dsn DSN`), as it would in a gateway;
# commands on stdin ("stats", "marks", "stop"), JSON answers on stdout.

class Doorbell(msgspec.Struct, frozen=True):
    table: str = msgspec.field(name="t")
    xact: str = msgspec.field(default="", name="x")


_doorbell = msgspec.json.Decoder(Doorbell).decode
_encode = msgspec.json.Encoder().encode

POSITION = "SELECT * FROM hapta.position_changes($1)"
PEEK = (f"SELECT data FROM pg_logical_slot_peek_binary_changes('{SLOT}', NULL, $1, 'proto_version', '1', "
        f"'publication_names', '{PUBLICATION}')")
# The decoded changes into the log with their positions, only once every transaction they came from is visible
# to this statement's snapshot (a commit record is flushed, and so decodable, a moment before the transaction
# leaves the proc array: a snapshot that saw the log's row but not the write would leave it out of a page and
# out of the events). Then the head, for every gateway process, as position_changes does.
LOG_INSERT = """
WITH snap AS (SELECT pg_current_snapshot() AS s),
ok AS (SELECT coalesce(bool_and(pg_visible_in_snapshot(x::text::xid8, snap.s)), true) AS visible
         FROM unnest($5::bigint[]) x, snap),
ins AS (INSERT INTO hapta.change_log (pos, seq, t, change)
        SELECT u.p, u.l, u.t, u.c::jsonb FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[]) AS u(p, l, t, c)
         WHERE (SELECT visible FROM ok)
        RETURNING 1)
SELECT (SELECT count(*) FROM ins) AS n,
       (SELECT pg_notify('hapta_positions', $6::text) FROM ok WHERE visible) IS NULL AS _
"""

TYPED = {16: lambda v: v == "t", 20: int, 21: int, 23: int, 114: msgspec.json.decode, 3802: msgspec.json.decode}


def _typed(relation, values: dict[str, Any], names) -> dict[str, Any]:
    from hapta.live.pgoutput import UNCHANGED
    types = {c.name: c.type_oid for c in relation.columns}
    out = {}
    for name in names:
        value = values.get(name)
        if value is UNCHANGED:
            continue
        if value is not None:
            convert = TYPED.get(types[name])
            if convert is not None:
                value = convert(value)
        out[name] = value
    return out


def change_json(change, xact: int) -> tuple[str, bytes]:
    """A decoded row change as the log keeps it ({t, a, id, v, x, o}: see hapta/live/feed.py Change)."""
    from hapta.live.pgoutput import UNCHANGED
    relation = change.relation
    if change.action == "delete":
        old = change.old
        head = {"t": relation.name, "a": "delete", "id": old["id"], "v": int(old.get("version") or 0), "x": str(xact)}
        if change.old_is_row:
            names = [c.name for c in relation.columns if c.name not in HIDDEN_COLUMNS]
            head["o"] = _typed(relation, old, names)
        return relation.name, _encode(head)
    new = change.new
    head = {"t": relation.name, "a": "create" if change.action == "insert" else "update", "id": new["id"],
            "v": int(new["version"]), "x": str(xact)}
    if change.action == "update" and change.old_is_row:
        old = change.old
        moved = [c for c in RULE_COLUMNS
                 if new.get(c) is not UNCHANGED and old.get(c) != new.get(c)]
        if moved:
            head["o"] = _typed(relation, old, moved)
    return relation.name, _encode(head)


class ConsumerState:
    def __init__(self) -> None:
        self.calls = 0            # numbering calls / peeks
        self.handled = 0          # changes numbered / logged
        self.head = 0
        self.notifications = 0    # heard on the listener
        self.guard_waits = 0      # (a): a batch held back until its transactions were visible
        self.empty = 0            # calls that found nothing
        self.marks: list[tuple[float, int]] = []   # (monotonic time a call committed, the head after it)
        self.error: str | None = None


async def _wait(wake: asyncio.Event, poll: float | None, window: float, last_start: float) -> None:
    if poll is None:
        await wake.wait()
    else:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(wake.wait(), poll)
    if window:
        delay = last_start + window - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    wake.clear()


async def numbering_loop(conn: asyncpg.Connection, state: ConsumerState, wake: asyncio.Event, window: float,
                         poll: float | None) -> None:
    last_start = float("-inf")
    while True:
        await _wait(wake, poll, window, last_start)
        last_start = time.monotonic()
        head, moved = await conn.fetchrow(POSITION, NUMBER_BATCH)
        state.calls += 1
        total = moved
        while moved == NUMBER_BATCH:
            head, moved = await conn.fetchrow(POSITION, NUMBER_BATCH)
            state.calls += 1
            total += moved
        state.handled += total
        state.head = head
        state.marks.append((time.monotonic(), head))
        if not total:
            state.empty += 1


async def _keep(fresh: list, head: int, near: int, insert, state) -> tuple[int, int]:
    """Write decoded transactions to the log with the next positions, in commit order, once every one of their
    xids is visible to the inserting statement (`insert` returns false until then: the visibility guard); returns
    the new head and the last widened xid."""
    from hapta.live.pgoutput import widen_xid
    positions, lsns, tables, changes, xids = [], [], [], [], []
    for transaction in fresh:
        xact = widen_xid(transaction.xid, near)
        near = xact
        xids.append(xact)
        for change in transaction.changes:
            table, body = change_json(change, xact)
            head += 1
            positions.append(head)
            lsns.append(transaction.commit_lsn)
            tables.append(table)
            changes.append(body.decode())
    if positions:
        while not await insert.fetchval(positions, lsns, tables, changes, xids, str(head)):
            state.guard_waits += 1
            await asyncio.sleep(0.0005)
        state.handled += len(positions)
        state.head = head
        state.marks.append((time.monotonic(), head))
    return head, near


async def logical_loop(conn: asyncpg.Connection, state: ConsumerState, wake: asyncio.Event, window: float,
                       poll: float | None) -> None:
    from hapta.live.pgoutput import Transactions, lsn_text, parse_lsn
    head = await conn.fetchval("SELECT greatest((SELECT max(pos) FROM hapta.change_log), "
                               "(SELECT pruned FROM hapta.change_horizon))")
    # A restart: transactions at or before the newest commit LSN the log holds are in it already.
    done_lsn = await conn.fetchval("SELECT coalesce(max(seq), 0) FROM hapta.change_log")
    near = int(await conn.fetchval("SELECT pg_snapshot_xmax(pg_current_snapshot())::text"))
    advanced = parse_lsn(await conn.fetchval(f"SELECT confirmed_flush_lsn::text FROM pg_replication_slots "
                                             f"WHERE slot_name = '{SLOT}'"))
    peek = await conn.prepare(PEEK)
    insert = await conn.prepare(LOG_INSERT)
    stream = Transactions()
    state.head = head
    last_start = float("-inf")
    busy = False
    while True:
        await _wait(wake, poll, window, last_start)
        last_start = time.monotonic()
        # Idle: first the flush position, so that an empty answer lets the slot move up to it (a slot left behind
        # makes every later call decode again what lies between).
        flushed = None if busy else parse_lsn(await conn.fetchval("SELECT pg_current_wal_flush_lsn()::text"))
        rows = await peek.fetch(DECODE_BATCH)
        state.calls += 1
        done = stream.feed_all([row[0] for row in rows])
        fresh = [t for t in done if t.commit_lsn > done_lsn]
        busy = bool(done)
        if fresh:
            head, near = await _keep(fresh, head, near, insert, state)
            done_lsn = fresh[-1].commit_lsn
        if done:
            upto = done[-1].end_lsn
        elif flushed is not None and flushed > advanced:
            upto = flushed
        else:
            upto = None
        if upto is not None and upto > advanced:
            await conn.execute(f"SELECT pg_replication_slot_advance('{SLOT}', '{lsn_text(upto)}')")
            advanced = upto
        if not done:
            state.empty += 1
        elif len(rows) >= DECODE_BATCH:
            wake.set()   # a full batch: there is more


class ReplicationStream(asyncio.Protocol):
    """(a2): a slot streamed by a walsender. asyncpg opens the connection (startup, authentication, TLS: what a
    gateway would need) with `replication=database`; then its transport is taken over, since asyncpg does not
    speak COPY BOTH: START_REPLICATION, CopyData messages in (XLogData 'w' holding one pgoutput message each,
    keepalives 'k'), standby status updates out ('r': the LSN up to which the log holds everything)."""

    def __init__(self, on_message) -> None:
        self.on_message = on_message
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.started = asyncio.get_running_loop().create_future()
        self.failed: str | None = None
        self.confirmed = 0       # reported to the server as flushed
        self.sent_end = 0        # the newest WAL end the server said it sent (keepalives)
        self.idle = lambda: True   # nothing received is still waiting to be logged

    @classmethod
    async def open(cls, dsn: str, on_message) -> tuple["ReplicationStream", int]:
        conn = await asyncpg.connect(dsn, server_settings={"replication": "database"})
        pid = conn.get_server_pid()
        stream = cls(on_message)
        stream.conn = conn   # held: asyncpg closes the transport of a connection object it collects
        transport = conn._transport   # noqa: SLF001 (the prototype's shortcut: see the class's docstring)
        transport.set_protocol(stream)
        stream.transport = transport
        stream._send(b"Q", f"START_REPLICATION SLOT {SLOT} LOGICAL 0/0 (proto_version '1', "
                           f"publication_names '{PUBLICATION}')".encode() + b"\0")
        await stream.started
        return stream, pid

    def _send(self, kind: bytes, payload: bytes) -> None:
        assert self.transport is not None
        self.transport.write(kind + (len(payload) + 4).to_bytes(4, "big") + payload)

    def confirm(self, lsn: int) -> None:
        if lsn > self.confirmed:
            self.confirmed = lsn
        now = int((time.time() - 946_684_800) * 1e6)
        self._send(b"d", b"r" + struct.pack(">QQQqB", self.confirmed, self.confirmed, self.confirmed, now, 0))

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        at, size = 0, len(buffer)
        while size - at >= 5:
            length = int.from_bytes(buffer[at + 1:at + 5], "big")
            if size - at < 1 + length:
                break
            kind = buffer[at]
            if kind == 0x64:                                   # 'd' CopyData
                if buffer[at + 5] == 0x77:                     # 'w' XLogData: start, end, time, then the message
                    self.on_message(bytes(buffer[at + 30:at + 1 + length]))
                elif buffer[at + 5] == 0x6B:                   # 'k' keepalive: end, time, reply wanted
                    end, _, reply = struct.unpack_from(">QqB", buffer, at + 6)
                    self.sent_end = max(self.sent_end, end)
                    if self.idle():                            # all it sent is logged: the slot may move up
                        self.confirmed = max(self.confirmed, end)
                    if reply or self.idle():
                        self.confirm(self.confirmed)
            elif kind == 0x57:                                 # 'W' CopyBothResponse
                if not self.started.done():
                    self.started.set_result(None)
            elif kind == 0x45:                                 # 'E' ErrorResponse
                self.failed = bytes(buffer[at + 5:at + 1 + length]).replace(b"\0", b" ").decode(errors="replace")
                if not self.started.done():
                    self.started.set_exception(RuntimeError(self.failed))
            at += 1 + length
        del buffer[:at]

    def connection_lost(self, exc: Exception | None) -> None:
        self.failed = self.failed or f"the replication connection was lost: {exc!r}"
        if not self.started.done():
            self.started.set_exception(RuntimeError(self.failed))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.conn._aborted = True   # noqa: SLF001 (its transport is ours now: asyncpg must not write to it)


async def stream_loop(stream_box: dict, dsn: str, conn: asyncpg.Connection, state: ConsumerState, window: float) -> None:
    from hapta.live.pgoutput import Transactions
    head = await conn.fetchval("SELECT greatest((SELECT max(pos) FROM hapta.change_log), "
                               "(SELECT pruned FROM hapta.change_horizon))")
    done_lsn = await conn.fetchval("SELECT coalesce(max(seq), 0) FROM hapta.change_log")
    near = int(await conn.fetchval("SELECT pg_snapshot_xmax(pg_current_snapshot())::text"))
    insert = await conn.prepare(LOG_INSERT)
    folder = Transactions()
    pending: list = []
    arrived = asyncio.Event()
    in_flight = False

    def on_message(data: bytes) -> None:
        done = folder.feed(data)
        if done is not None:
            pending.append(done)
            arrived.set()

    stream, pid = await ReplicationStream.open(dsn, on_message)
    stream.idle = lambda: not pending and not in_flight
    stream_box["stream"], stream_box["pid"] = stream, pid
    state.head = head
    last_start = float("-inf")
    while True:
        await _wait(arrived, None, window, last_start)
        if stream.failed:
            raise RuntimeError(stream.failed)
        if not pending:
            continue
        last_start = time.monotonic()
        batch = pending[:]
        del pending[:]
        in_flight = True
        state.calls += 1
        fresh = [t for t in batch if t.commit_lsn > done_lsn]
        head, near = await _keep(fresh, head, near, insert, state)
        if fresh:
            done_lsn = fresh[-1].commit_lsn
        in_flight = False
        stream.confirm(batch[-1].end_lsn)


async def consumer_main(design: str, dsn: str) -> None:
    state = ConsumerState()
    wake = asyncio.Event()
    loop = asyncio.get_running_loop()
    listener = await asyncpg.connect(dsn)
    worker = await asyncpg.connect(dsn)
    me = psutil.Process()

    def rung(_conn, _pid, _channel, payload: str) -> None:   # ChangeFeed.rung: decode, the cache, number
        state.notifications += 1
        try:
            _doorbell(payload)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        wake.set()

    def positioned(_conn, _pid, _channel, payload: str) -> None:
        state.notifications += 1
        int(payload)

    if design in RINGING:
        await listener.add_listener("hapta_changes", rung)
    await listener.add_listener("hapta_positions", positioned)

    bell = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    bell.bind(("127.0.0.1", 0))
    bell.setblocking(False)

    def ring() -> None:
        with contextlib.suppress(BlockingIOError):
            while bell.recv(64):
                pass
        wake.set()

    if design in POLLING:
        loop.add_reader(bell.fileno(), ring)

    window = 0.0 if design == "today" else WINDOW
    poll = POLL if design in POLLING else None
    stream_box: dict = {}
    if design in LOGICAL:
        await worker.execute(f"SELECT pg_create_logical_replication_slot('{SLOT}', 'pgoutput')")
        job = logical_loop(worker, state, wake, window, poll)
    elif design in STREAMING:
        await worker.execute(f"SELECT pg_create_logical_replication_slot('{SLOT}', 'pgoutput')")
        job = stream_loop(stream_box, dsn, worker, state, window)
    else:
        job = numbering_loop(worker, state, wake, window, poll)
    wake.set()   # what waits from before the start

    async def guarded() -> None:
        try:
            await job
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            state.error = repr(exc)
            raise

    task = asyncio.ensure_future(guarded())
    if design in STREAMING:
        while "pid" not in stream_box and not task.done():
            await asyncio.sleep(0.01)
    commands: asyncio.Queue[str] = asyncio.Queue()

    def read_stdin() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(commands.put_nowait, line.strip())
        loop.call_soon_threadsafe(commands.put_nowait, "stop")

    threading.Thread(target=read_stdin, daemon=True).start()

    def say(**what: Any) -> None:
        sys.stdout.write(json.dumps(what) + "\n")
        sys.stdout.flush()

    say(ready=True, consumer=worker.get_server_pid(), listener=listener.get_server_pid(),
        bell=bell.getsockname()[1], walsender=stream_box.get("pid"), error=state.error)
    while True:
        command = await commands.get()
        if command == "stats":
            say(cpu=cpu_seconds(me.pid, threads=True), calls=state.calls, handled=state.handled, head=state.head,
                notifications=state.notifications, guard_waits=state.guard_waits, empty=state.empty,
                error=state.error)
        elif command == "marks":
            marks, state.marks = state.marks, []
            say(marks=marks)
        elif command == "stop":
            break
    task.cancel()
    with contextlib.suppress(BaseException):
        await task
    if "stream" in stream_box:
        stream_box["stream"].close()
    await worker.close()
    await listener.close()


class Consumer:
    """The consumer's process, from the bench's side."""

    def __init__(self, design: str, dsn: str) -> None:
        self.design = design
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.feeds", "--consume", design, "--dsn", dsn],
                                     cwd=str(ROOT), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready = self._answer(60)
        assert ready.get("ready"), ready
        self.pids = {"consumer": ready["consumer"], "listener": ready["listener"]}
        self.bell = ready["bell"]
        self.process = psutil.Process(self.proc.pid)

    def _answer(self, timeout: float = 30) -> dict:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.design} consumer ended (exit {self.proc.poll()})")
        return json.loads(line)

    def ask(self, command: str) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        answer = self._answer()
        if answer.get("error"):
            raise RuntimeError(f"the {self.design} consumer failed: {answer['error']}")
        return answer

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(Exception):
                assert self.proc.stdin is not None
                self.proc.stdin.write("stop\n")
                self.proc.stdin.flush()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ---------------------------------------------------------------------------------------------------- the writers

INSERT_1 = "INSERT INTO posts (author, text, public) VALUES ($1, $2, $3) RETURNING id"
INSERT_N = ("INSERT INTO posts (author, text, public) SELECT * FROM unnest($1::text[], $2::text[], $3::boolean[]) "
            "RETURNING id")
UPDATE_1 = "UPDATE posts SET text = $2, public = NOT public WHERE id = $1"
WORDS = "the quick brown fox jumps over the lazy dog while seven wizards quietly hex a jovial bog".split()


def _text(n: int, k: int) -> str:
    return f"post {n} of writer {k}: " + " ".join(WORDS[(n * 7 + i * 3 + k) % len(WORDS)] for i in range(8))


class Bell:
    """The writer's process rings a polling consumer after its commits: one datagram per event-loop tick."""

    def __init__(self, port: int | None) -> None:
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM) if port else None
        self.pending = False
        self.sent = 0

    def ring(self) -> None:
        if self.sock is not None and not self.pending:
            self.pending = True
            asyncio.get_running_loop().call_soon(self._send)

    def _send(self) -> None:
        self.pending = False
        with contextlib.suppress(OSError):
            self.sock.sendto(b"!", ("127.0.0.1", self.port))
            self.sent += 1


class Writers:
    def __init__(self, dsn: str, connections: int, rows: int, kind: str, bell: Bell) -> None:
        self.dsn, self.connections, self.rows, self.kind, self.bell = dsn, connections, rows, kind, bell
        self.conns: list[asyncpg.Connection] = []
        self.written = 0
        self.stopping = False
        self.tasks: list[asyncio.Task] = []
        self.ids: list[str] = []
        self.commits: dict[str, float] = {}   # id -> when its writer saw the commit (latency runs)
        self.errors = 0

    async def open(self) -> "Writers":
        self.conns = list(await asyncio.gather(*(asyncpg.connect(self.dsn) for _ in range(self.connections))))
        if self.kind == "update":
            ids = [r[0] for r in await self.conns[0].fetch("SELECT id FROM posts ORDER BY id")]
            self.ids = ids
        return self

    @property
    def pids(self) -> list[int]:
        return [c.get_server_pid() for c in self.conns]

    async def _loop(self, k: int, conn: asyncpg.Connection, rate: float | None, keep: bool) -> None:
        authors = await conn.fetch("SELECT id FROM users ORDER BY id")
        authors = [r[0] for r in authors]
        n = 0
        mine = self.ids[k::self.connections] if self.kind == "update" else []
        started = time.monotonic()
        while not self.stopping:
            if rate:
                due = started + n / rate
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                    if self.stopping:
                        break
            try:
                if self.kind == "update":
                    await conn.execute(UPDATE_1, mine[n % len(mine)], _text(n, k))
                    done = 1
                elif self.rows == 1:
                    rid = await conn.fetchval(INSERT_1, authors[(n + k) % USERS], _text(n, k), n % 2 == 0)
                    if keep:
                        self.commits[rid] = time.monotonic()
                    done = 1
                else:
                    m = self.rows
                    got = await conn.fetch(INSERT_N, [authors[(n * m + i + k) % USERS] for i in range(m)],
                                           [_text(n * m + i, k) for i in range(m)], [(n + i) % 2 == 0 for i in range(m)])
                    done = len(got)
            except asyncpg.PostgresError:
                self.errors += 1
                done = 0
            self.written += done
            self.bell.ring()
            n += 1

    def start(self, rate: float | None = None, keep: bool = False) -> None:
        self.stopping = False
        per = None if rate is None else rate / self.connections
        self.tasks = [asyncio.ensure_future(self._loop(k, c, per, keep)) for k, c in enumerate(self.conns)]

    async def stop(self) -> None:
        self.stopping = True
        await asyncio.gather(*self.tasks)

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.conns), return_exceptions=True)


# ---------------------------------------------------------------------------------------------------- CPU by role

def cpu_seconds(pid: int, threads: bool = False) -> float:
    """A process's CPU time from /proc: schedstat's nanoseconds on a CPU (every thread's with `threads`), else
    utime + stime (psutil; in clock ticks of 10 ms)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task") if threads else [None]
        return sum(int(Path(f"/proc/{pid}/schedstat" if task is None else f"/proc/{pid}/task/{task}/schedstat")
                       .read_text().split()[0]) for task in tasks) / 1e9
    except (OSError, ValueError, IndexError):
        times = psutil.Process(pid).cpu_times()
        return times.user + times.system


class CpuSample:
    def __init__(self, cluster: Cluster) -> None:
        self.postmaster = cluster.postmaster()
        self.per_pid: dict[int, float] = {}
        for proc in [self.postmaster, *self.postmaster.children()]:
            with contextlib.suppress(psutil.Error, OSError):
                self.per_pid[proc.pid] = cpu_seconds(proc.pid)
        times = self.postmaster.cpu_times()
        self.reaped = times.children_user + times.children_system


def cpu_by_role(before: CpuSample, after: CpuSample, roles: dict[str, set[int]], exclude: set[int]) -> dict[str, float]:
    """CPU seconds between two samples: each role's processes, and "others" (every other process of the cluster,
    those that ended meanwhile included)."""
    out = {role: 0.0 for role in roles}
    out["others"] = 0.0
    owner = {pid: role for role, pids in roles.items() for pid in pids}
    for pid, now in after.per_pid.items():
        if pid in exclude:
            continue
        spent = now - before.per_pid.get(pid, 0.0)
        out[owner.get(pid, "others")] += spent
    gone = sum(cpu for pid, cpu in before.per_pid.items() if pid not in after.per_pid and pid not in exclude)
    out["others"] += max(0.0, after.reaped - before.reaped - gone)
    return out


async def walsenders(conn: asyncpg.Connection) -> set[int]:
    return {r[0] for r in await conn.fetch("SELECT pid FROM pg_stat_activity WHERE backend_type = 'walsender'")}


# ---------------------------------------------------------------------------------------------------- one cell

async def head_of(conn: asyncpg.Connection) -> int:
    return await conn.fetchval("SELECT coalesce(max(pos), 0) FROM hapta.change_log")


async def drain(conn: asyncpg.Connection, expected: int, timeout: float = 120) -> float:
    started = time.monotonic()
    while await head_of(conn) < expected:
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"the feed did not catch up with {expected} changes in {timeout:g} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def run_cell(cluster: Cluster, design: str, workload: str, duration: float, warmup: float) -> dict:
    connections, rows, kind = WORKLOADS[workload]
    dsn = cluster.dsn(database_of(design))
    control = await asyncpg.connect(dsn)
    consumer = writers = None
    try:
        await reset(control, design, 20_000 if kind == "update" else 0)
        consumer = await asyncio.to_thread(Consumer, design, dsn) if design != "none" else None
        bell = Bell(consumer.bell if consumer is not None and design in POLLING else None)
        writers = await Writers(dsn, connections, rows, kind, bell).open()
        writers.start()
        await asyncio.sleep(warmup)
        roles = {"writers": set(writers.pids)}
        if consumer is not None:
            roles["consumer"] = {consumer.pids["consumer"]}
            roles["listener"] = {consumer.pids["listener"]}
        roles["walsender"] = await walsenders(control)
        exclude = {control.get_server_pid()}
        stats0 = await asyncio.to_thread(consumer.ask, "stats") if consumer else None
        written0 = writers.written
        cpu0 = CpuSample(cluster)
        t0 = time.monotonic()
        await asyncio.sleep(duration)
        written1 = writers.written
        t1 = time.monotonic()
        await writers.stop()
        backlog = writers.written - (await head_of(control) if consumer else writers.written)
        slot_lag = await control.fetchval("SELECT pg_wal_lsn_diff(confirmed_flush_lsn, restart_lsn) "
                                          f"FROM pg_replication_slots WHERE slot_name = '{SLOT}'")
        drained = await drain(control, writers.written) if consumer else 0.0
        roles["walsender"] |= await walsenders(control)
        cpu1 = CpuSample(cluster)
        stats1 = await asyncio.to_thread(consumer.ask, "stats") if consumer else None
        cpu = cpu_by_role(cpu0, cpu1, roles, exclude)
        window_rows = written1 - written0
        handled = (stats1["handled"] - stats0["handled"]) if consumer else 0
        result = {"design": design, "workload": workload, "rows": window_rows, "seconds": t1 - t0,
                  "rate": window_rows / (t1 - t0), "backlog": backlog,
                  "slot_restart_lag_bytes": None if slot_lag is None else int(slot_lag), "drain_s": drained, "errors": writers.errors,
                  "us": {role: 1e6 * spent / max(1, handled if role == "consumer" else window_rows)
                         for role, spent in cpu.items()}}
        if consumer:
            result["python_us"] = 1e6 * (stats1["cpu"] - stats0["cpu"]) / max(1, handled)
            result["calls_per_100"] = 100 * (stats1["calls"] - stats0["calls"]) / max(1, handled)
            result["guard_waits"] = stats1["guard_waits"] - stats0["guard_waits"]
        result["pg_us"] = sum(result["us"].values())
        return result
    finally:
        if writers is not None:
            if writers.tasks:
                writers.stopping = True
                await asyncio.gather(*writers.tasks, return_exceptions=True)
            await writers.close()
        await _finish(consumer, design, control)


async def _finish(consumer, design: str, control: asyncpg.Connection) -> None:
    """After a design's run, also on failure: its consumer stopped, its slot dropped, the control connection closed."""
    if consumer is not None:
        consumer.stop()
    if design in SLOTTED:
        with contextlib.suppress(Exception):
            await control.execute(f"SELECT pg_drop_replication_slot('{SLOT}')")
    await control.close()


# ---------------------------------------------------------------------------------------------------- latency, idle, snapshots

def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


async def latency_and_checks(cluster: Cluster, design: str, seconds: float) -> dict:
    """Commit-to-log latency at 200 rows/s (rung, and for the polling designs unrung), an idle consumer's CPU,
    and the snapshot rule under 50 writers."""
    dsn = cluster.dsn(database_of(design))
    control = await asyncpg.connect(dsn)
    consumer = None
    out: dict[str, Any] = {"design": design}
    try:
        await reset(control, design, 0)
        consumer = Consumer(design, dsn)
        # idle
        await asyncio.sleep(0.5)
        cpu0 = CpuSample(cluster)
        s0 = consumer.ask("stats")
        await asyncio.sleep(2.0)
        cpu1 = CpuSample(cluster)
        s1 = consumer.ask("stats")
        idle = cpu_by_role(cpu0, cpu1, {"consumer": {consumer.pids["consumer"]},
                                        "listener": {consumer.pids["listener"]}}, {control.get_server_pid()})
        out["idle_us_per_s"] = 1e6 * (idle["consumer"] + idle["listener"] + s1["cpu"] - s0["cpu"]) / 2.0
        # latency
        for rung in ([True, False] if design in POLLING else [True]):
            bell = Bell(consumer.bell if rung and design in POLLING else None)
            writers = await Writers(dsn, 10, 1, "insert", bell).open()
            consumer.ask("marks")
            writers.start(rate=200, keep=True)
            await asyncio.sleep(seconds)
            await writers.stop()
            await writers.close()
            await drain(control, await control.fetchval("SELECT count(*) FROM posts"))
            marks = consumer.ask("marks")["marks"]
            positions = dict(await control.fetch("SELECT change->>'id', pos FROM hapta.change_log "
                                                 "WHERE change->>'id' = ANY($1::text[])", list(writers.commits)))
            lat = []
            mark_heads = [h for _, h in marks]
            import bisect
            for rid, committed in writers.commits.items():
                pos = positions.get(rid)
                if pos is None:
                    continue
                at = bisect.bisect_left(mark_heads, pos)
                if at < len(marks):
                    lat.append(1000 * (marks[at][0] - committed))
            out["rung" if rung else "unrung"] = (_pct(lat, 0.5), _pct(lat, 0.99), len(lat))
        # the snapshot rule under 50 writers
        consumer.stop()
        await reset(control, design, 0)   # drops the slot too
        consumer = Consumer(design, dsn)
        out["snapshots"] = await snapshot_check(dsn, design, control, consumer)
        return out
    finally:
        await _finish(consumer, design, control)


def _snapshot(text: str) -> tuple[int, int, frozenset[int]]:
    """pg_current_snapshot()'s text: xmin:xmax:xip,xip,..."""
    xmin, xmax, xip = text.split(":")
    return int(xmin), int(xmax), frozenset(int(x) for x in xip.split(",") if x)


def _visible(xid: int, snapshot: tuple[int, int, frozenset[int]]) -> bool:
    """pg_visible_in_snapshot for a committed transaction."""
    xmin, xmax, xip = snapshot
    return xid < xmin or (xid < xmax and xid not in xip)


async def snapshot_check(dsn: str, design: str, control: asyncpg.Connection, consumer: Consumer) -> dict:
    from hapta.live.pgoutput import parse_lsn
    bell = Bell(consumer.bell if design in POLLING else None)
    writers = await Writers(dsn, 50, 1, "insert", bell).open()
    reader = await asyncpg.connect(dsn)
    taken = []
    writers.start()
    try:
        until = time.monotonic() + 2.0
        while time.monotonic() < until:
            async with reader.transaction(isolation="repeatable_read", readonly=True):
                lsn, page = await reader.fetchrow("SELECT pg_current_wal_lsn()::text, array(SELECT id FROM posts)")
                head = await head_of(reader)
                if design in SLOTTED:
                    rule = _snapshot(await reader.fetchval("SELECT pg_current_snapshot()::text"))
                else:
                    rule = set(await reader.fetchval("SELECT array(SELECT seq FROM hapta.change_inbox)"))
            taken.append((set(page), head, rule, parse_lsn(lsn)))
            await asyncio.sleep(0.02)
    finally:
        await writers.stop()
        await writers.close()
        await reader.close()
    await drain(control, await control.fetchval("SELECT count(*) FROM posts"))
    log = await control.fetch("SELECT pos, seq, change->>'id' AS id, (change->>'x')::bigint AS x "
                              "FROM hapta.change_log ORDER BY pos")
    checked = wrong = gaps = lsn_missed = lsn_twice = 0
    for page, head, rule, lsn in taken:
        for row in log:
            if row["pos"] <= head:
                if row["id"] not in page:
                    gaps += 1
                continue
            if row["pos"] > head + 3000:
                break
            held = row["id"] in page
            says = _visible(row["x"], rule) if design in SLOTTED else row["seq"] in rule
            checked += 1
            wrong += held != says
            if design in SLOTTED:
                lsn_says = row["seq"] < lsn
                lsn_missed += lsn_says and not held     # left out, and not in the page: never seen
                lsn_twice += held and not lsn_says      # in the page, and sent as an event too
    result = {"snapshots": len(taken), "checked": checked, "wrong": wrong, "gaps": gaps}
    if design in SLOTTED:
        result["lsn_missed"], result["lsn_twice"] = lsn_missed, lsn_twice
    result["guard_waits"] = consumer.ask("stats")["guard_waits"]
    return result


# ---------------------------------------------------------------------------------------------------- the table

LABELS = {
    "none": "none (no feed: the floor)",
    "today": "today: row trigger, NOTIFY a row, numbering per doorbell",
    "batched": f"(b) row trigger, numbering >= {WINDOW * 1000:g} ms apart",
    "stmt": "(c1) statement trigger, NOTIFY a statement",
    "quiet": "(c2) statement trigger, no NOTIFY, rung after commit",
    "logical": "(a) logical decoding, SQL peek + advance, FULL",
    "stream": "(a2) logical decoding, replication connection, FULL",
    "stream_default": "(a2) logical decoding, replication connection, DEFAULT",
}


def _range(values: list[float], digits: int = 0) -> str:
    lo, hi = min(values), max(values)
    fmt = f"{{:,.{digits}f}}"
    return fmt.format(lo) if round(lo, digits) == round(hi, digits) else f"{fmt.format(lo)}-{fmt.format(hi)}"


NOTES = """Notes:
- (a) reads the slot with the SQL functions: every call builds a decoding context and reads the WAL again from the
  slot's restart_lsn, which only moves at a running-xacts record (every 15 s, or a checkpoint): 16-40 MB behind under
  these loads. Hence its cost per call at one connection and its idle cost, and (a2), which streams the same slot.
- Guard waits: the times a logical consumer held a batch back because a decoded transaction was not yet visible to a
  new snapshot (its commit record was flushed, and so sent, before it left the proc array). Numbering it then would
  have given a snapshot a head H covering a change the snapshot does not see: a gap.
- Commit-LSN rule: leave out of a snapshot's events the changes whose commit LSN is below pg_current_wal_lsn() read
  in the snapshot. *missed*: left out but not in the page (the subscriber never sees the change); *twice*: in the
  page and sent as an event too. A commit record written is not yet a visible transaction; the xid rule
  (pg_visible_in_snapshot against pg_current_snapshot() read in the snapshot) is what visibility is.
"""


def table(cells: list[dict], checks: list[dict], args, cluster_version: str, minutes: float) -> str:
    lines = [f"# Hapta bench: change-feed designs — {time.strftime('%Y-%m-%d %H:%M')}", "",
             f"{os.cpu_count()} CPUs (shared with other work), Python {platform.python_version()}, {cluster_version}, "
             f"a cluster of its own (wal_level=logical, fsync and synchronous_commit on); the demo's posts table; "
             f"{args.rounds} alternating rounds of {args.warmup:g} s warm-up + {args.duration:g} s per cell (UPDATEs: "
             f"{args.duration / 2:g} s) "
             f"(ranges over the rounds); {minutes:.1f} minutes in all.",
             "PostgreSQL CPU µs per row by role (the consumer's per change it handled; the others' per row "
             "written), from /proc per process; `python` is the consumer process's own CPU (the gateway's "
             "Python: listener callbacks, the numbering loop, pgoutput decoding). calls: numbering calls (or "
             "slot peeks) per 100 changes.", ""]
    for workload in WORKLOADS:
        rows = [c for c in cells if c["workload"] == workload]
        if not rows:
            continue
        lines += [f"## {workload}", "",
                  "| design | rows/s | PostgreSQL µs/row | writers | consumer | listener | walsender | others "
                  "| python µs/row | calls/100 |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for design in LABELS:
            mine = [c for c in rows if c["design"] == design]
            if not mine:
                continue
            feed = design != "none"
            us = lambda role: _range([c["us"].get(role, 0.0) for c in mine])  # noqa: E731
            lines.append(
                f"| {LABELS[design]} | {_range([c['rate'] for c in mine])} | {_range([c['pg_us'] for c in mine])} | "
                f"{us('writers')} | {us('consumer') if feed else '—'} | {us('listener') if feed else '—'} | "
                f"{us('walsender') if design in STREAMING else '—'} | {us('others')} | "
                f"{_range([c['python_us'] for c in mine]) if feed else '—'} | "
                f"{_range([c['calls_per_100'] for c in mine], 1) if feed else '—'} |")
        lines.append("")
    if checks:
        lines += ["## Latency, idle cost, snapshots", "",
                  "Latency: from a write's commit (as its writer saw it) to its change committed in change_log, "
                  "10 connections writing 200 rows/s in all; *unrung*: the writer's process does not ring (a write "
                  "made in plain SQL). Idle: the consumer's CPU (its backend, the listener's and its process) per "
                  "second with nothing written. Snapshots: REPEATABLE READ reads of every post with the log's head H "
                  "under 50 writers; of the changes after H, those the design's rule got wrong (in the page but not "
                  "left out, or left out but not in the page); gaps: changes at or before H missing from the page.",
                  "", "| design | p50 / p99 ms | unrung p50 / p99 ms | idle µs/s | snapshots | changes after H "
                  "checked | rule wrong | gaps | commit-LSN rule: missed / twice | guard waits |",
                  "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for check in checks:
            s = check["snapshots"]
            rung = check.get("rung")
            unrung = check.get("unrung")
            fmt = lambda r: "—" if r is None else f"{r[0]:.1f} / {r[1]:.1f}"  # noqa: E731
            lsn = f"{s['lsn_missed']} / {s['lsn_twice']}" if "lsn_missed" in s else "—"
            lines.append(f"| {LABELS[check['design']]} | {fmt(rung)} | {fmt(unrung) if unrung else 'the same'} | "
                         f"{check['idle_us_per_s']:,.0f} | {s['snapshots']} | {s['checked']:,} | {s['wrong']} | "
                         f"{s['gaps']} | {lsn} | {s.get('guard_waits', 0)} |")
        lines.append("")
    lines.append(NOTES)
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- main

def _cells(args) -> list[tuple[str, str]]:
    designs = [d for d in args.designs.split(",") if d]
    out = []
    for workload in WORKLOADS:
        if args.workloads and not any(w in workload for w in args.workloads.split(",")):
            continue
        wanted = [d for d in (UPDATE_DESIGNS if workload.startswith("update") else DESIGNS)
                  if d in designs or (d == "stream_default" and "stream" in designs)]
        for round_ in range(args.rounds):
            out += [(d, workload) for d in (wanted if round_ % 2 == 0 else list(reversed(wanted)))]
    return out


async def bench(args, cluster: Cluster) -> None:
    started = time.monotonic()
    print(f"{cluster.version()} on 127.0.0.1:{cluster.port} in {cluster.folder}", flush=True)
    designs = {DATABASE.get(d, d) for d in args.designs.split(",") if d}
    for design in designs:
        await make_database(cluster, design)
    cells = []
    for design, workload in _cells(args):
        duration = args.duration / 2 if workload.startswith("update") else args.duration
        result = await run_cell(cluster, design, workload, duration, args.warmup)
        cells.append(result)
        us = result["us"]
        print(f"  {workload:26} {design:16} {result['rate']:>8,.0f} rows/s  PG {result['pg_us']:6.0f} µs/row "
              f"(writers {us['writers']:.0f}, consumer {us.get('consumer', 0):.0f}, listener "
              f"{us.get('listener', 0):.0f}, walsender {us.get('walsender', 0):.0f}, others {us['others']:.0f})  python "
              f"{result.get('python_us', 0):.0f}  calls/100 {result.get('calls_per_100', 0):.1f}  "
              f"backlog {result['backlog']} drain {result['drain_s']:.2f} s", flush=True)
    checks = []
    if not args.skip_checks:
        for design in [d for d in DESIGNS if d != "none" and d in args.designs.split(",")]:
            check = await latency_and_checks(cluster, design, args.latency)
            checks.append(check)
            print(f"  checks {design:16} {check}", flush=True)
    text = table(cells, checks, args, cluster.version(), (time.monotonic() - started) / 60)
    print("\n" + text)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(text + "\n")
    raw = RESULTS.with_suffix(".json")
    raw.write_text(json.dumps({"cells": cells, "checks": checks}, indent=1))
    print(f"written to {RESULTS.relative_to(ROOT)} (and {raw.name})")


def main() -> None:
    parser = argparse.ArgumentParser(description="change-feed designs, measured from outside (issue 28)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=6.0, help="measured seconds per cell")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--latency", type=float, default=3.0, help="seconds of the latency run per design")
    parser.add_argument("--designs", default=",".join(DESIGNS))
    parser.add_argument("--workloads", default="", help="only workloads whose name contains one of these")
    parser.add_argument("--skip-checks", action="store_true")
    parser.add_argument("--consume", help=argparse.SUPPRESS)
    parser.add_argument("--dsn", help=argparse.SUPPRESS)
    args = parser.parse_args()
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    if args.consume:
        asyncio.run(consumer_main(args.consume, args.dsn))
        return
    def stop(signum, _frame):
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)
    cluster = Cluster()
    try:
        cluster.start()
        asyncio.run(bench(args, cluster))
    finally:
        cluster.remove()


if __name__ == "__main__":
    main()
