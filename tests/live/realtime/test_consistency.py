"""One view per transaction, through a raw socket: everything a connection gets from one transaction (its
subscriptions' events, its live queries' diffs, the channel messages it published) arrives in one frame, before anything later, so two queries on
different collections never show the client a state where one reflects the transaction and the other does not."""
from __future__ import annotations

import itertools
import json
import secrets
import time
from typing import Any

from websockets.asyncio.client import connect as ws_connect

from tests.conftest import PASSWORD


class Raw:
    """A WebSocket speaking the JSON protocol by hand: each frame kept as it came."""

    def __init__(self, ws):
        self.ws = ws
        self.ids = itertools.count(1)
        self.frames: list[list[dict[str, Any]]] = []   # every frame of events, in order (each a list of messages)

    async def call(self, op: str, args: dict[str, Any]) -> Any:
        number = next(self.ids)
        await self.ws.send(json.dumps({"id": number, "op": op, "args": args}))
        while True:
            for message in await self._frame():
                if message.get("id") == number:
                    assert message["ok"], message
                    return message["data"]

    async def _frame(self, timeout: float = 10.0) -> list[dict[str, Any]]:
        data = json.loads(await self.ws.recv() if timeout is None else await _within(self.ws.recv(), timeout))
        messages = data if isinstance(data, list) else [data]
        events = [m for m in messages if "event" in m]
        if events:
            self.frames.append(events)
        return messages

    async def frame_with(self, matches, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The first frame (already read, or read now) holding an event that `matches`."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for frame in self.frames[seen:]:
                if any(matches(event) for event in frame):
                    return frame
            seen = len(self.frames)
            assert time.monotonic() < deadline, self.frames
            await self._frame(deadline - time.monotonic())


async def _within(awaitable, timeout: float):
    import asyncio
    return await asyncio.wait_for(awaitable, timeout)


async def test_a_transactions_events_and_diffs_arrive_together_in_one_frame(gateway, user):
    writer, alice = await user()
    tag = "t" + secrets.token_hex(4)
    async with ws_connect(gateway.url, subprotocols=["hapta.v1.json"]) as ws:
        raw = Raw(ws)
        name = "raw" + secrets.token_hex(4)
        await raw.call("auth.register", {"email": f"{name}@example.com", "password": PASSWORD, "username": name})
        comments = await raw.call("realtime.subscribe", {"collection": "comments", "filter": f'text ~ "{tag}"'})
        posts = await raw.call("realtime.query", {"collection": "posts", "filter": f'text ~ "{tag}"',
                                                  "sort": "-created", "limit": 5})
        replies = await raw.call("realtime.query", {"collection": "comments", "filter": f'text ~ "{tag}"',
                                                    "sort": "-created", "limit": 5})
        assert posts["items"] == [] and replies["items"] == []
        room = f"room:{tag}"
        await raw.call("channels.join", {"channel": room})
        await writer.call("channels.join", {"channel": room})

        done = await writer.call("records.batch", {"publish": [{"channel": room, "data": {"posted": tag}}], "ops": [
            {"op": "create", "collection": "posts", "data": {"author": alice["user"]["id"], "text": f"{tag} post",
                                                             "public": True}},
            {"op": "create", "collection": "comments", "data": {"post": {"$ref": 0}, "author": alice["user"]["id"],
                                                                "text": f"{tag} comment"}}]})
        post, comment = done["results"]
        frame = await raw.frame_with(lambda e: e["event"] == "realtime.diff" and e["sub"] == posts["sub"])
        by_sub = {event["sub"]: event for event in frame if "sub" in event}
        assert set(by_sub) == {comments["sub"], posts["sub"], replies["sub"]}, frame
        # the batch's channel message leaves with them, after its changes
        assert frame[-1]["event"] == "channels.message" and frame[-1]["data"]["data"] == {"posted": tag}, frame
        assert by_sub[comments["sub"]]["data"]["record"] == comment
        assert by_sub[posts["sub"]]["data"]["ops"] == [{"op": "insert", "index": 0, "record": post}]
        assert by_sub[replies["sub"]]["data"]["ops"] == [{"op": "insert", "index": 0, "record": comment}]

        # the next transaction's events come in a later frame, never before these
        later = await writer.call("records.create", {"collection": "comments", "data": {
            "post": post["id"], "author": alice["user"]["id"], "text": f"{tag} later"}})
        after = await raw.frame_with(lambda e: e["event"] == "records.change"
                                     and e["data"]["record"]["id"] == later["id"])
        assert raw.frames.index(after) > raw.frames.index(frame)
        positions = [event["data"]["pos"] for frame in raw.frames for event in frame if "pos" in event["data"]]
        assert positions == sorted(positions)
