"""Live queries against plain subscriptions with client-side windows: the same readers, filters and writes.

    .venv/bin/python -m bench.livequery               # 1,000 queries, 200 filters, 200 writes/s for 30 s: ~5 min
    .venv/bin/python -m bench.livequery --queries 100 --filters 20 --rate 50 --seconds 5
    .venv/bin/python -m bench.livequery --rounds 2 --tree /tmp/before   # alternating rounds; an older hapta

Each mode has a fresh database and one `hapta serve` (the demo app without its hooks, limits off). `--filters`
authors have `--per-filter` public posts each (likes at random), and `--queries` signed-in readers (distinct users,
made in SQL with tokens signed by the run's JWT secret, as bench.fanout's) each hold one view of "the `--limit`
posts of author k with the most likes" (filter `author = "<k>"`, sort `-likes`), reader i on author i % filters:

- `query`: `realtime.query {collection: posts, filter, sort: "-likes", limit}`; the client applies each
  `realtime.diff` to its items (hapta.live.window.apply, the reference every client follows);
- `subscribe`: what an app does today: `realtime.subscribe {..., snapshot: true, sort, per_page: limit}` and a
  window kept by the client from every `records.change` of its filter (`ClientWindow`): a record that enters above
  the last one goes in (the one pushed past the limit out), one that falls past it is left alone, and one that
  leaves the window (deleted, moved to another author, or sorted down past the last) leaves it not knowing which
  record comes next, so it asks `records.list` for the page again (events that arrive meanwhile are applied to the
  answer).

Then `--rate` writes a second for `--seconds`, straight in SQL from one connection, each its own transaction, on
a uniformly chosen author (`Workload`): creates (likes at random: they land inside a window or past it), updates of
the sort field (likes to a new random value: into, within or out of the window), updates of the filtered field
(the post moves to another author: out of one filter, into another) and deletes. Writes in SQL keep the gateway's
request handling out of its CPU: it is all the feed and the live path.

Measured, per mode: latency from a write's COMMIT returning to the writer to the moment a client's window shows it
(the diff's arrival; for `subscribe`, the event's arrival, or the answer of the refetch it needed, or of a page
asked for since that showed it before its event came), matched by position: the change log's position of each
write's transaction id, as each diff and event carries; window changes/s (diffs, or client-side window changes) and
events/s received; the gateway's CPU per write, and every other process's by role (bench/processes.py: its pool and
listener backends; the writer's backend is `other backends of the database`); the load processes' CPU per write (the
clients' share of the box); database reads per write from the gateway's /metrics (`hapta_live_query_reads_total`;
for `subscribe`, the refetches that reached PostgreSQL, `hapta_cache_reads_total{result="load"}`; both modes also
pay the feed's one row fetch per batch). The measured span runs from the first write until the gateway has read
every write from the change log and sent nothing for a second (at most `--most` s after the last write: past it the
row says it fell behind); "all delivered" is how long that took after the last write. Then the load processes read
their windows (once nothing has come for half a second and no page is being asked for again), and every client's
items are checked against the database's first page for its author. Writes results to bench/results/livequery.md
(see docs/realtime.md, "Live queries").
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import msgspec

from bench import processes
from bench.fanout import _frame, make_users, percentile, raise_file_limit
from hapta.live.window import apply

decode = msgspec.json.decode

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "livequery.md"
PER_ADDRESS = 200    # connections per loopback source address (the gateway bounds connections per address)
SERVER = "Hapta"
GATEWAY_KINDS = (processes.GATEWAY, processes.GATEWAY_WORKERS, processes.WORKERS, processes.CHILDREN)
MODES = ("query", "subscribe")
SORT = "-likes"
LIKES = 10_000
# creates, updates of the sort field, updates of the filtered field, deletes
MIX = {"create": 0.25, "sort": 0.35, "filter": 0.15, "delete": 0.25}


def key(record: dict[str, Any]) -> tuple:
    """The order of `-likes` as records.list gives it (ties by id, code points: the bench database is C.UTF-8)."""
    return (-record["likes"], record["id"])


# ---- what a client does today: a window kept from records.change events -------------------------------------

class ClientWindow:
    """The first `limit` records of a filter's result, kept by an app from its subscription's events.

    `apply` answers what an event did: "changed" (the window shows it), "short" (a record left the window and the
    app does not know which comes next: it must ask for the page again) or None (the window is as it was)."""

    def __init__(self, limit: int, order: Callable[[dict], tuple] = key):
        self.limit = limit
        self.order = order
        self.keys: list[tuple] = []
        self.records: list[dict] = []
        self.complete = True    # the window holds the whole result

    def fill(self, records: list[dict], complete: bool) -> None:
        self.records = list(records)
        self.keys = [self.order(r) for r in self.records]
        self.complete = complete

    def _find(self, record_id: Any) -> int | None:
        for n, held in enumerate(self.records):
            if held["id"] == record_id:
                return n
        return None

    def apply(self, action: str, record: dict) -> str | None:
        place = self._find(record["id"])
        if place is not None and action != "delete" and self.records[place].get("version", 0) >= \
                record.get("version", 0):
            return None   # what the window shows already (an event replayed over a refetch's answer)
        if place is not None:
            del self.records[place], self.keys[place]
        if action == "delete":
            if place is None:
                return None
            return "changed" if self.complete else "short"
        new = self.order(record)
        if not self.complete and (not self.keys or new > self.keys[-1]):
            # past the last one held: nothing to show, unless it was in the window and fell out of it
            return None if place is None else "short"
        at = bisect.bisect_left(self.keys, new)
        self.keys.insert(at, new)
        self.records.insert(at, record)
        if len(self.records) > self.limit:
            self.records.pop()
            self.keys.pop()
            self.complete = False
        return "changed"

    def ids(self) -> list[Any]:
        return [r["id"] for r in self.records]


# ---- the writes ---------------------------------------------------------------------------------------------

@dataclass
class Write:
    kind: str          # create, sort, filter, delete
    sql: str           # returns the writing transaction's id as `x` (and a create's id as `id`)
    args: tuple
    source: int        # the author (filter) it touches
    target: int        # the author it moves the post to (a filter update), else `source`


class Workload:
    """The writes, in SQL: a uniformly chosen author, then a create (new likes at random), an update of likes or of
    author, or a delete of one of its posts chosen at random. Knows every post's author (the only writer)."""

    def __init__(self, authors: list[str], posts: dict[int, list[str]], rng: random.Random,
                 mix: dict[str, float] = MIX):
        self.authors = authors
        self.posts = posts        # author index -> its post ids
        self.rng = rng
        self.kinds = list(mix)
        self.weights = [mix[k] for k in self.kinds]

    def next(self) -> Write:
        rng = self.rng
        source = rng.randrange(len(self.authors))
        kind = rng.choices(self.kinds, self.weights)[0]
        ids = self.posts[source]
        if not ids or (kind == "filter" and len(self.authors) < 2):
            kind = "create"
        if kind == "create":
            return Write(kind, "INSERT INTO posts (author, text, public, likes) VALUES ($1, $2, true, $3) "
                               "RETURNING id, pg_current_xact_id()::text AS x",
                         (self.authors[source], f"post {rng.randrange(1 << 30)}", rng.randrange(LIKES)), source, source)
        post = ids[rng.randrange(len(ids))]
        if kind == "sort":
            return Write(kind, "UPDATE posts SET likes = $2 WHERE id = $1 "
                               "RETURNING id, pg_current_xact_id()::text AS x",
                         (post, rng.randrange(LIKES)), source, source)
        if kind == "filter":
            target = rng.randrange(len(self.authors) - 1)
            target += target >= source
            return Write(kind, "UPDATE posts SET author = $2 WHERE id = $1 "
                               "RETURNING id, pg_current_xact_id()::text AS x",
                         (post, self.authors[target]), source, target)
        return Write(kind, "DELETE FROM posts WHERE id = $1 RETURNING id, pg_current_xact_id()::text AS x",
                     (post,), source, source)

    def done(self, write: Write, post_id: str) -> None:
        """The write committed (`post_id`: the post it wrote)."""
        if write.kind == "create":
            self.posts[write.source].append(post_id)
        elif write.kind in ("filter", "delete"):
            ids = self.posts[write.source]
            at = ids.index(post_id)
            ids[at] = ids[-1]
            ids.pop()
            if write.kind == "filter":
                self.posts[write.target].append(post_id)


# ---- a client (in a load process) ---------------------------------------------------------------------------

class Reader(asyncio.Protocol):
    """One WebSocket client (frames by hand, as bench.fanout's): signs in, starts its query or its subscription,
    then keeps its window, stamping when the window shows each change (by position)."""
    last = 0.0   # when any client of the process last received something

    def __init__(self, port: int, token: str, mode: str, filter_text: str, limit: int, ready: asyncio.Future):
        self.request = (f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
                        f"Sec-WebSocket-Version: 13\r\n\r\n").encode()
        self.hello = json.dumps({"id": 1, "op": "auth.resume", "args": {"token": token}}).encode()
        if mode == "query":
            start = {"op": "realtime.query", "args": {"collection": "posts", "filter": filter_text, "sort": SORT,
                                                      "limit": limit}}
        else:
            start = {"op": "realtime.subscribe", "args": {"collection": "posts", "filter": filter_text, "sort": SORT,
                                                          "per_page": limit, "snapshot": True}}
        self.start = json.dumps({"id": 2, **start}).encode()
        self.page = {"collection": "posts", "filter": filter_text, "sort": SORT, "per_page": limit}
        self.mode = mode
        self.ready = ready
        self.buffer = b""
        self.upgraded = False
        self.transport: asyncio.Transport | None = None
        self.sub: str | None = None
        self.items: list[dict] = []                  # query: what the diffs keep
        self.window = ClientWindow(limit)            # subscribe: what the events keep
        self.stamps: list[tuple[int, float]] = []    # (position, when the window showed it)
        self.events = 0                              # events of its subscription received
        self.resets = 0
        self.refetches = 0
        self.unavailable = 0                         # requests refused for a while (asked again after it)
        self.asking = 0                              # the id of the records.list in flight, or 0
        self.waiting: list[int] = []                 # positions whose change waits for that answer
        self.meanwhile: list[dict] = []              # events that arrived while it was asked
        self.paged: dict[Any, tuple[int | None, float]] = {}   # id -> (version, or None: gone) a page showed, when
        self.errors: list[str] = []

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("connection lost before starting"))

    def send(self, message: dict | bytes) -> None:
        self.transport.write(_frame(message if isinstance(message, bytes) else json.dumps(message).encode()))

    def data_received(self, data: bytes) -> None:
        now = time.time()
        Reader.last = now
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if b" 101 " not in self.buffer[:end].split(b"\r\n", 1)[0]:
                self.transport.abort()
                if not self.ready.done():
                    self.ready.set_exception(ConnectionError(self.buffer[:end].decode(errors="replace")))
                return
            self.upgraded, self.buffer = True, self.buffer[end + 4:]
            self.send(self.hello)
        while len(self.buffer) >= 2:
            opcode, length, start = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F, 2
            if length == 126:
                length, start = int.from_bytes(self.buffer[2:4], "big"), 4
            elif length == 127:
                length, start = int.from_bytes(self.buffer[2:10], "big"), 10
            if len(self.buffer) < start + length:
                return
            payload, self.buffer = self.buffer[start:start + length], self.buffer[start + length:]
            if opcode == 0x9:
                self.transport.write(_frame(payload, 0xA))
            elif opcode == 0x1:
                message = decode(payload)
                for one in message if isinstance(message, list) else [message]:
                    self.message(one, now)

    def message(self, message: dict, now: float) -> None:
        if "event" in message:
            if message.get("sub") != self.sub or self.sub is None:
                return
            name, data = message["event"], message.get("data") or {}
            if name == "realtime.reset":
                self.resets += 1
                return
            self.events += 1
            if name == "realtime.diff":
                self.items = apply(self.items, data["ops"])
                self.stamps.append((data["pos"], now))
            elif name == "records.change":
                self.change(data, now)
            return
        if not message.get("ok"):
            error = message.get("error") or {}
            if error.get("code") in ("RATE_LIMITED", "UNAVAILABLE"):   # a busy machine, or the pool's share
                number = message.get("id")
                again = {1: self.hello, 2: self.start}.get(number)
                if again is None and number == self.asking:
                    again = {"id": number, "op": "records.list", "args": self.page}
                if again is not None:
                    self.unavailable += 1
                    asyncio.get_running_loop().call_later(error.get("retry_after") or 1.0, self.send, again)
                    return
            self.errors.append(json.dumps(message)[:300])
            if not self.ready.done():
                self.ready.set_exception(RuntimeError(json.dumps(message)[:300]))
            return
        number, data = message.get("id"), message.get("data") or {}
        if number == 1:
            self.send(self.start)
        elif number == 2:
            self.sub = data["sub"]
            if self.mode == "query":
                self.items = data["items"]
            else:
                self.window.fill(data["items"], "next" not in data)
            self.ready.done() or self.ready.set_result(None)
        elif number == self.asking:
            self.answered(data, now)

    def change(self, data: dict, now: float) -> None:
        """A records.change: into the window, or, while the page is asked for again, kept for its answer."""
        if self.asking:
            self.meanwhile.append(data)
            return
        outcome = self.window.apply(data["action"], data["record"])
        if outcome == "changed":
            self.stamps.append((data["pos"], now))
        elif outcome == "short":
            self.waiting.append(data["pos"])
            self.ask()
        else:
            when = self.paged_at(data)
            if when is not None:   # a page asked for since showed it before its event came (the feed lags)
                self.stamps.append((data["pos"], when))

    def paged_at(self, data: dict) -> float | None:
        """When a page the client asked for again showed this change already (that version of the record or a
        later one, or, for a delete, the record gone from the window), or None."""
        record = data["record"]
        seen = self.paged.get(record["id"])
        if seen is None:
            return None
        version, when = seen
        if data["action"] == "delete":
            return when if version is None else None
        return when if version is not None and version >= record.get("version", 0) else None

    def ask(self) -> None:
        self.refetches += 1
        self.asking = 2 + self.refetches
        self.send({"id": self.asking, "op": "records.list", "args": self.page})

    def answered(self, data: dict, now: float) -> None:
        """The page again: the window is its items, with what arrived meanwhile applied over them. The page is read
        now, so it may show changes whose events have not come yet (the feed lags behind commits): what it shows
        is kept (`paged`), and such an event counts as shown when the page came."""
        self.asking = 0
        before = self.window.ids()
        self.window.fill(data["items"], "next" not in data)
        for record in self.window.records:
            seen = self.paged.get(record["id"])
            if seen is None or seen[0] != record.get("version"):   # the first page that showed this version
                self.paged[record["id"]] = (record.get("version"), now)
        on_page = set(self.window.ids())
        for gone in before:
            if gone not in on_page:
                self.paged[gone] = (None, now)
        short = False
        for change in self.meanwhile:
            outcome = self.window.apply(change["action"], change["record"])
            if outcome is not None:
                self.waiting.append(change["pos"])
            else:
                when = self.paged_at(change)
                if when is not None:
                    self.stamps.append((change["pos"], when))
            short = short or outcome == "short"
        self.meanwhile = []
        if short:
            self.ask()
            return
        self.stamps.extend((pos, now) for pos in self.waiting)
        self.waiting = []

    def held(self) -> list[Any]:
        return [item["id"] for item in self.items] if self.mode == "query" else self.window.ids()


async def clients(args: argparse.Namespace) -> None:
    """A load process: a Reader per token of its slice; READY once all have started, then at STOP one JSON line:
    each client's filter, stamps, counts and the ids it holds."""
    raise_file_limit()
    with open(args.tokens) as file:
        setup = json.load(file)
    tokens, filters = setup["tokens"][args.first:args.first + args.count], setup["filters"]
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(100)   # handshakes in flight at once
    readers: list[tuple[int, Reader]] = []

    async def one(i: int, token: str) -> None:
        number = args.first + i
        address = f"127.{3 + args.slice}.{i // PER_ADDRESS // 250}.{i // PER_ADDRESS % 250 + 1}"
        ready = loop.create_future()
        async with gate:
            _, reader = await loop.create_connection(
                lambda: Reader(args.port, token, args.mode, f'author = "{filters[number % len(filters)]}"',
                               args.limit, ready), "127.0.0.1", args.port, local_addr=(address, 0))
            await asyncio.wait_for(ready, 120)
        readers.append((number % len(filters), reader))
    await asyncio.gather(*(one(i, token) for i, token in enumerate(tokens)))
    for _, reader in readers:
        reader.unavailable = 0   # what setup was refused is not counted
    print("READY", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    # What the gateway wrote may still wait in this process's sockets (it shares the cores), and pages asked for
    # again may still be on their way: the windows are read once nothing came for half a second and none is asked.
    deadline = time.time() + args.most
    while time.time() < deadline and (time.time() - Reader.last < 0.5 or any(r.asking for _, r in readers)):
        await asyncio.sleep(0.1)
    out = [{"filter": f, "stamps": r.stamps, "events": r.events, "resets": r.resets, "refetches": r.refetches,
            "unavailable": r.unavailable, "asking": bool(r.asking), "errors": r.errors[:3], "ids": r.held()}
           for f, r in readers]
    print(json.dumps({"clients": out}), flush=True)
    for _, reader in readers:
        reader.transport.abort()


# ---- the orchestrator ---------------------------------------------------------------------------------------

# Limits off; and the pool's share per client address is the whole pool: the bench puts 200 clients on each
# loopback address, where an app's readers would each come from their own.
DEMO = """
    import dataclasses, runpy, hapta.config
    app = runpy.run_path(APP + "/config.py")["app"]
    app = dataclasses.replace(app, connections=dataclasses.replace(app.connections, message_rate=None),
                              database=dataclasses.replace(app.database, per_address=app.database.pool_size),
                              limits=dict.fromkeys(hapta.config.DEFAULT_LIMITS))
"""
METRICS = {"diffs": "hapta_live_query_diffs_total", "reads": "hapta_live_query_reads_total",
           "events": "hapta_realtime_events_total", "feed": "hapta_feed_changes_total",
           "loads": 'hapta_cache_reads_total{result="load"}'}


def metrics(http: str, timeout: float = 30.0) -> dict[str, float] | None:
    """The gateway's counters (METRICS), or None when it did not answer in time (a loop held by delivery)."""
    try:
        with urllib.request.urlopen(f"{http}/metrics", timeout=timeout) as response:
            text = response.read().decode()
    except OSError:
        return None
    out = {}
    for name, series in METRICS.items():
        found = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
        out[name] = float(found.group(1)) if found else 0.0
    return out


def cpu_seconds(pids: list[int]) -> float:
    import psutil
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


async def seed(dsn: str, args: argparse.Namespace, rng: random.Random) -> tuple[list[str], dict[int, list[str]]]:
    """`--filters` authors (users made in SQL) with `--per-filter` public posts each, likes at random."""
    import asyncpg
    conn = await asyncpg.connect(dsn)
    try:
        authors = [r["id"] for r in await conn.fetch(
            "INSERT INTO users (email) SELECT 'lq_author_' || g || '@example.com' FROM generate_series(1, $1) g "
            "RETURNING id", args.filters)]
        owners = [a for a in authors for _ in range(args.per_filter)]
        likes = [rng.randrange(LIKES) for _ in owners]
        rows = await conn.fetch(
            "INSERT INTO posts (author, text, public, likes) SELECT a, 'seeded', true, l "
            "FROM unnest($1::text[], $2::bigint[]) AS s(a, l) RETURNING id, author", owners, likes)
        await conn.execute("ANALYZE posts")
    finally:
        await conn.close()
    index = {author: n for n, author in enumerate(authors)}
    posts: dict[int, list[str]] = {n: [] for n in range(len(authors))}
    for row in rows:
        posts[index[row["author"]]].append(row["id"])
    return authors, posts


class Measured(threading.Thread):
    """bench.processes' CPU by role from `start()` until `done()` (a snapshot every half second; the census has its
    own event loop, so it runs in this thread)."""

    def __init__(self, admin: str, dsn: str, pid: int):
        super().__init__(daemon=True)
        self.census = (admin, dsn, pid)
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.window: processes.Window | None = None

    def run(self) -> None:
        admin, dsn, pid = self.census
        with processes.Census(admin, [dsn], {SERVER: pid}) as census:
            start = census.snapshot()
            began = time.monotonic()
            self.ready.set()
            samples = []
            while not self.stopping.wait(0.5):
                samples.append(census.snapshot())
            samples.append(census.snapshot())
            self.window = processes.Window(processes.spent(start, *samples), time.monotonic() - began)

    def done(self) -> processes.Window:
        self.stopping.set()
        self.join()
        return self.window


async def quiet(http: str, before: dict[str, float], writes: int, least: float, most: float) -> float | None:
    """Wait (at least `least` s) until the gateway has read every write's change from the log (its feed counter,
    from `before`) and then written no event for a second: what the writes brought has been delivered. The seconds
    waited, or None if it was still at it after `most`."""
    started = time.monotonic()
    last, still = None, started
    while time.monotonic() - started < most:
        now = await asyncio.to_thread(metrics, http, max(1.0, most - (time.monotonic() - started)))
        seen = None if now is None or now["feed"] - before["feed"] < writes else (now["feed"], now["events"])
        if seen is None or seen != last:
            last, still = seen, time.monotonic()
        elif time.monotonic() - still >= 1.0 and time.monotonic() - started >= least:
            return time.monotonic() - started
        await asyncio.sleep(0.25)
    return None


async def follow(http: str, dsn: str, trace: list[tuple]) -> None:
    """Every second: the changes waiting to be numbered, the gateway's feed and event counters (how far behind it
    is, for the row's JSON)."""
    import asyncpg
    conn = await asyncpg.connect(dsn)
    started = time.monotonic()
    try:
        while True:
            inbox = await conn.fetchval("SELECT count(*) FROM hapta.change_inbox")
            now = await asyncio.to_thread(metrics, http, 5.0)
            trace.append((round(time.monotonic() - started), inbox, *((now["feed"], now["events"]) if now else ())))
            await asyncio.sleep(1)
    finally:
        await conn.close()


async def write(dsn: str, workload: Workload, rate: float, seconds: float) -> tuple[dict[str, float], dict[str, int]]:
    """`rate` writes a second for `seconds`, on a schedule (one that falls behind goes on at once): the commit time
    of each by transaction id, and how many of each kind."""
    import asyncpg
    conn = await asyncpg.connect(dsn)
    commits: dict[str, float] = {}
    kinds: dict[str, int] = {}
    try:
        started = time.perf_counter()
        for n in range(int(rate * seconds)):
            delay = started + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            one = workload.next()
            row = await conn.fetchrow(one.sql, *one.args)
            commits[row["x"]] = time.time()   # autocommit: the statement returned, so did its COMMIT
            workload.done(one, row["id"])
            kinds[one.kind] = kinds.get(one.kind, 0) + 1
    finally:
        await conn.close()
    return commits, kinds


async def expected(dsn: str, authors: list[str], limit: int) -> list[list[str]]:
    """Each author's first page as records.list orders it (every post is public: the list rule shows it all)."""
    import asyncpg
    conn = await asyncpg.connect(dsn)
    try:
        return [[r["id"] for r in await conn.fetch(
            "SELECT id FROM posts WHERE author = $1 ORDER BY likes DESC, id LIMIT $2", author, limit)]
            for author in authors]
    finally:
        await conn.close()


async def positions(dsn: str, after: int) -> dict[int, str]:
    """The change log's positions after `after`, each with its writing transaction's id."""
    import asyncpg
    conn = await asyncpg.connect(dsn)
    try:
        return {r["pos"]: r["x"] for r in await conn.fetch(
            "SELECT pos, change->>'x' AS x FROM hapta.change_log WHERE t = 'posts' AND pos > $1", after)}
    finally:
        await conn.close()


def latencies(results: list[dict], commits: dict[str, float], xacts: dict[int, str]) -> tuple[list[float], int]:
    """Commit-to-window latencies of every stamp whose position is one of the writes (and how many were not)."""
    out, unknown = [], 0
    for client in results:
        for pos, shown in client["stamps"]:
            committed = commits.get(xacts.get(pos, ""))
            if committed is None:
                unknown += 1
                continue
            out.append(shown - committed)
    return out, unknown


async def run_mode(admin: str, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    """One mode on a fresh database and gateway: setup, the writes, what the clients saw."""
    import asyncpg
    from tests.conftest import gateway_env
    from tests.services import GatewayProcess, create_database, drop_database, write_app
    dsn = await create_database(admin)
    env = {**gateway_env(dsn), "PYTHONPATH": str(Path(args.tree).resolve())}
    folder = Path(tempfile.mkdtemp(prefix="hapta-livequery-"))
    config = write_app(folder / "demo", DEMO, app=ROOT)
    (folder / "demo" / "rules").unlink()
    (folder / "demo" / "rules").mkdir()   # no hooks (none runs on these writes): no hook workers either
    gateway = GatewayProcess(env, config=config)
    loads: list[subprocess.Popen] = []
    try:
        await asyncio.to_thread(gateway.start)
        rng = random.Random(args.seed)
        authors, posts = await seed(dsn, args, rng)
        tokens = await make_users(dsn, env["HAPTA_JWT_SECRET"], args.queries)
        setup = folder / "setup.json"
        setup.write_text(json.dumps({"tokens": tokens, "filters": authors}))
        share = -(-args.queries // args.loads)
        for slice_ in range(args.loads):
            first = slice_ * share
            count = min(share, args.queries - first)
            if count <= 0:
                break
            loads.append(subprocess.Popen(
                [sys.executable, "-m", "bench.livequery", "--role", "clients", "--mode", mode, "--tokens", str(setup),
                 "--first", str(first), "--count", str(count), "--port", str(gateway.port), "--slice", str(slice_),
                 "--limit", str(args.limit), "--most", str(args.most)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
        started = time.monotonic()
        for load in loads:
            line = await asyncio.wait_for(asyncio.to_thread(load.stdout.readline), 600)
            if line.strip() != "READY":
                raise RuntimeError(f"a load process failed: {line!r}")
        setup_seconds = time.monotonic() - started
        conn = await asyncpg.connect(dsn)
        try:
            floor = await conn.fetchval("SELECT coalesce(max(pos), 0) FROM hapta.change_log")
        finally:
            await conn.close()
        await asyncio.sleep(1)   # the last starts' diffs
        before = metrics(gateway.http)
        load_before = cpu_seconds([load.pid for load in loads])
        census = Measured(admin, dsn, gateway.proc.pid)
        census.start()
        await asyncio.to_thread(census.ready.wait)
        spy = None
        if args.profile:
            spy = subprocess.Popen([args.py_spy, "record", "-p", str(gateway.proc.pid), "-d", str(int(args.seconds)),
                                    "-r", "100", "-f", "raw", "-o", str(Path(args.profile) / f"gateway-{mode}.txt")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        trace: list[tuple] = []
        tracing = asyncio.create_task(follow(gateway.http, dsn, trace))
        began = time.monotonic()
        commits, kinds = await write(dsn, Workload(authors, posts, rng), args.rate, args.seconds)
        wrote = time.monotonic() - began
        drained = await quiet(gateway.http, before, len(commits), args.drain, args.most)
        window = await asyncio.to_thread(census.done)
        tracing.cancel()
        load_cpu = cpu_seconds([load.pid for load in loads]) - load_before
        after = metrics(gateway.http, 10.0) if drained is not None else None
        if spy is not None:
            await asyncio.to_thread(spy.wait)
        results: list[dict] = []
        for load in loads:
            load.stdin.write("STOP\n")
            load.stdin.flush()
        for load in loads:
            line = await asyncio.wait_for(asyncio.to_thread(load.stdout.readline), 120)
            results += json.loads(line)["clients"]
        right = await expected(dsn, authors, args.limit)
        xacts = await positions(dsn, floor)
    finally:
        for load in loads:
            load.kill()
            load.wait()
        await asyncio.to_thread(gateway.stop)
        problems = [line for line in gateway.log_text().splitlines() if " WARNING " in line or " ERROR " in line]
        if problems:
            print(f"gateway ({mode}): {len(problems)} warnings, e.g.:", *problems[:5], sep="\n  ", file=sys.stderr)
        shutil.rmtree(folder, ignore_errors=True)
        await drop_database(admin, dsn)
    lat, unknown = latencies(results, commits, xacts)
    writes = len(commits)
    delta = {name: after[name] - before[name] for name in after} if after and before else {}
    columns = window.columns(SERVER)
    gateway_cpu = sum(columns.get(kind, 0.0) for kind in GATEWAY_KINDS)
    changes = sum(len(c["stamps"]) for c in results)
    events = sum(c["events"] for c in results)
    reads = delta.get("reads" if mode == "query" else "loads")
    ms = lambda s: round(s * 1000, 1)  # noqa: E731
    return {
        "mode": mode, "queries": args.queries, "filters": args.filters, "limit": args.limit,
        "writes": writes, "write_rate": writes / wrote, "kinds": kinds, "setup_s": round(setup_seconds, 1),
        "drain_s": None if drained is None else round(drained, 1), "behind": drained is None,
        "window_changes": changes, "changes_per_s": changes / wrote, "events": events, "events_per_s": events / wrote,
        "p50_ms": ms(percentile(lat, 0.5)) if lat else None, "p99_ms": ms(percentile(lat, 0.99)) if lat else None,
        "max_ms": ms(max(lat)) if lat else None, "unmatched": unknown,
        "gateway_us": 1e6 * gateway_cpu / writes, "load_us": 1e6 * load_cpu / writes,
        "reads": reads, "reads_per_write": None if reads is None else reads / writes,
        "refetches": sum(c["refetches"] for c in results), "resets": sum(c["resets"] for c in results),
        "unavailable": sum(c["unavailable"] for c in results),
        "errors": [e for c in results for e in c["errors"]][:5],
        "right": sum(1 for c in results if c["ids"] == right[c["filter"]]), "clients": len(results),
        "asking": sum(1 for c in results if c["asking"]), "trace": trace,
        "metrics": delta, "cpu": columns, "load_avg": os.getloadavg()[0],
    }


def summary(rows: list[dict], args: argparse.Namespace) -> str:
    """The side-by-side table (medians over rounds, with their range when there are several), then CPU by role."""
    def cell(values: list[float], fmt: str = "{:,.1f}") -> str:
        values = [v for v in values if v is not None]
        if not values:
            return "–"
        if len(values) == 1:
            return fmt.format(values[0])
        return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"
    lines = [f"{args.queries:,} readers (distinct users), {args.filters} filters, limit {args.limit}, "
             f"{args.rate:g} writes/s in SQL for {args.seconds:g} s, one gateway process; "
             f"{len({r['round'] for r in rows})} round(s), medians (range)"
             + ("" if Path(args.tree).resolve() == ROOT else f"; the gateway imports hapta from {args.tree}") + ".", "",
             "| mode | writes/s | window changes/s | events/s | p50 ms | p99 ms "
             "| all delivered, s after the last write "
             "| gateway CPU µs per write | load processes' CPU µs per write | DB reads per write | refetches / resets "
             "| windows right at the end |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    names = {"query": "`realtime.query` (live query)", "subscribe": "`realtime.subscribe` + client-side window"}
    for mode in args.modes:
        mine = [r for r in rows if r["mode"] == mode]
        if not mine:
            continue
        pick = lambda name: [r[name] for r in mine]  # noqa: E731
        lines.append(
            f"| {names[mode]} | {cell(pick('write_rate'), '{:,.0f}')} | {cell(pick('changes_per_s'), '{:,.0f}')} | "
            f"{cell(pick('events_per_s'), '{:,.0f}')} | {cell(pick('p50_ms'))} | {cell(pick('p99_ms'))} | "
            f"{cell(pick('drain_s')) if not any(pick('behind')) else f'not within {args.most:g}'} | "
            f"{cell(pick('gateway_us'), '{:,.0f}')} | {cell(pick('load_us'), '{:,.0f}')} | "
            f"{cell(pick('reads_per_write'), '{:.3f}')} | "
            f"{'/'.join(str(r['refetches']) for r in mine)} / {'/'.join(str(r['resets']) for r in mine)} | "
            f"{', '.join(str(r['right']) + '/' + str(r['clients']) for r in mine)} |")
    rows_by_role = []
    for mode in args.modes:
        mine = [r for r in rows if r["mode"] == mode]
        if mine:
            cpu: dict[str, float] = {}
            for r in mine:
                for column, seconds in r["cpu"].items():
                    cpu[column] = cpu.get(column, 0.0) + seconds
            rows_by_role.append(processes.Row((mode,), statistics.median(r["write_rate"] for r in mine),
                                              sum(r["writes"] for r in mine), cpu))
    lines += ["", "Every server process, CPU µs per write (rounds pooled; the writer's own backend is "
              "`other backends of the database`):", "", processes.table(rows_by_role, ("mode",))]
    return "\n".join(lines)


async def orchestrate(args: argparse.Namespace) -> None:
    from tests.services import admin_dsn
    raise_file_limit()
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    admin = await admin_dsn()
    rows = []
    for round_ in range(args.rounds):
        for mode in (args.modes if round_ % 2 == 0 else args.modes[::-1]):
            row = await run_mode(admin, mode, args)
            row["round"] = round_
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "cpu"}, default=str), flush=True)
    table = summary(rows, args)
    print(table)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(table + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--role", choices=("orchestrator", "clients"), default="orchestrator")
    parser.add_argument("--queries", type=int, default=1000, help="readers, one live query (or subscription) each")
    parser.add_argument("--filters", type=int, default=200, help="distinct filters (authors)")
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--per-filter", type=int, default=150, help="posts each author has at the start")
    parser.add_argument("--rate", type=float, default=200.0, help="writes a second")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the writes go on")
    parser.add_argument("--drain", type=float, default=2.0, help="seconds at least after the last write (measured "
                        "too; then on until the gateway has delivered everything)")
    parser.add_argument("--modes", default=",".join(MODES), type=lambda s: s.split(","))
    parser.add_argument("--most", type=float, default=60.0, help="seconds after the last write the gateway may take "
                        "to deliver what it owes: past them the row says it fell behind")
    parser.add_argument("--tree", default=str(ROOT),
                        help="the checkout whose hapta the gateway imports (PYTHONPATH), e.g. an older one to compare")
    parser.add_argument("--rounds", type=int, default=1, help="runs of every mode, in alternating order")
    parser.add_argument("--loads", type=int, default=2, help="load processes the clients are spread over")
    parser.add_argument("--seed", type=int, default=29, help="of the data and the writes (the same for each mode)")
    parser.add_argument("--profile", help="a folder for py-spy's raw stacks of the gateway while writing")
    parser.add_argument("--py-spy", default=str(Path(sys.executable).with_name("py-spy")))
    # for --role clients
    parser.add_argument("--mode", choices=MODES, default="query")
    parser.add_argument("--tokens")
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--slice", type=int, default=0)
    args = parser.parse_args()
    import uvloop
    uvloop.run(clients(args) if args.role == "clients" else orchestrate(args))


if __name__ == "__main__":
    main()
