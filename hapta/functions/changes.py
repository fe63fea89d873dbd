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

Changes is the @on trigger of the functions service (triggers.Trigger): a change runs as admin through
Runs.background, with the record as it is then (read with records.get as admin, through the gateway's own path).
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping

from ..config import ConfigError
from ..principal import ADMIN, Peer, Principal, SocketPeer
from ..protocol.errors import BAD_REQUEST, NOT_FOUND, HaptaError
from ..store.failures import UPSTREAM_ERRORS
from ..store.postgres import Database
from .triggers import Function, Runs

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


# run_op(peer, op, args) -> the reply ({ok, data} or {ok: false, error}), through the gateway's own request path
RunOp = Callable[[Peer, str, dict[str, Any]], Awaitable[dict[str, Any]]]


class Changes:
    kind = "on"

    def __init__(self, db: Database, runs: Runs, collections: set[str], run_op: RunOp,
                 retries: tuple[float, ...] = (1, 2, 4, 8)):
        self.db = db
        self.runs = runs
        self.collections = collections   # what @on may watch: config.py's collections
        self.run_op = run_op             # reads the changed record as admin
        self.retries = retries   # seconds before each retry (App.functions.retries); one failure more: dead
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.functions: Mapping[str, Function] = {}
        self.watches: list[Watch] = []
        self.tasks: list[asyncio.Task] = []

    def check(self, function: Function, spec: str, option: str) -> None:
        if spec not in self.collections:
            raise ConfigError(f"functions/{function.file}: {function.name} watches {spec!r}, which is no collection "
                              "of config.py")

    def describe(self, spec: str, option: str) -> str:
        return f"on {spec} {option}"

    def use(self, functions: Mapping[str, Function]) -> None:
        self.functions = functions
        self.watches = [Watch(f.name, spec, frozenset(option.split(","))) for f in functions.values()
                        for spec, option in f.declares("on")]

    def start(self) -> None:
        self.tasks = [asyncio.ensure_future(self._consume(watch)) for watch in self.watches]

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks = []
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
            outcome = await self._changed(watch.name, {"position": row["pos"], **change})
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

    async def _changed(self, name: str, change: dict[str, Any]) -> str:
        """Run an @on function for one change from the log, with the record as it is now (None once gone):
        ok | denied | failed | timeout | unavailable."""
        function = self.functions[name]
        collection, record_id = change.get("t"), change.get("id")
        record = None
        if change.get("a") != "delete":
            reply = await self.run_op(SocketPeer(Principal(ADMIN)), "records.get",
                                      {"collection": collection, "id": str(record_id)})
            record = reply["data"] if reply["ok"] else None
        argument = {"collection": collection, "action": change.get("a"), "id": record_id,
                    "position": change["position"], "record": record}
        return await self.runs.background(function, f"on {collection} {change.get('a')}", argument)

    async def dead(self, name: str, limit: int = 50) -> list[dict[str, Any]]:
        """The changes an @on function gave up on, oldest first (functions.dead)."""
        rows = await self.db.fetch("SELECT id, pos, change, error, at FROM hapta.function_dead WHERE name = $1 "
                                   "ORDER BY id LIMIT $2", name, limit)
        return [{"id": r["id"], "position": r["pos"], "change": json.loads(r["change"]), "error": r["error"],
                 "at": r["at"]} for r in rows]

    async def waiting(self, names: list[str]) -> dict[str, int]:
        """How many dead letters wait for each function: name -> count (none: absent)."""
        return {r["name"]: r["n"] for r in await self.db.fetch(
            "SELECT name, count(*) AS n FROM hapta.function_dead WHERE name = ANY($1) GROUP BY name", names)}

    async def retry(self, dead_id: int) -> str:
        """Run a dead change again now (functions.retry); on success it leaves the dead letters."""
        row = await self.db.fetchrow("SELECT name, pos, change FROM hapta.function_dead WHERE id = $1", dead_id)
        if row is None or row["name"] not in self.functions:
            raise HaptaError(NOT_FOUND, f"no dead letter {dead_id}")
        change = json.loads(row["change"])
        if "t" not in change:   # a gap of pruned changes: nothing left to run
            raise HaptaError(BAD_REQUEST, "these changes were pruned from the log: they cannot be run again")
        outcome = await self._changed(row["name"], {"position": row["pos"], **change})
        if outcome == "ok":
            await self.db.execute("DELETE FROM hapta.function_dead WHERE id = $1", dead_id)
        return outcome
