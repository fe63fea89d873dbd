"""The gateway's side of the app's hooks: which hooks exist, and calls to them, run by the hook workers (a pool of
hapta.workers of the kind HOOK_WORKERS).

`has` answers from the table the workers reported when they imported rules/, so a collection without a hook costs
a dict lookup and no round trip. `before` waits for the hook and turns its outcome into the op's (changed data,
RULE_DENIED, INTERNAL, TIMEOUT, UNAVAILABLE); `after` starts the hook and returns at once.
"""
from __future__ import annotations

import asyncio
import contextvars
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any, Awaitable, Callable

from ..config import App, ConfigError
from ..isolation import WorkerUser, keep_environ, refused_names
from ..protocol.errors import INTERNAL, RULE_DENIED, HaptaError
from ..workers.kind import Kind
from ..workers.loading import LoadError
from ..workers.messages import Denied, Raised, Who
from ..workers.pool import WorkerPool, default_size, start_pool
from ..workers.reload import Reloader
from .api import Context

log = logging.getLogger("hapta.hooks")

SHUTDOWN_GRACE = 0.5   # seconds after_* hooks under way may still take when the gateway stops


def _table(report: dict[str, list[str]]) -> dict[str, frozenset[str]]:
    return {collection: frozenset(names) for collection, names in report.items()}


# The hook workers: they import rules/ (hapta.hooks.child), one queue for every caller, no memory cap; the
# environment the allowlist and App.hooks.environ give them (Hooks.start). Their series in /metrics are
# hapta_workers{pool="hooks"} and hapta_upstream_errors_total{upstream="rules"}.
HOOK_WORKERS = Kind(name="hooks", noun="hook", program="hapta.hooks.child", logger="hapta.hooks", upstream="rules",
                    label=lambda collection, name: f"{collection}.{name} hook", read=_table)


class Hooks:
    def __init__(self, pool: WorkerPool | None, database: Callable[..., Awaitable[Any]]):
        self.pool = pool                  # None: the app has no rules/ modules at all
        self._database = database         # runs after_* hooks' ctx.sql: they come after the write's transaction
        self._background: set[asyncio.Task] = set()
        self._reloader: Reloader | None = None

    @classmethod
    async def start(cls, app: App, folder: Path, collections: set[str], database: Callable[..., Awaitable[Any]],
                    *, reload: bool = False, user: WorkerUser | None = None) -> "Hooks":
        """Start the hook workers for rules/ (none when it holds no module and nothing is to be reloaded), with
        the environment WORKER_ENVIRON and App.hooks.environ allow, as `user` under a root gateway; with `reload`, a
        new generation of them whenever a file there changes."""
        bounds = app.hooks
        own = refused_names(bounds.environ, app)
        if own:
            raise ConfigError(f"App.hooks.environ: {own[0]} is the gateway's own: its settings and credentials "
                              "never reach a worker")
        kind = replace(HOOK_WORKERS, environ=keep_environ(bounds.environ))
        pool = await start_pool(kind, folder, collections, size=bounds.workers or default_size(),
                                timeout=bounds.timeout, queue_limit=bounds.queue, user=user, reload=reload)
        hooks = cls(pool, database)
        if pool is None:
            return hooks
        found = sorted(f"{c}.{h}" for c, names in pool.table.items() for h in names)
        log.info("%d hook workers ready; hooks: %s", pool.size, ", ".join(found) or "none")
        if reload:
            hooks._reloader = Reloader(folder, hooks._reload)
            hooks._reloader.start()
        return hooks

    async def close(self) -> None:
        if self._reloader is not None:
            await self._reloader.close()
        if self._background:   # after_* hooks under way get a moment to finish (shutdown has seconds in all)
            await asyncio.wait(list(self._background), timeout=SHUTDOWN_GRACE)
        if self.pool is not None:
            await self.pool.close()

    def has(self, collection: str, name: str) -> bool:
        return self.pool is not None and name in self.pool.table.get(collection, ())

    async def before(self, collection: str, name: str, ctx: Context, *args: Any) -> Any:
        """Run a before_* hook; return what it returned (None: keep the input). Deny -> RULE_DENIED."""
        if not self.has(collection, name):
            return None
        assert self.pool is not None
        outcome = await self.pool.call(collection, name, _who(ctx), list(args), ctx._sql or self._database)
        if isinstance(outcome, Denied):
            raise HaptaError(RULE_DENIED, outcome.message[:500] or "refused by a rule")
        if isinstance(outcome, Raised):
            log.error("hook %s.%s failed:\n%s", collection, name, outcome.traceback.rstrip())
            raise HaptaError(INTERNAL, "internal error")
        if name == "before_delete":
            return None
        if outcome.value is not None and not isinstance(outcome.value, dict):
            log.error("hook %s.%s returned %s; a before hook returns the fields as a dict, or None",
                      collection, name, type(outcome.value).__name__)
            raise HaptaError(INTERNAL, "internal error")
        return outcome.value

    def sends(self, collection: str) -> bool:
        """Does the collection have a before_send hook (every record read from it passes through it)?"""
        return self.has(collection, "before_send")

    async def before_send(self, collection: str, principal: Any, address: str | None,
                          records: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
        """Each record as the collection's before_send hook lets `principal` see it, or None (left out). A hook that
        fails, times out or cannot run leaves every record of the call out: nothing leaves unchecked."""
        if not records or not self.sends(collection):
            return list(records)
        assert self.pool is not None
        who = Who(principal.user_id, principal.role, "before_send", collection, address)
        try:
            outcome = await self.pool.call(collection, "before_send", who, [records], self._database)
        except HaptaError as error:
            log.warning("hook %s.before_send did not run (%s): %d records left out", collection, error.code,
                        len(records))
            return [None] * len(records)
        if isinstance(outcome, Raised):
            log.error("hook %s.before_send failed: %d records left out\n%s", collection, len(records),
                      outcome.traceback.rstrip())
            return [None] * len(records)
        if isinstance(outcome, Denied) or not isinstance(outcome.value, list) or len(outcome.value) != len(records):
            return [None] * len(records)
        return outcome.value

    def after(self, collection: str, name: str, ctx: Context, record: dict[str, Any]) -> None:
        """Start an after_* hook without waiting for it: the reply never waits on side effects."""
        if not self.has(collection, name):
            return
        # In a context of its own: the request's share of the database (store.postgres.Work) ends with its reply.
        task = asyncio.get_running_loop().create_task(self._after(collection, name, _who(ctx), record),
                                                      context=contextvars.Context())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _after(self, collection: str, name: str, who: Who, record: dict[str, Any]) -> None:
        assert self.pool is not None
        try:
            outcome = await self.pool.call(collection, name, who, [record], self._database)
        except HaptaError as error:   # busy, timed out, or its worker died: the side effect is lost; say so
            log.warning("hook %s.%s did not run to the end: %s", collection, name, error.message)
            return
        if isinstance(outcome, Raised):
            log.error("hook %s.%s failed:\n%s", collection, name, outcome.traceback.rstrip())
        elif isinstance(outcome, Denied):
            log.warning("hook %s.%s denied after the fact (the write is done): %s", collection, name,
                        outcome.message[:200])

    def status(self) -> dict[str, Any]:
        """What the admin op hooks.status (and its old name rules.status) shows: the pool's live size against its
        target, its counters, and each collection's hooks."""
        if self.pool is None:
            return {"size": 0, "live": 0, "busy": 0, "queued": 0, "hooks": {}}
        return {**self.pool.status(), "hooks": {c: sorted(names) for c, names in sorted(self.pool.table.items())}}

    async def _reload(self) -> None:
        """--reload: rules/ changed. New workers from it; if it does not load, the running ones stay."""
        assert self.pool is not None
        log.info("rules/ changed: starting new hook workers")
        try:
            await self.pool.restart()
        except LoadError as exc:
            log.error("rules/ does not load, the running workers stay: %s\n%s", exc, exc.traceback.rstrip())
        else:
            log.info("hook workers restarted")


def _who(ctx: Context) -> Who:
    return Who(ctx.user_id, ctx.role, ctx.op, ctx.collection, ctx.address)
