"""What the realtime tests share: reading events until a condition, and markers that prove an absence.

An event that must NOT arrive cannot be waited for; instead the test makes a later change that must arrive (a
marker) and checks everything received before it. Events of one connection arrive in commit order.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from hapta.client import Client

Event = dict[str, Any]


async def events_until(client: Client, done: Callable[[Event], bool], timeout: float = 10.0) -> list[Event]:
    """Every event up to and including the first for which `done` is true."""
    deadline = time.monotonic() + timeout
    seen: list[Event] = []
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no matching event within {timeout}s; got {seen}"
        event = await client.next_event(timeout=left)
        seen.append(event)
        if done(event):
            return seen


def change_of(record_id: str, action: str | None = None) -> Callable[[Event], bool]:
    def matches(event: Event) -> bool:
        data = event.get("data") or {}
        return (event.get("event") == "records.change" and (data.get("record") or {}).get("id") == record_id
                and (action is None or data.get("action") == action))
    return matches


def ids_in(events: list[Event]) -> list[str]:
    return [e["data"]["record"]["id"] for e in events if e.get("event") == "records.change"]


async def post(client: Client, author: str, text: str = "hello", public: bool = True) -> dict[str, Any]:
    return await client.call("records.create", {"collection": "posts",
                                                "data": {"author": author, "text": text, "public": public}})
