"""What the security tests share: refusals as values, and small writers for the demo app's records."""
from __future__ import annotations

from typing import Any

import pytest

from hapta.client import Client, HaptaError


async def refused(coro) -> HaptaError:
    with pytest.raises(HaptaError) as info:
        await coro
    return info.value


async def post(client: Client, session: dict, text: str = "hello", public: bool = True) -> dict[str, Any]:
    return await client.call("records.create", {"collection": "posts", "data": {
        "author": session["user"]["id"], "text": text, "public": public}})


async def comment(client: Client, session: dict, post_id: str, text: str = "nice") -> dict[str, Any]:
    return await client.call("records.create", {"collection": "comments", "data": {
        "post": post_id, "author": session["user"]["id"], "text": text}})


async def ids(client: Client, collection: str, filter_text: str, **extra: Any) -> list[str]:
    page = await client.call("records.list", {"collection": collection, "filter": filter_text, **extra})
    return [item["id"] for item in page["items"]]
