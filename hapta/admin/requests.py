"""The request log: one row per request answered (when, the op, the collection its args named, who asked, from
where, the outcome, how long it took, the change feed position its reply carried), kept in PostgreSQL
(hapta.request_log) for the dashboard's Logs page, and pruned to App.request_log.retention.

What a row holds is what the request *named*, never what it carried: no args, record bodies, filters, tokens or
passwords. The request path pays one call to `record` (a tuple appended to a deque); a background task writes what
waits with one COPY per batch (every `interval` seconds, or at once when a batch is full). The buffer is bounded:
while PostgreSQL is slow or down, rows wait there, and past `buffer` rows the oldest go, counted in
hapta_request_log_rows{outcome="dropped"}; no request ever waits for the log or fails because of it.

    RequestBuffer   the bounded buffer alone (pure: no I/O), tested without a database
    RequestLog      the buffer, its writer and pruner, and the reads admin.logs and admin.logs.chart make
"""
from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Any, Callable, Iterable

from .. import metrics
from ..config import RequestLogBounds
from ..principal import Principal
from ..protocol.errors import BAD_REQUEST, HaptaError
from ..store.postgres import Database

log = logging.getLogger("hapta.requests")

COLUMNS = ("at", "op", "collection", "principal", "role", "address", "code", "duration_ms", "pos")
# (at, op, collection, principal, role, address, code, duration_ms, pos): a row as COPY takes it (at: unix seconds)
Row = tuple[float, str, str | None, str, str, str | None, str, float, int | None]
PRUNE_EVERY = 60.0     # seconds between prunes of rows past the retention
PRUNE_CHUNK = 20_000   # rows one DELETE of a prune removes at most
WRITE_TIMEOUT = 10.0   # seconds one batch may take before it counts as failed (the rows wait for the next try)
CLOSE_TIMEOUT = 0.5    # ... at shutdown, which must fit in the gateway's own close (cli.py: 1.5 s for everything)
MAX_BUCKETS = 2000     # buckets one admin.logs.chart answers at most
FILTERS = ("op", "collection", "principal", "address", "code")   # the columns admin.logs filters on, exactly


class RequestBuffer:
    """Rows waiting to be written, at most `bound`: the oldest go first when it is full, and are counted."""

    def __init__(self, bound: int):
        self.bound = bound
        self.rows: collections.deque[Row] = collections.deque()
        self.dropped = 0   # since start (the metric counts them too)

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, row: Row) -> None:
        rows = self.rows
        if len(rows) >= self.bound:
            rows.popleft()
            self._drop(1)
        rows.append(row)

    def take(self, most: int) -> list[Row]:
        """Up to `most` of the oldest rows, out of the buffer (to be written)."""
        rows = self.rows
        return [rows.popleft() for _ in range(min(most, len(rows)))]

    def put_back(self, rows: list[Row]) -> None:
        """Rows a write failed on, back in front of the newer ones, as far as the bound leaves room: when it does
        not, the oldest of all go (the newest say more about an outage under way)."""
        room = self.bound - len(self.rows)
        if room < len(rows):
            self._drop(len(rows) - max(room, 0))
            rows = rows[len(rows) - max(room, 0):]
        self.rows.extendleft(reversed(rows))

    def _drop(self, count: int) -> None:
        self.dropped += count
        metrics.REQUEST_LOG_ROWS.labels("dropped").inc(count)


class RequestLog:
    def __init__(self, db: Database, bounds: RequestLogBounds, clock: Callable[[], float] = time.time):
        self.db = db
        self.bounds = bounds
        self.enabled = bounds.enabled
        self.clock = clock
        self.buffer = RequestBuffer(bounds.buffer)
        self.full = asyncio.Event()   # a batch waits: write it now rather than at the next interval
        self.writing = asyncio.Lock()
        self.failing = False          # the last write failed (logged once per outage, not per batch)
        self.task: asyncio.Task | None = None

    def record(self, op: str, collection: str | None, principal: Principal, address: str | None, code: str,
               seconds: float, reply: dict[str, Any]) -> None:
        """Keep one request's row (the request path's only cost: no I/O). `reply`: only its data's `pos` is read."""
        if not self.enabled:
            return
        data = reply.get("data")
        pos = data.get("pos") if type(data) is dict else None
        self.buffer.add((self.clock(), op, collection, principal.label,
                         principal.role, address, code, seconds * 1000.0, pos if type(pos) is int else None))
        if len(self.buffer) >= self.bounds.batch:
            self.full.set()

    def start(self) -> None:
        if self.enabled and self.task is None:
            self.task = asyncio.ensure_future(self._run())

    async def close(self) -> None:
        """Stop the writer, writing what waits (once: a database that is down costs at most CLOSE_TIMEOUT)."""
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            self.task = None
            await self.flush(CLOSE_TIMEOUT)

    async def _run(self) -> None:
        pruned = 0.0
        while True:
            try:
                await asyncio.wait_for(self.full.wait(), self.bounds.interval)
            except asyncio.TimeoutError:
                pass
            self.full.clear()
            await self.flush()
            if time.monotonic() - pruned >= PRUNE_EVERY:
                pruned = time.monotonic()
                try:
                    await self.prune()
                except Exception as exc:   # PostgreSQL down: the next prune catches up
                    log.warning("request log: pruning failed: %s", type(exc).__name__)

    async def flush(self, timeout: float = WRITE_TIMEOUT) -> None:
        """Write what waits, a batch per COPY. A batch that fails goes back in the buffer (bounded) for the next
        try; the failure is logged once until a write succeeds again."""
        async with self.writing:
            # only what waits now: rows that arrive meanwhile wait for the next interval or a full batch, so that a
            # busy gateway writes a few large batches a second rather than one small COPY after another
            waiting = len(self.buffer)
            while waiting > 0 and self.buffer:
                rows = self.buffer.take(min(self.bounds.batch, waiting))
                waiting -= len(rows)
                try:
                    await self._copy(rows, timeout)
                except Exception as exc:
                    self.buffer.put_back(rows)
                    if not self.failing:
                        self.failing = True
                        log.warning("request log: cannot write to PostgreSQL (%s); rows wait, at most %d (the "
                                    "oldest are dropped past it)", type(exc).__name__, self.buffer.bound)
                    return
                if self.failing:
                    self.failing = False
                    log.warning("request log: writing again (%d rows dropped since start)", self.buffer.dropped)
                metrics.REQUEST_LOG_ROWS.labels("written").inc(len(rows))
                metrics.REQUEST_LOG_BATCHES.inc()

    async def _copy(self, rows: list[Row], timeout: float) -> None:
        # asyncpg's own timeouts rather than asyncio.wait_for: a cancelled shutdown then leaves no task behind whose
        # failure nobody reads
        async with self.db.acquire(timeout) as conn:
            await conn.copy_records_to_table("request_log", schema_name="hapta", columns=COLUMNS, records=rows,
                                             timeout=timeout)

    async def prune(self) -> int:
        """Remove the rows older than the retention; how many went. In chunks, each one statement well within the
        pool's statement_timeout, so that a large backlog (a retention just shortened) goes too."""
        cutoff, removed = self.clock() - self.bounds.retention, 0
        while True:
            status = await self.db.execute(
                "DELETE FROM hapta.request_log WHERE id IN "
                "(SELECT id FROM hapta.request_log WHERE at < $1 LIMIT $2)", cutoff, PRUNE_CHUNK)
            count = int(status.split()[-1])
            removed += count
            if count < PRUNE_CHUNK:
                return removed

    # ---- what the dashboard reads (admin.logs, admin.logs.chart) ----

    async def rows(self, filters: dict[str, str | None], outcome: str | None, since: float | None,
                   until: float | None, before: int | None, limit: int) -> dict[str, Any]:
        """The newest rows that match, at most `limit`, newest first; `next`: the `before` of the next page (None:
        no more). This process's waiting rows are written first, so a request just answered is there."""
        await self.flush()
        where, args = _where(filters, outcome, since, until)
        if before is not None:
            args.append(before)
            where.append(f"id < ${len(args)}")
        args.append(limit + 1)
        found = await self.db.fetch(
            f"SELECT id, {', '.join(COLUMNS)} FROM hapta.request_log "
            f"{_joined(where)} ORDER BY id DESC LIMIT ${len(args)}", *args)
        items = [dict(row) for row in found[:limit]]
        return {"items": items, "next": items[-1]["id"] if len(found) > limit else None}

    async def chart(self, filters: dict[str, str | None], outcome: str | None, since: float, until: float | None,
                    bucket: float) -> dict[str, Any]:
        """Requests per `bucket` seconds from `since` (to `until`, default now) that match, ok and errors apart;
        buckets without requests are left out."""
        until = self.clock() if until is None else until
        if bucket <= 0 or (until - since) / bucket > MAX_BUCKETS:
            raise HaptaError(BAD_REQUEST, f"at most {MAX_BUCKETS} buckets: a larger bucket or a shorter span")
        await self.flush()
        where, args = _where(filters, outcome, since, until)
        args.append(bucket)
        found = await self.db.fetch(
            f"SELECT floor(at / ${len(args)}) * ${len(args)} AS at, "
            f"count(*) FILTER (WHERE code = 'OK') AS ok, count(*) FILTER (WHERE code <> 'OK') AS errors "
            f"FROM hapta.request_log {_joined(where)} GROUP BY 1 ORDER BY 1", *args)
        return {"bucket": bucket, "since": since, "until": until,
                "buckets": [{"at": float(row["at"]), "ok": row["ok"], "errors": row["errors"]} for row in found]}


def _where(filters: dict[str, str | None], outcome: str | None, since: float | None,
           until: float | None) -> tuple[list[str], list[Any]]:
    """The conditions of a read (column names from FILTERS only; every value a parameter)."""
    where: list[str] = []
    args: list[Any] = []
    for column in FILTERS:
        value = filters.get(column)
        if value is not None:
            args.append(value)
            where.append(f"{column} = ${len(args)}")
    if outcome == "ok":
        where.append("code = 'OK'")
    elif outcome == "error":
        where.append("code <> 'OK'")
    for bound, operator in ((since, ">="), (until, "<")):
        if bound is not None:
            args.append(float(bound))
            where.append(f"at {operator} ${len(args)}")
    return where, args


def _joined(where: Iterable[str]) -> str:
    where = list(where)
    return f"WHERE {' AND '.join(where)}" if where else ""
