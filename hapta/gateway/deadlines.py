"""Every request's deadline, kept by one sweeper task for all of them.

A timer per request (asyncio.timeout) costs more than a ping's whole dispatch; a dict entry does not. The
connection watches each request task it starts (it holds the task anyway: asking asyncio for the current one on
every request is measurably dear) and forgets it when it is done. Every SWEEP_EVERY seconds the sweeper cancels
the requests past their deadline with the message DEADLINE, so a request is answered TIMEOUT at most SWEEP_EVERY
after App.connections.request_timeout, whatever it waits for.
"""
from __future__ import annotations

import asyncio

SWEEP_EVERY = 0.25
DEADLINE = "the request's deadline passed"


class Deadlines:
    def __init__(self, seconds: float):
        self.seconds = seconds
        self.running: dict[asyncio.Task, float] = {}   # request task -> when its time is up (loop time)
        self.overdue: set[asyncio.Task] = set()        # cancelled by the sweeper, not by anyone else
        self.sweeper: asyncio.Task | None = None

    def start(self) -> None:
        self.sweeper = asyncio.ensure_future(self._sweep())

    async def close(self) -> None:
        if self.sweeper is not None:
            self.sweeper.cancel()
            await asyncio.gather(self.sweeper, return_exceptions=True)

    def watch(self, task: asyncio.Task) -> None:
        self.running[task] = task.get_loop().time() + self.seconds
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task) -> None:
        self.running.pop(task, None)
        self.overdue.discard(task)

    def expired(self, exc: BaseException | None = None) -> bool:
        """Was the current request cancelled because its time was up (or did that cancellation come back as `exc`,
        another error, from a wait it interrupted)? If so the cancellation is taken back: the request goes on to
        answer TIMEOUT."""
        if not self.overdue:
            return False
        task = asyncio.current_task()
        if task not in self.overdue:
            return False
        self.overdue.discard(task)
        task.uncancel()
        return True

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            now = loop.time()
            for task, deadline in list(self.running.items()):
                if deadline <= now and task not in self.overdue:
                    self.overdue.add(task)
                    task.cancel(DEADLINE)
