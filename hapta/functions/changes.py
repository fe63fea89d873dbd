"""@on: functions that run when records change, read from the change log (hapta.change_log): after commit, at
least once, in commit order, for writes through the gateway and straight in SQL alike, across restarts.

Each function has a cursor (hapta.function_cursors: the last position it has run). One process at a time holds
its lease and runs what follows the cursor, one change after the other, moving the cursor past each change after
the function succeeded. So nothing is lost (a restart resumes from the cursor; the log is not pruned past it) and
nothing that succeeded runs again; a process that dies between a success and the cursor's move runs that change
once more (at least once). A failure (the function raised, timed out, its worker died) is retried after 1, 2, 4
and 8 s, in place, holding back the changes behind it (order is kept); after the fifth failure the change goes to
hapta.function_dead (functions.dead, functions.retry) and the cursor moves on (App.functions.retries sets the
delays).

A function seen for the first time starts at the log's head: it runs for changes committed from then on.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from ..store.failures import UPSTREAM_ERRORS

from ..store.postgres import Database

log = logging.getLogger("hapta.functions")

LEASE = 30.0          # seconds a process holds a function's changes without renewing
POLL = 0.5            # seconds between looks at the log when it has nothing new
BATCH = 100           # changes read per look

START = """
INSERT INTO hapta.function_cursors (name, pos)
VALUES ($1, greatest((SELECT max(pos) FROM hapta.change_log), (SELECT pruned FROM hapta.change_horizon)))
ON CONFLICT (name) DO NOTHING
"""
LEASE_SQL = """
UPDATE hapta.function_cursors SET lease_owner = $2, lease_until = now() + make_interval(secs => $3)
 WHERE name = $1 AND (lease_owner = $2 OR lease_until < now())
RETURNING pos, attempts, greatest(0, extract(epoch FROM next_try - now()))::float8 AS wait,
          (SELECT pruned FROM hapta.change_horizon) AS pruned
"""


@dataclass(frozen=True)
class Watch:
    name: str
    collection: str
    actions: frozenset[str]


# run(name, change) -> "ok" | "denied" | "failed" | "timeout" | "unavailable" (Functions.background's outcome)
Run = Callable[[str, dict[str, Any]], Awaitable[str]]


class ChangeTriggers:
    def __init__(self, db: Database, watches: list[Watch], run: Run, retries: tuple[float, ...] = (1, 2, 4, 8)):
        self.db = db
        self.watches = watches
        self.run = run
        self.retries = retries   # seconds before each retry (App.functions.retries); one failure more: dead
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self.tasks = [asyncio.ensure_future(self._consume(watch)) for watch in self.watches]

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.watches:   # let another process take over at once rather than after the lease
            try:
                await self.db.execute("UPDATE hapta.function_cursors SET lease_until = now() WHERE lease_owner = $1",
                                      self.owner)
            except UPSTREAM_ERRORS:
                pass

    async def _consume(self, watch: Watch) -> None:
        started = False
        while True:
            try:
                if not started:
                    await self.db.execute(START, watch.name)
                    started = True
                pause = await self._step(watch)
            except UPSTREAM_ERRORS as exc:   # the database is away: look again later
                log.warning("changes for %s: %s", watch.name, type(exc).__name__)
                pause = POLL * 4
            await asyncio.sleep(pause)

    async def _step(self, watch: Watch) -> float:
        """Run what follows the cursor, if this process holds the lease; the seconds to wait before the next look."""
        cursor = await self.db.fetchrow(LEASE_SQL, watch.name, self.owner, LEASE)
        if cursor is None:
            return POLL * 2   # another process has it
        if cursor["wait"] > 0:
            return min(cursor["wait"], POLL)   # a retry is due later
        position, attempts = cursor["pos"], cursor["attempts"]
        if cursor["pruned"] > position:   # the log was cut (App.realtime.log_max) before this function ran
            await self._dead(watch, cursor["pruned"], {"from": position + 1, "to": cursor["pruned"]},
                             "these changes were pruned from the log before the function ran")
            return 0.0
        rows = await self.db.fetch("SELECT pos, change FROM hapta.change_log WHERE t = $1 AND pos > $2 "
                                   "ORDER BY pos LIMIT $3", watch.collection, position, BATCH)
        for row in rows:
            change = json.loads(row["change"]) if isinstance(row["change"], str) else row["change"]
            if change.get("a") not in watch.actions:
                await self._advance(watch, row["pos"])
                continue
            outcome = await self.run(watch.name, {"position": row["pos"], **change})
            if outcome == "ok":
                await self._advance(watch, row["pos"])
                attempts = 0
                continue
            attempts += 1
            if attempts > len(self.retries):
                await self._dead(watch, row["pos"], change, f"{outcome} {attempts} times")
                attempts = 0
                continue
            await self.db.execute("UPDATE hapta.function_cursors SET attempts = $2, next_try = now() + "
                                  "make_interval(secs => $3), lease_until = now() + make_interval(secs => $5) "
                                  "WHERE name = $1 AND lease_owner = $4",
                                  watch.name, attempts, self.retries[attempts - 1], self.owner, LEASE)
            return 0.0
        return 0.0 if len(rows) == BATCH else POLL

    async def _advance(self, watch: Watch, position: int) -> None:
        """Past `position`, and the lease renewed: a batch of slow changes keeps it for as long as it runs."""
        await self.db.execute("UPDATE hapta.function_cursors SET pos = $2, attempts = 0, lease_until = now() + "
                              "make_interval(secs => $4) WHERE name = $1 AND lease_owner = $3",
                              watch.name, position, self.owner, LEASE)

    async def _dead(self, watch: Watch, position: int, change: dict[str, Any], error: str) -> None:
        log.error("function %s gave up on the change at %d: %s", watch.name, position, error)
        await self.db.execute("INSERT INTO hapta.function_dead (name, pos, change, error) VALUES ($1, $2, $3, $4)",
                              watch.name, position, json.dumps(change), error)
        await self._advance(watch, position)
