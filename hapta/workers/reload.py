"""`hapta serve --reload` for a worker pool's folder: a look at its Python files twice a second, and the kind's own
reaction to a change (a new generation of workers: WorkerPool.restart, and whatever follows from it)."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Awaitable, Callable

RELOAD_POLL = 0.5   # seconds between looks at the folder


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """What --reload compares between two looks: each .py file under the folder with its mtime and size."""
    found = {}
    for path in folder.rglob("*.py"):
        try:
            stat = path.stat()
        except FileNotFoundError:   # removed while we looked: the next look sees that
            continue
        found[str(path)] = (stat.st_mtime_ns, stat.st_size)
    return found


class Reloader:
    """Calls `changed` after each change of the folder's .py files (an edit, a new file, a removal), one change at a
    time: a change during `changed` is seen at the next look after it. `changed` reports its own failures."""

    def __init__(self, folder: Path, changed: Callable[[], Awaitable[None]]):
        self.folder = folder
        self.changed = changed
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._watch())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _watch(self) -> None:
        seen = snapshot(self.folder)
        while True:
            await asyncio.sleep(RELOAD_POLL)
            now = snapshot(self.folder)
            if now == seen:
                continue
            seen = now
            await self.changed()
