"""What functions.runs shows: each function's newest runs in hapta.function_runs, KEEP_RUNS of them.

Background runs (ticks, changes, webhooks that passed their route's checks) get a row when they really start and
their outcome when they end; a functions.call gets one only when it failed or logged, after its reply.
"""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from ..store.failures import UPSTREAM_ERRORS
from ..store.postgres import Database

log = logging.getLogger("hapta.functions")

KEEP_RUNS = 100   # rows of hapta.function_runs kept per function


class Journal:
    def __init__(self, db: Database):
        self.db = db

    async def begin(self, name: str, trigger: str, run: int | None = None) -> int:
        """A run's row, written once the run really starts (never for a refused request); with `run`, under that
        id (a webhook delivery claimed it)."""
        if run is None:
            return await self.db.fetchval("INSERT INTO hapta.function_runs (name, trigger) VALUES ($1, $2) "
                                          "RETURNING id", name, trigger)
        await self.db.execute("INSERT INTO hapta.function_runs (id, name, trigger) VALUES ($1, $2, $3)", run,
                              name, trigger)
        return run

    async def finish(self, name: str, run: int, outcome: str, message: str | None, logs: list[str]) -> None:
        """A run's end: its outcome (ok, denied, failed, timeout, unavailable), the failure's line, its ctx.log."""
        await self.db.execute("UPDATE hapta.function_runs SET finished = now(), outcome = $2, message = $3, "
                              "logs = $4 WHERE id = $1", run, outcome, message, logs)
        await self.prune(name)

    async def prune(self, name: str) -> None:
        await self.db.execute("DELETE FROM hapta.function_runs WHERE name = $1 AND id < (SELECT min(id) FROM "
                              "(SELECT id FROM hapta.function_runs WHERE name = $1 ORDER BY id DESC LIMIT $2) AS kept)",
                              name, KEEP_RUNS)

    async def call(self, name: str, started: datetime, outcome: str, message: str | None, logs: list[str]) -> None:
        """A functions.call worth seeing again (it failed, or logged): one row. Calls that succeed silently cost no
        write."""
        try:
            await self.db.execute("INSERT INTO hapta.function_runs (name, trigger, started, finished, outcome, "
                                  "message, logs) VALUES ($1, 'call', $2, now(), $3, $4, $5)",
                                  name, started, outcome, message, logs)
            await self.prune(name)
        except UPSTREAM_ERRORS as exc:   # the call's answer does not wait on its record
            log.warning("could not record a run of %s: %s", name, type(exc).__name__)

    async def runs(self, name: str, limit: int = 50) -> list[dict[str, Any]]:
        """The newest runs of a function (functions.runs), newest first."""
        rows = await self.db.fetch("SELECT id, trigger, started, finished, outcome, message, logs "
                                   "FROM hapta.function_runs WHERE name = $1 ORDER BY id DESC LIMIT $2", name, limit)
        return [{"id": r["id"], "trigger": r["trigger"], "started": r["started"], "finished": r["finished"],
                 "duration_ms": None if r["finished"] is None else
                 round((r["finished"] - r["started"]).total_seconds() * 1000, 1),
                 "outcome": r["outcome"], "message": r["message"], "logs": list(r["logs"])} for r in rows]

    async def last(self, names: list[str]) -> dict[str, dict[str, Any]]:
        """Each function's newest run: name -> {at, outcome}."""
        return {r["name"]: {"at": r["started"], "outcome": r["outcome"]} for r in await self.db.fetch(
            "SELECT DISTINCT ON (name) name, started, outcome FROM hapta.function_runs WHERE name = ANY($1) "
            "ORDER BY name, id DESC", names)}
