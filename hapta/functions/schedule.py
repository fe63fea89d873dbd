"""@every: each scheduled function once per tick, across every worker process and node.

Every process runs the same loop: it sleeps until the next tick of any scheduled function, then for each function
due it tries to claim the tick with one statement on hapta.function_ticks (the row advances only if it is behind),
and runs only what it claimed. So two processes, or two nodes, never both run a tick: one claim wins. A process
that claims and then dies loses that run (it is recorded as started and never finished in hapta.function_runs).

Missed ticks (the whole cluster was down): `missed="skip"` runs a claimed tick only while it is fresh (at most
LATE_GRACE seconds late); `missed="once"` runs the newest tick that passed, once, however late. A function seen for
the first time starts from the tick it is first seen in, without running it.

Schedule is the @every trigger of the functions service (triggers.Trigger): a tick it claims runs as admin through
Runs.background, recorded in functions.runs.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Mapping

from croniter import croniter

from ..store.failures import UPSTREAM_ERRORS
from ..store.postgres import Database
from .triggers import Function, Runs

log = logging.getLogger("hapta.functions")

LATE_GRACE = 60.0      # seconds after its time a tick still counts as on time ("skip")
LONGEST_SLEEP = 30.0   # the loop looks at least this often (a clock that jumps, a claim that failed)

CLAIM = """
INSERT INTO hapta.function_ticks (name, tick) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET tick = excluded.tick WHERE hapta.function_ticks.tick < excluded.tick
RETURNING (xmax = 0) AS first_seen
"""


@dataclass(frozen=True)
class Entry:
    name: str
    cron: str
    missed: str   # "skip" | "once"


class Schedule:
    kind = "every"

    def __init__(self, db: Database, runs: Runs):
        self.db = db
        self.runs = runs
        self.functions: Mapping[str, Function] = {}
        self.entries: list[Entry] = []
        self.task: asyncio.Task | None = None
        self.ticks: set[asyncio.Task] = set()   # claimed ticks running (the loop does not wait for them)

    def check(self, function: Function, spec: str, option: str) -> None:
        pass   # @every checked its cron expression and `missed` in the app's own process

    def describe(self, spec: str, option: str) -> str:
        return f"every {spec}"

    def use(self, functions: Mapping[str, Function]) -> None:
        self.functions = functions
        self.entries = [Entry(f.name, spec, option) for f in functions.values() for spec, option in f.declares("every")]

    def start(self) -> None:
        if self.entries:
            self.task = asyncio.ensure_future(self._loop())

    async def close(self) -> None:
        tasks = [t for t in (self.task, *self.ticks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.task = None

    async def _loop(self) -> None:
        while True:
            now = datetime.now(timezone.utc)
            for entry in self.entries:
                tick = croniter(entry.cron, now).get_prev(datetime)
                try:
                    if await self._claim(entry, tick, now):
                        task = asyncio.ensure_future(self._run(entry.name, tick))
                        self.ticks.add(task)
                        task.add_done_callback(self.ticks.discard)
                except UPSTREAM_ERRORS as exc:   # the database is away: the next look tries again
                    log.warning("could not claim %s's tick %s: %s", entry.name, tick.isoformat(), type(exc).__name__)
            now = datetime.now(timezone.utc)
            following = min(croniter(entry.cron, now).get_next(datetime) for entry in self.entries)
            await asyncio.sleep(min(LONGEST_SLEEP, max(0.01, (following - now).total_seconds() + 0.005)))

    async def _claim(self, entry: Entry, tick: datetime, now: datetime) -> bool:
        """True when this process won `tick` and should run it."""
        row = await self.db.fetchrow(CLAIM, entry.name, tick)
        if row is None or row["first_seen"]:   # another process has it, or it is where this function starts
            return False
        late = (now - tick).total_seconds()
        if entry.missed == "skip" and late > LATE_GRACE:
            log.info("%s: skipped the tick of %s (%.0f s late: the gateway was down)", entry.name,
                     tick.isoformat(), late)
            return False
        return True

    async def _run(self, name: str, tick: datetime) -> None:
        """Run one claimed tick of an @every function, recorded in hapta.function_runs."""
        function = self.functions[name]
        trigger = next(f"every {spec}" for spec, _ in function.declares("every"))
        await self.runs.background(function, trigger, {"at": tick.isoformat()})
